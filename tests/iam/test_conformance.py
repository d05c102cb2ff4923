"""The conformance check on its own: every function that calls AWS is driven here through its
handler, under the recorder the whole suite runs under, so this module proves the check saw each
of them (whatever else ran) and that each call is granted by the function's role in template.yaml;
the GitHub leak endpoint's true report among them. And the check fails when a grant is removed."""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest
from botocore.stub import Stubber
from keysentry import aws, scanning_keys
from keysentry.model import Status

from functions.alerts import handler as alerts
from functions.authorizer import handler as authorizer
from functions.cache_flush import handler as cache_flush
from functions.plans_sync import handler as plans_sync
from functions.rotation import handler as rotation
from functions.scanning_keys import handler as scanning
from functions.usage import handler as usage
from tests.conftest import EVENTS, IAM_CALLS, T0, FakeClock, iam_check, template
from tests.iam.conformance import Checker
from tests.iam.recorder import Call
from tests.integration.api_helpers import call
from tests.integration.authz_helpers import event as authorizer_event
from tests.integration.conftest import api_service
from tests.integration.github_helpers import keys_document, match, new_signer, publish, report
from tests.integration.plans_helpers import STAGE, CloudFormation
from tests.integration.stream_helpers import StreamReader, batch
from tests.integration.usage_helpers import access_line, subscription_event

__all__ = ["api_service"]
pytestmark = pytest.mark.usefixtures("api_service")

FLUSH_TARGET = "a1b2c3d4e5/dev"


def functions_with_policies() -> set[str]:
    """The folders of the functions template.yaml gives a policy: each of them calls AWS."""
    return {
        resource["Properties"]["CodeUri"].rsplit("/", 1)[-1]
        for resource in template()["Resources"].values()
        if resource["Type"] == "AWS::Serverless::Function" and resource["Properties"].get("Policies")
    }


def recorded_since(mark: int) -> list[Call]:
    return IAM_CALLS.since(mark)


def create_key(lambda_context: Any, idempotency_key: str = "conformance-1") -> dict[str, Any]:
    status, doc = call(
        "api_create_key",
        lambda_context,
        body={"owner": "acme-data", "scopes": ["prices:read"], "signing": "hmac"},
        headers={"Idempotency-Key": idempotency_key},
    )
    assert status == 200, doc
    return doc  # type: ignore[no-any-return]


def flush_stubbed() -> Stubber:
    """The process's API Gateway client, answering FlushStageAuthorizersCache (moto has none)."""
    stub = Stubber(aws.client("apigateway"))
    api_id, stage = FLUSH_TARGET.split("/")
    stub.add_response("flush_stage_authorizers_cache", {}, {"restApiId": api_id, "stageName": stage})
    return stub


def test_every_function_that_calls_aws_makes_only_calls_its_own_role_grants(
    stack: Any, service: Any, lambda_context: Any, clock: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    mark = len(IAM_CALLS.calls)
    stream = StreamReader(stack.refs["KeysTable"])

    # the management API: create (idempotent, sealed with KMS), read, list
    key = create_key(lambda_context)
    assert call("api_get_key", lambda_context, kid=key["kid"])[0] == 200
    assert call("api_list_keys", lambda_context)[0] == 200

    # the authorizer: a key read, its pepper
    response = authorizer.lambda_handler(
        authorizer_event("authorizer_rest_request_valid", key["key"]), lambda_context
    )
    assert "policyDocument" in response

    # the GitHub scanning keys refresh, then a true leak report against them
    github = new_signer()
    monkeypatch.setenv("GITHUB_SCANNING_KEYS_PARAMETER", stack.refs["GitHubScanningKeys"])
    monkeypatch.setenv("GITHUB_SCANNING_KEYS_URL", "https://github.invalid/meta/public_keys/secret_scanning")
    monkeypatch.setattr(scanning_keys, "fetch", lambda url, **_: json.dumps(keys_document(github)).encode())
    refreshed = scanning.lambda_handler(
        json.loads((EVENTS / "scanning_keys_scheduled.json").read_text()), lambda_context
    )
    assert refreshed["stored"] is True
    publish(stack, keys_document(github))  # and the endpoint's cached copy dropped
    status, feedback = report(lambda_context, github, [match(key["key"])])
    assert status == 200 and feedback[0]["label"] == "true_positive"

    # the usage pipeline: one access line of the key
    counted = usage.lambda_handler(subscription_event([(T0 * 1000, access_line(key["kid"]))]), lambda_context)
    assert counted["batchItemFailures"] == [] if "batchItemFailures" in counted else True

    # the rotation job
    rotation.lambda_handler(json.loads((EVENTS / "rotation_scheduled.json").read_text()), lambda_context)

    # the alerts, with the stage flush configured: flush now, schedule the second one
    records = stream.read()
    monkeypatch.setenv("FLUSH_AUTHORIZER_CACHE", FLUSH_TARGET)
    monkeypatch.setenv("AUTHORIZER_CACHE_FLUSH_QUEUE_URL", stack.refs["AuthorizerCacheFlushQueue"])
    with flush_stubbed():
        assert alerts.lambda_handler(batch(records), lambda_context) == {"batchItemFailures": []}

    # the second flush, from the delay queue
    body = json.dumps({"kids": [key["kid"]], "events": ["e-1"], "at": T0})
    message = {
        "messageId": "m-1",
        "receiptHandle": "r",
        "body": body,
        "attributes": {},
        "messageAttributes": {},
    }
    with flush_stubbed():
        flushed = cache_flush.lambda_handler(
            {"Records": [{**message, "eventSource": "aws:sqs", "awsRegion": "us-east-1"}]}, lambda_context
        )
    assert flushed == {"batchItemFailures": []}

    # REST usage plans: at deploy (a new plan, created with its tags), then a key's API key
    monkeypatch.setenv("STAGE", STAGE)
    monkeypatch.setenv("USAGE_PLAN_STAGES", f"{stack.refs['SampleApi']}:{STAGE}")
    monkeypatch.setenv(
        "PLANS", '{"gold": {"rate": 7, "burst": 9}, "unlimited": {"rate": 1000, "burst": 2000}}'
    )
    cloudformation = CloudFormation()
    deployed = plans_sync.lambda_handler(cloudformation.request("Create"), lambda_context)
    assert deployed["success"] is True, deployed
    assert plans_sync.lambda_handler(batch(records), lambda_context) == {"batchItemFailures": []}

    calls = recorded_since(mark)
    missing = functions_with_policies() - IAM_CALLS.functions(calls)
    assert missing == set(), f"no AWS call recorded beneath these handlers: {sorted(missing)}"
    findings = iam_check(calls)
    assert findings == [], "\n".join(map(str, findings))


def test_a_true_github_leak_report_makes_only_calls_the_api_role_grants(
    stack: Any, service: Any, lambda_context: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The report suspends the key and records itself as done (UpdateItem on the nonce table):
    every one of those calls is granted, so on AWS the report does not end in AccessDenied."""
    key = create_key(lambda_context, "conformance-leak")
    monkeypatch.setenv("GITHUB_SCANNING_KEYS_PARAMETER", stack.refs["GitHubScanningKeys"])
    github = new_signer()
    publish(stack, keys_document(github))
    mark = len(IAM_CALLS.calls)

    status, feedback = report(lambda_context, github, [match(key["key"])])

    assert status == 200 and feedback[0]["label"] == "true_positive"
    assert service.get(key["kid"]).status is Status.SUSPENDED
    calls = recorded_since(mark)
    nonce_table = stack.attrs["NonceTable"]["Arn"]
    on_nonces = {r.action for c in calls for r in c.requests if r.resource == nonce_table}
    assert on_nonces == {"dynamodb:PutItem", "dynamodb:UpdateItem"}, on_nonces
    assert IAM_CALLS.functions(calls) == {"api"}
    findings = iam_check(calls)
    assert findings == [], "\n".join(map(str, findings))


def without_grant(function: str, sid: str, action: str) -> dict[str, Any]:
    """template.yaml with ``action`` taken out of one statement of ``function``'s policy."""
    doc = copy.deepcopy(template())
    for policy in doc["Resources"][function]["Properties"]["Policies"]:
        for statement in policy.get("Statement", []) if isinstance(policy, dict) else []:
            if statement.get("Sid") == sid:
                actions = (
                    statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]]
                )
                assert action in actions
                statement["Action"] = [a for a in actions if a != action]
                return doc
    raise AssertionError(f"{function} has no statement {sid}")


def test_removing_a_grant_the_calls_need_is_reported_as_exactly_that_call(
    stack: Any, service: Any, lambda_context: Any
) -> None:
    kid = service.create("acme", actor="ops", scopes=["prices:read"])
    token = kid.token
    mark = len(IAM_CALLS.calls)
    authorizer.lambda_handler(authorizer_event("authorizer_rest_request_valid", token), lambda_context)
    calls = recorded_since(mark)
    assert {r.action for c in calls for r in c.requests} == {
        "dynamodb:GetItem",
        "secretsmanager:GetSecretValue",
    }

    assert Checker(template()).check(calls, stack=stack).findings == []
    broken = Checker(without_grant("AuthorizerFunction", "ReadAndTouchKeys", "dynamodb:GetItem"))
    findings = broken.check(calls, stack=stack).findings

    assert [(f.function, f.action, f.resource) for f in findings] == [
        ("AuthorizerFunction", "dynamodb:GetItem", stack.attrs["KeysTable"]["Arn"])
    ]
    assert "no statement allows it" in findings[0].reason
