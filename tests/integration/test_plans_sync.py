"""REST usage plans in moto: one per plan from the Plans parameter, and each key's API Gateway API key
following its lifecycle through the real stream records, fed to the plans_sync handler."""

from __future__ import annotations

import json
from dataclasses import replace
from typing import Any

import pytest
from keysentry import aws, model
from keysentry.gateway import Gateway
from keysentry.model import Change
from keysentry.plans import Plans, usage_identifier
from keysentry.plans_sync import sync_usage_plans
from keysentry_dev.local import create_usage_plans

from functions.plans_sync import handler
from tests.conftest import EVENTS, FakeClock
from tests.integration.plans_helpers import STAGE, CloudFormation, api_keys, on
from tests.integration.stream_helpers import StreamReader, batch


@pytest.fixture
def stream(stack: Any) -> StreamReader:
    return StreamReader(stack.refs["KeysTable"])


@pytest.fixture
def sync(stream: StreamReader, lambda_context: Any) -> Any:
    """Deliver what the stream holds since the last call to the handler, as Lambda would; the records."""

    def call(records: list[dict[str, Any]] | None = None) -> list[dict[str, Any]]:
        records = stream.read() if records is None else records
        assert handler.lambda_handler(batch(records), lambda_context) == {"batchItemFailures": []}
        return records

    return call


def change_plan(service: Any, kid: str, plan: str, clock: FakeClock) -> None:
    record = service.get(kid)
    change = Change(action="update", actor="ops", at=clock())
    service.store.apply(record, replace(record, plan=plan, version=record.version + 1, last_change=change))


def test_the_plans_are_usage_plans_bound_to_the_sample_stage(stack: Any) -> None:
    plans = {p["name"]: p for p in aws.client("apigateway").get_usage_plans()["items"]}
    assert set(plans) == {"keysentry-dev-free", "keysentry-dev-pro", "keysentry-dev-unlimited"}
    free = plans["keysentry-dev-free"]
    assert free["throttle"] == {"rateLimit": 5, "burstLimit": 10}
    assert free["quota"] == {"limit": 1000, "period": "DAY"}
    assert "quota" not in plans["keysentry-dev-unlimited"]
    assert free["apiStages"] == [{"apiId": stack.refs["SampleApi"], "stage": STAGE}]


def test_making_the_usage_plans_again_changes_nothing_and_a_removed_plan_is_left(stack: Any) -> None:
    before = aws.client("apigateway").get_usage_plans()["items"]
    again = create_usage_plans(stack)
    assert (again.created, again.updated, again.left) == ([], [], [])
    assert aws.client("apigateway").get_usage_plans()["items"] == before

    fewer = Plans.from_json(
        '{"free": {"rate": 2, "burst": 4, "quota": {"limit": 50, "period": "WEEK"}}}', "free"
    )
    outcome = sync_usage_plans(fewer, STAGE, [(stack.refs["SampleApi"], STAGE)], Gateway())
    assert outcome.updated == ["keysentry-dev-free"]
    assert outcome.left == ["keysentry-dev-pro", "keysentry-dev-unlimited"]
    plans = {p["name"]: p for p in aws.client("apigateway").get_usage_plans()["items"]}
    assert len(plans) == 3  # left, not deleted: keys may still be on them
    assert plans["keysentry-dev-free"]["quota"] == {"limit": 50, "period": "WEEK"}
    assert plans["keysentry-dev-free"]["throttle"] == {"rateLimit": 2, "burstLimit": 4}


def test_api_keys_follow_every_lifecycle_transition(
    service: Any, sync: Any, clock: FakeClock, leak_guard: list[str]
) -> None:
    a = service.create("acme", actor="ops", scopes=["prices:read"]).record.kid
    sync()
    assert api_keys() == {usage_identifier(a): (usage_identifier(a), True, on("unlimited"))}

    change_plan(service, a, "free", clock)
    sync()
    assert api_keys()[usage_identifier(a)] == (usage_identifier(a), True, on("free"))

    service.suspend(a, actor="sec", reason="look")
    sync()
    assert api_keys()[usage_identifier(a)] == (usage_identifier(a), False, on("free"))
    service.resume(a, actor="sec", reason="fine")
    sync()
    assert api_keys()[usage_identifier(a)] == (usage_identifier(a), True, on("free"))

    b = service.rotate(a, actor="schedule").record.kid
    sync()
    assert api_keys() == {  # the successor under its own identifier, on its record's plan
        usage_identifier(a): (usage_identifier(a), True, on("free")),
        usage_identifier(b): (usage_identifier(b), True, on(service.get(b).plan or "unlimited")),
    }
    clock.advance(days=8)  # grace ends
    service.expire(service.get(a), actor="schedule", reason="grace ended")
    sync()
    assert set(api_keys()) == {usage_identifier(b)}

    service.report_leak(b, actor="github", reason="https://github.com/x/y")
    sync()
    assert api_keys()[usage_identifier(b)][1] is False  # suspended as leaked: refused at the gateway
    service.revoke(b, actor="sec", reason="confirmed")
    sync()
    assert api_keys() == {}
    assert leak_guard  # the tokens were minted, and the guard finds none of them in API Gateway


def test_redelivered_records_change_nothing(service: Any, sync: Any, clock: FakeClock) -> None:
    a = service.create("acme", actor="ops", scopes=["prices:read"]).record.kid
    b = service.create("acme", actor="ops", scopes=["prices:read"]).record.kid
    first = sync()
    service.suspend(b, actor="sec", reason="look")
    second = sync()
    state = api_keys()
    ids = {k["name"]: k["id"] for k in aws.client("apigateway").get_api_keys()["items"]}

    sync(first + second)  # the same batches again
    sync(second + first)  # and out of order
    assert api_keys() == state
    assert {k["name"]: k["id"] for k in aws.client("apigateway").get_api_keys()["items"]} == ids

    service.revoke(a, actor="sec", reason="done")
    sync()
    sync(first)  # a's creation, delivered again after its revocation, does not bring its API key back
    assert set(api_keys()) == {usage_identifier(b)}


def test_usage_updates_and_audit_entries_cost_no_api_gateway_call(
    service: Any, sync: Any, clock: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    issued = service.create("acme", actor="ops", scopes=["prices:read"])
    sync()
    service.store.touch(issued.record.kid, clock() + 3600, stale_before=clock() + 3600)
    record = service.get(issued.record.kid)
    service.store.apply(record, model.update(record, now=clock(), actor="ops", name="renamed"))
    calls: list[str] = []
    monkeypatch.setattr(Gateway, "api_key", lambda self, name: calls.append(name))
    sync()
    assert calls == []


def test_one_bad_record_fails_alone(service: Any, stream: StreamReader, lambda_context: Any) -> None:
    a = service.create("acme", actor="ops", scopes=["prices:read"]).record.kid
    records = stream.read()
    broken = {
        **records[0],
        "eventID": "broken",
        "dynamodb": {**records[0]["dynamodb"], "SequenceNumber": "1"},
    }
    broken["dynamodb"]["NewImage"] = {"pk": {"S": "x"}, "sk": {"S": "KEY"}}  # a key item it cannot read
    response = handler.lambda_handler(batch([broken, *records]), lambda_context)
    assert response == {"batchItemFailures": [{"itemIdentifier": "1"}]}
    assert set(api_keys()) == {usage_identifier(a)}


def test_the_deploy_request_makes_the_plans_and_answers_cloudformation(
    stack: Any, lambda_context: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    cfn = CloudFormation()
    monkeypatch.setenv("PLANS", '{"gold": {"rate": 9, "burst": 9}}')
    monkeypatch.setenv("DEFAULT_PLAN", "gold")
    monkeypatch.setenv("USAGE_PLAN_STAGES", f"{stack.refs['SampleApi']}:{STAGE}")
    request = {"RequestType": "Update", "ResponseURL": cfn.url, "LogicalResourceId": "UsagePlansAtDeploy"}
    try:
        handler.lambda_handler(request, lambda_context)
        monkeypatch.setenv("USAGE_PLAN_STAGES", "not a stage")
        handler.lambda_handler(request, lambda_context)
    finally:
        cfn.server.shutdown()
    made, refused = cfn.answers
    assert made["Status"] == "SUCCESS"
    assert made["Reason"] == (
        "created: keysentry-dev-gold; left: keysentry-dev-free, keysentry-dev-pro, keysentry-dev-unlimited"
        "; API keys: 0 keys checked, 0 changed"
    )
    assert "keysentry-dev-gold" in {p["name"] for p in aws.client("apigateway").get_usage_plans()["items"]}
    assert refused["Status"] == "FAILED" and "restApiId:stage" in refused["Reason"]


def test_the_sample_event_of_a_key_the_table_does_not_hold_makes_no_api_key(
    lambda_context: Any, stack: Any
) -> None:
    event = json.loads((EVENTS / "plans_sync_stream_created.json").read_text())
    assert handler.lambda_handler(event, lambda_context) == {"batchItemFailures": []}
    assert api_keys() == {}


def test_a_suspended_key_is_disabled_at_the_gateway_even_when_its_plan_has_no_usage_plan(
    service: Any, sync: Any, stream: StreamReader, lambda_context: Any
) -> None:
    # Given a key on free, in step, whose usage plan is then deleted by hand (a plan gone from Plans
    # is left for the operator to remove "once it has none")
    a = service.create("acme", actor="ops", scopes=["prices:read"], plan="free").record.kid
    sync()
    apigateway = aws.client("apigateway")
    free = next(p for p in apigateway.get_usage_plans()["items"] if p["name"] == "keysentry-dev-free")
    key_id = apigateway.get_api_keys(nameQuery=usage_identifier(a))["items"][0]["id"]
    apigateway.delete_usage_plan_key(usagePlanId=free["id"], keyId=key_id)
    apigateway.delete_usage_plan(usagePlanId=free["id"])

    # When the key is suspended (a leak report) and the record reaches the function
    service.report_leak(a, actor="github", reason="https://github.com/x/y")
    records = stream.read()
    response = handler.lambda_handler(batch(records), lambda_context)

    # Then the record fails (to be retried once the usage plan is back) but the API key is disabled
    assert len(response["batchItemFailures"]) == 1
    assert api_keys()[usage_identifier(a)][1] is False
