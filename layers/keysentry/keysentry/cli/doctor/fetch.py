"""What ``keysentry doctor`` reads of a deployment: every AWS call it makes is here.

Names come from the settings the command line resolved (the stack's outputs, or the variables that
win over them) and, for what has no output (the schedule, alarms, functions, log groups, the GitHub
keys parameter), from the physical ids CloudFormation's ListStackResources gives per logical id of
template.yaml. An AWS answer about one resource (not found, access denied) is kept as a
:class:`~.checks.Refused` for its check to explain; anything else (no endpoint, no credentials)
ends the command as every AWS failure does (exit 5).
"""

from __future__ import annotations

import secrets
from collections.abc import Callable, Mapping
from typing import Any, Final, TypeVar

from keysentry import aws
from keysentry.cli.doctor.checks import Facts, Refused, RotationFacts, SubscriptionFacts, TableFacts
from keysentry.envelope import KmsBox
from keysentry.settings import (
    IDEMPOTENCY_TABLE,
    KEYS_TABLE,
    KMS_KEY_ID,
    NONCE_TABLE,
    PEPPER_SECRET_ID,
    USAGE_TABLE,
)

# The log groups of template.yaml whose lines the usage function reads (a unit test holds this to
# the template's subscription filters): those the stack has must be subscribed to it.
USAGE_LOG_GROUPS: Final = ("AuthorizerLogGroup", "SampleApiAccessLogs", "SampleHttpApiAccessLogs")
ROTATION_SCHEDULE: Final = "RotationFunctionHourly"  # SAM's name for RotationFunction's Hourly event
HEARTBEAT_ALARM: Final = "RotationHeartbeatAlarm"
LOOK_BACK_S: Final = 86_400
TABLES: Final = (
    ("keys", KEYS_TABLE.name),
    ("nonce", NONCE_TABLE.name),
    ("idempotency", IDEMPOTENCY_TABLE.name),
    ("usage", USAGE_TABLE.name),
)

T = TypeVar("T")


def answer(call: Callable[[], T]) -> T | Refused:
    """The call's result, or AWS's refusal of it (a ClientError) as a Refused."""
    from botocore.exceptions import ClientError

    try:
        return call()
    except ClientError as error:
        err = error.response.get("Error", {})
        return Refused(str(err.get("Code", "")), str(err.get("Message", "")))


def stack_resources(stack: str) -> dict[str, tuple[str, str]]:
    """Logical id -> (resource type, physical id), from ListStackResources."""
    pages = aws.client("cloudformation").get_paginator("list_stack_resources").paginate(StackName=stack)
    return {
        r["LogicalResourceId"]: (r["ResourceType"], r.get("PhysicalResourceId", ""))
        for page in pages
        for r in page["StackResourceSummaries"]
    }


def gather(stack: str, environ: Mapping[str, str], sources: Mapping[str, str], now: float) -> Facts:
    resources = stack_resources(stack)

    def physical(logical: str) -> str:
        return resources.get(logical, ("", ""))[1]

    alarms = sorted(p for kind, p in resources.values() if kind == "AWS::CloudWatch::Alarm")
    described = describe_alarms(alarms)
    pepper_id, kms_id = environ.get(PEPPER_SECRET_ID.name, ""), environ.get(KMS_KEY_ID.name, "")
    kms_key, round_trip = kms_facts(kms_id)
    scanning = physical("GitHubScanningKeys")
    authorizer = physical("AuthorizerFunction")
    return Facts(
        tables=[table_facts(role, environ.get(var, ""), sources.get(var, "")) for role, var in TABLES],
        pepper_secret_id=pepper_id,
        pepper=answer(
            lambda: aws.client("secretsmanager").get_secret_value(SecretId=pepper_id)["SecretString"]
        )
        if pepper_id
        else None,
        kms_key_id=kms_id,
        kms_key=kms_key,
        kms_round_trip=round_trip,
        rotation=rotation_facts(
            stack, physical(ROTATION_SCHEDULE), described.get(physical(HEARTBEAT_ALARM)), now
        ),
        alarms=alarms,
        described_alarms=described,
        alerts_topic=physical("AlertsTopic"),
        subscriptions=subscription_facts(physical("UsageFunction"), [physical(g) for g in USAGE_LOG_GROUPS]),
        authorizer=authorizer,
        authorizer_env=function_environment(authorizer) if authorizer else None,
        cli_env=environ,
        scanning_parameter=scanning,
        scanning_keys=answer(lambda: aws.client("ssm").get_parameter(Name=scanning)["Parameter"]["Value"])
        if scanning
        else None,
        scanning_function=physical("ScanningKeysFunction"),
    )


def table_facts(role: str, name: str, source: str) -> TableFacts:
    if not name:
        return TableFacts(role, name, source)
    table = answer(lambda: aws.client("dynamodb").describe_table(TableName=name)["Table"])
    return TableFacts(role, name, source, table)


def kms_facts(key_id: str) -> tuple[Mapping[str, Any] | Refused | None, bool | Refused]:
    """The key's metadata, and whether a value encrypted under an encryption context (as keysentry
    seals signing secrets and pickups) decrypts back to itself."""
    if not key_id:
        return None, False
    metadata = answer(lambda: aws.client("kms").describe_key(KeyId=key_id)["KeyMetadata"])
    if isinstance(metadata, Refused) or metadata.get("KeyState") != "Enabled":
        return metadata, False
    box, probe = KmsBox(key_id), secrets.token_urlsafe(16)
    decrypted = answer(lambda: box.decrypt("doctor", "doctor", box.encrypt("doctor", "doctor", probe)))
    return metadata, decrypted if isinstance(decrypted, Refused) else decrypted == probe


def rotation_facts(
    stack: str, schedule: str, heartbeat: Mapping[str, Any] | None, now: float
) -> RotationFacts:
    """The schedule's state, and the last RotationHeartbeat datapoint of the last day, read with
    the heartbeat alarm's own namespace, metric and dimensions."""
    state: str | Refused = ""
    if schedule:
        got = answer(lambda: aws.client("scheduler").get_schedule(Name=schedule))
        state = got if isinstance(got, Refused) else str(got.get("State", ""))
    last_run = None
    if heartbeat is not None and heartbeat.get("MetricName"):
        import datetime as dt

        points = aws.client("cloudwatch").get_metric_statistics(
            Namespace=heartbeat["Namespace"],
            MetricName=heartbeat["MetricName"],
            Dimensions=heartbeat.get("Dimensions", []),
            StartTime=dt.datetime.fromtimestamp(now - LOOK_BACK_S, dt.UTC),
            EndTime=dt.datetime.fromtimestamp(now, dt.UTC),
            Period=300,
            Statistics=["Sum"],
        )["Datapoints"]
        runs = [p["Timestamp"].timestamp() for p in points if p.get("Sum", 0) > 0]
        last_run = max(runs, default=None)
    alarm = str(heartbeat.get("StateValue", "")) if heartbeat is not None else ""
    return RotationFacts(schedule, state, last_run, alarm, now, stack)


def describe_alarms(names: list[str]) -> dict[str, dict[str, Any]]:
    """Alarm name -> its description (metric alarms and alarms on metric math alike)."""
    found: dict[str, dict[str, Any]] = {}
    client = aws.client("cloudwatch")
    for start in range(0, len(names), 100):
        for alarm in client.describe_alarms(AlarmNames=names[start : start + 100])["MetricAlarms"]:
            found[alarm["AlarmName"]] = dict(alarm)
    return found


def function_environment(function: str) -> Mapping[str, str] | Refused:
    got = answer(lambda: aws.client("lambda").get_function_configuration(FunctionName=function))
    if isinstance(got, Refused):
        return got
    return dict(got.get("Environment", {}).get("Variables", {}))


def subscription_facts(usage_function: str, groups: list[str]) -> SubscriptionFacts:
    if not usage_function:
        return SubscriptionFacts("", "")
    config = answer(lambda: aws.client("lambda").get_function_configuration(FunctionName=usage_function))
    arn = "" if isinstance(config, Refused) else config["FunctionArn"]
    logs = aws.client("logs")

    def filters(group: str) -> list[Any] | Refused:
        return answer(
            lambda: list(logs.describe_subscription_filters(logGroupName=group)["subscriptionFilters"])
        )

    return SubscriptionFacts(usage_function, arn, {group: filters(group) for group in groups if group})
