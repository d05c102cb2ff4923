"""The functions' roles as SAM makes them: no account-wide managed policy beyond the two every
function has, and each event source mapping's stream or queue readable by its function's own
scoped statements."""

from __future__ import annotations

from functools import cache
from typing import Any

import pytest

from tests.conftest import template
from tests.iam.policy import Request, evaluate
from tests.iam.roles import Configuration, policy_statements, roles, transform

# What every function's role keeps, and why (docs/deploy.md, "What each function's role grants"):
# CloudWatch Logs for its own log group (logs:CreateLogGroup, CreateLogStream, PutLogEvents), and
# X-Ray segments for Tracing: Active (xray:PutTraceSegments, PutTelemetryRecords, ...). Neither
# action takes a narrower resource that SAM could scope; both are write-only.
REMAINING = {
    "arn:aws:iam::aws:policy/service-role/AWSLambdaBasicExecutionRole",
    "arn:aws:iam::aws:policy/AWSXrayWriteOnlyAccess",
}

# What Lambda's poller needs on an event source, by the source's service
POLLER = {
    "dynamodb": (
        "dynamodb:DescribeStream",
        "dynamodb:GetRecords",
        "dynamodb:GetShardIterator",
        "dynamodb:ListStreams",
    ),
    "sqs": ("sqs:ReceiveMessage", "sqs:DeleteMessage", "sqs:GetQueueAttributes"),
}


@cache
def transformed() -> dict[str, Any]:
    return transform(template())


def test_no_function_role_gets_an_account_wide_managed_policy_beyond_logs_and_tracing() -> None:
    resources = transformed()["Resources"]
    function_roles = {
        resources[name]["Properties"]["Role"]["Fn::GetAtt"][0]
        for name, r in resources.items()
        if r["Type"] == "AWS::Lambda::Function"
    }
    assert len(function_roles) >= 9
    extra = {
        role: sorted(set(resources[role]["Properties"].get("ManagedPolicyArns", [])) - REMAINING)
        for role in function_roles
    }
    assert {role: arns for role, arns in extra.items() if arns} == {}


def test_the_template_declares_no_sam_event_that_attaches_a_poller_policy() -> None:
    pulled = {"DynamoDB", "SQS", "Kinesis", "MQ", "MSK", "SelfManagedKafka", "DocumentDB"}
    found = [
        f"{name}.{event}"
        for name, r in template()["Resources"].items()
        if r["Type"] == "AWS::Serverless::Function"
        for event, spec in r["Properties"].get("Events", {}).items()
        if spec["Type"] in pulled
    ]
    assert found == [], "declare these as AWS::Lambda::EventSourceMapping with scoped statements"


def mappings() -> list[str]:
    return sorted(
        n for n, r in template()["Resources"].items() if r["Type"] == "AWS::Lambda::EventSourceMapping"
    )


def test_every_event_source_keeps_the_settings_the_sam_events_had() -> None:
    """Bounded retries, bisect, partial batch responses and a failure destination on both
    streams; partial batch responses on the queue."""
    resources = template()["Resources"]
    assert mappings() == [
        "AlertsFunctionKeyChanges",
        "AuthorizerCacheFlushFunctionDue",
        "PlansSyncFunctionKeyChanges",
    ]
    for name in ("AlertsFunctionKeyChanges", "PlansSyncFunctionKeyChanges"):
        props = resources[name]["Properties"]
        assert props["EventSourceArn"] == {"Fn::GetAtt": ["KeysTable", "StreamArn"]}
        assert props["BisectBatchOnFunctionError"] is True
        assert props["MaximumRetryAttempts"] == 5 and props["MaximumRecordAgeInSeconds"] == 86400
        assert props["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
        assert props["DestinationConfig"]["OnFailure"]["Destination"] == {
            "Fn::GetAtt": ["AlertsFailureQueue", "Arn"]
        }
        assert props["FilterCriteria"]["Filters"] == [
            {"Pattern": '{"dynamodb": {"Keys": {"sk": {"S": ["KEY"]}}}}'}
        ]
    assert resources["AlertsFunctionKeyChanges"]["Properties"]["BatchSize"] == 100
    assert resources["PlansSyncFunctionKeyChanges"]["Properties"]["BatchSize"] == 25
    assert (
        resources["PlansSyncFunctionKeyChanges"]["Condition"] == resources["PlansSyncFunction"]["Condition"]
    )
    due = resources["AuthorizerCacheFlushFunctionDue"]
    assert due["Condition"] == resources["AuthorizerCacheFlushFunction"]["Condition"]
    assert due["Properties"]["FunctionResponseTypes"] == ["ReportBatchItemFailures"]


@pytest.mark.parametrize("mapping", mappings())
def test_each_event_source_is_readable_by_its_function_and_only_that_source(mapping: str, stack: Any) -> None:
    """Lambda's poller acts with the function's role: the role's own statements must grant it the
    stream's or queue's read actions, and not on another stream or queue."""
    resource = template()["Resources"][mapping]
    function = resource["Properties"]["FunctionName"]["Ref"]
    (role,) = [r for r in roles(template(), transformed()).values() if r.function == function]
    forced = tuple(sorted({c: True for c in (resource.get("Condition"), role.condition) if c}.items()))
    policy = policy_statements(role, Configuration((), forced, ()), stack)
    source = str(stack.resolve(resource["Properties"]["EventSourceArn"]))
    service = source.split(":")[2]
    other = source.replace("KeysTable", "UsageTable").replace(
        "AuthorizerCacheFlushQueue", "AlertsFailureQueue"
    )
    assert other != source
    for action in POLLER[service]:
        assert evaluate(policy, Request(action, source)).allowed, f"{function}: {action} on {source}"
        assert not evaluate(policy, Request(action, other)).allowed, f"{function}: {action} on {other}"
