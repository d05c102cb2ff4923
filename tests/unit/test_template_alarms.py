"""No silent failure of the jobs nobody watches: every function that runs from a schedule, a stream,
a queue, a log subscription or a deploy has an error alarm that tells the alerts topic, under the
function's own condition; the rotation job has a heartbeat alarm, whose window fits its schedule."""

from __future__ import annotations

import copy
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from keysentry_dev.template import load_template, references

ROOT = Path(__file__).resolve().parents[2]
TOPIC = "AlertsTopic"
# SAM event types whose caller sees the function's answer itself: every other type is event-driven
SYNCHRONOUS_EVENTS = {"Api", "HttpApi"}
# resource types that invoke a function on their own, and where they name it
EVENT_SOURCES = {
    "AWS::Lambda::EventSourceMapping": ("FunctionName",),
    "AWS::Scheduler::Schedule": ("Target", "Arn"),
    "AWS::Logs::SubscriptionFilter": ("DestinationArn",),
    "AWS::SNS::Subscription": ("Endpoint",),
}
FUNCTION_TYPES = {"AWS::Serverless::Function", "AWS::Lambda::Function"}


@pytest.fixture(scope="module")
def template() -> dict[str, Any]:
    return load_template(ROOT / "template.yaml")


def _dig(props: dict[str, Any], path: tuple[str, ...]) -> Any:
    for step in path:
        props = props.get(step, {}) if isinstance(props, dict) else {}
    return props


def event_driven_functions(template: dict[str, Any]) -> dict[str, str]:
    """Each function something other than a synchronous caller invokes -> why."""
    resources = template["Resources"]
    functions = {name for name, r in resources.items() if r["Type"] in FUNCTION_TYPES}
    found: dict[str, str] = {}
    for name in sorted(functions):
        for event, spec in resources[name].get("Properties", {}).get("Events", {}).items():
            if spec["Type"] not in SYNCHRONOUS_EVENTS:
                found.setdefault(name, f"its {spec['Type']} event {event}")
    for source, resource in resources.items():
        props = resource.get("Properties", {})
        if resource["Type"] in EVENT_SOURCES:
            named = references(_dig(props, EVENT_SOURCES[resource["Type"]]))
        elif (
            resource["Type"].startswith("Custom::")
            or resource["Type"] == "AWS::CloudFormation::CustomResource"
        ):
            named = references(props.get("ServiceToken"))
        else:
            continue
        for name in named:
            if name in functions:
                found.setdefault(name, f"{resource['Type']} {source}")
    return found


def _metrics(alarm: dict[str, Any]) -> Iterator[tuple[str, str, dict[str, Any]]]:
    """(namespace, metric name, dimensions) of each metric an alarm reads."""
    props = alarm["Properties"]
    if "MetricName" in props:
        yield (
            props["Namespace"],
            props["MetricName"],
            {d["Name"]: d["Value"] for d in props.get("Dimensions", [])},
        )
    for query in props.get("Metrics", []):
        metric = query.get("MetricStat", {}).get("Metric")
        if metric:
            dims = {d["Name"]: d["Value"] for d in metric.get("Dimensions", [])}
            yield metric["Namespace"], metric["MetricName"], dims


def tells_the_topic(alarm: dict[str, Any]) -> bool:
    return {"Ref": TOPIC} in alarm["Properties"].get("AlarmActions", [])


def alarms_on(
    template: dict[str, Any], namespace: str, metric: str, dimension: str, function: str
) -> list[str]:
    """Alarms that read ``namespace``/``metric`` of ``function`` (by the dimension naming it)."""
    return [
        name
        for name, resource in template["Resources"].items()
        if resource["Type"] == "AWS::CloudWatch::Alarm"
        and any(
            (ns, m) == (namespace, metric) and dims.get(dimension) == {"Ref": function}
            for ns, m, dims in _metrics(resource)
        )
    ]


def missing_alarms(template: dict[str, Any]) -> list[str]:
    """What is wrong, one line per function: no error alarm, one that tells nobody, one under
    another condition than its function's; the rotation job without a heartbeat alarm."""
    resources, problems = template["Resources"], []
    for function, why in event_driven_functions(template).items():
        alarms = alarms_on(template, "AWS/Lambda", "Errors", "FunctionName", function)
        good = [
            a
            for a in alarms
            if tells_the_topic(resources[a])
            and resources[a].get("Condition") == resources[function].get("Condition")
        ]
        if not good:
            seen = (
                f" ({', '.join(alarms)}: not to {TOPIC} or not under the function's condition)"
                if alarms
                else ""
            )
            problems.append(f"{function} (invoked by {why}) has no error alarm{seen}")
    heartbeats = [
        a
        for a in alarms_on(template, "keysentry", "RotationHeartbeat", "function_name", "RotationFunction")
        if tells_the_topic(resources[a]) and resources[a]["Properties"].get("TreatMissingData") == "breaching"
    ]
    if not heartbeats:
        problems.append("RotationFunction has no heartbeat alarm (RotationHeartbeat, missing data breaching)")
    return problems


def without(template: dict[str, Any], *names: str) -> dict[str, Any]:
    changed = copy.deepcopy(template)
    for name in names:
        del changed["Resources"][name]
    return changed


def test_every_scheduled_or_event_driven_function_has_an_error_alarm_to_the_alerts_topic(
    template: dict[str, Any],
) -> None:
    assert missing_alarms(template) == []


def test_the_jobs_are_found_by_every_way_they_are_invoked(template: dict[str, Any]) -> None:
    found = event_driven_functions(template)
    assert set(found) == {
        "RotationFunction",  # ScheduleV2
        "ScanningKeysFunction",  # ScheduleV2 and a custom resource
        "PlansSyncFunction",  # DynamoDB stream and a custom resource
        "AlertsFunction",  # DynamoDB stream
        "AuthorizerCacheFlushFunction",  # SQS
        "UsageFunction",  # CloudWatch Logs
    }, "the authorizer, the API and the sample backend answer their callers"


@pytest.mark.parametrize(
    ("removed", "named"),
    [
        (
            "RotationErrorAlarm",
            "RotationFunction (invoked by its ScheduleV2 event Hourly) has no error alarm",
        ),
        ("RotationHeartbeatAlarm", "RotationFunction has no heartbeat alarm"),
        (
            "PlansSyncErrorAlarm",
            "PlansSyncFunction (invoked by AWS::Lambda::EventSourceMapping PlansSyncFunctionKeyChanges) has no error alarm",
        ),
        (
            "UsageErrorAlarm",
            "UsageFunction (invoked by its CloudWatchLogs event AuthorizerRefusals) has no error alarm",
        ),
    ],
)
def test_a_template_without_an_alarm_fails_the_check(
    template: dict[str, Any], removed: str, named: str
) -> None:
    problems = missing_alarms(without(template, removed))
    assert [p for p in problems if p.startswith(named)], problems


def test_an_alarm_that_tells_nobody_or_lacks_the_functions_condition_does_not_count(
    template: dict[str, Any],
) -> None:
    silent = copy.deepcopy(template)
    silent["Resources"]["AlertsErrorAlarm"]["Properties"]["AlarmActions"] = []
    unconditional = copy.deepcopy(template)
    del unconditional["Resources"]["AuthorizerCacheFlushErrorAlarm"]["Condition"]
    assert any(p.startswith("AlertsFunction") for p in missing_alarms(silent))
    assert any(p.startswith("AuthorizerCacheFlushFunction") for p in missing_alarms(unconditional))


def test_event_source_mappings_schedules_and_custom_resources_count_as_invokers(
    template: dict[str, Any],
) -> None:
    """The same functions, invoked through plain CloudFormation resources instead of SAM events: the
    stream and queue consumers are event source mappings in the template itself; the rotation job
    here through a schedule resource."""
    changed = copy.deepcopy(template)
    resources = changed["Resources"]
    resources["RotationFunction"]["Properties"].pop("Events")
    resources["RotationSchedule"] = {
        "Type": "AWS::Scheduler::Schedule",
        "Properties": {"Target": {"Arn": {"Fn::Sub": "${RotationFunction.Arn}"}}},
    }
    assert event_driven_functions(changed).keys() == event_driven_functions(template).keys()
    assert missing_alarms(changed) == []
    problems = missing_alarms(
        without(changed, "AlertsErrorAlarm", "AuthorizerCacheFlushErrorAlarm", "RotationErrorAlarm")
    )
    assert [p.split(" (")[0] for p in problems] == [
        "AlertsFunction",
        "AuthorizerCacheFlushFunction",
        "RotationFunction",
    ]
    assert "AWS::Lambda::EventSourceMapping AlertsFunctionKeyChanges" in problems[0]
    assert "AWS::Scheduler::Schedule RotationSchedule" in problems[2]


def test_a_function_only_a_custom_resource_invokes_needs_an_alarm(template: dict[str, Any]) -> None:
    changed = copy.deepcopy(template)
    changed["Resources"]["ScanningKeysFunction"]["Properties"].pop("Events")
    assert missing_alarms(changed) == []
    problems = missing_alarms(without(changed, "ScanningKeysErrorAlarm"))
    assert problems == [
        "ScanningKeysFunction (invoked by Custom::GitHubScanningKeys ScanningKeysAtDeploy) has no error alarm"
    ]


# ---------------------------------------------------------------- the heartbeat's window


def rate_minutes(expression: str) -> int:
    """The interval of an EventBridge ``rate(...)`` expression, in minutes."""
    match = re.fullmatch(r"rate\((\d+) (minute|minutes|hour|hours|day|days)\)", expression)
    assert match, f"not a rate expression: {expression}"
    value, unit = int(match[1]), match[2].rstrip("s")
    return value * {"minute": 1, "hour": 60, "day": 1440}[unit]


def test_the_default_heartbeat_window_tells_one_missed_run_and_no_late_one(template: dict[str, Any]) -> None:
    params = template["Parameters"]
    interval = rate_minutes(params["RotationSchedule"]["Default"])
    window = int(params["RotationHeartbeatMinutes"]["Default"])
    run = int(template["Resources"]["RotationFunction"]["Properties"]["Timeout"]) // 60
    # a run may complete up to its timeout after it started: heartbeats can be interval + run apart
    assert interval + run < window, "a run that took its whole time would raise the alarm"
    assert window < 2 * interval, "a single missed run would go unnoticed"
    alarm = template["Resources"]["RotationHeartbeatAlarm"]["Properties"]
    assert alarm["Period"] == 60
    assert alarm["EvaluationPeriods"] == alarm["DatapointsToAlarm"] == {"Ref": "RotationHeartbeatMinutes"}
    assert (alarm["ComparisonOperator"], alarm["Threshold"]) == ("LessThanThreshold", 1)
    # CloudWatch: Period x EvaluationPeriods at most a day for periods under an hour
    assert int(params["RotationHeartbeatMinutes"]["MaxValue"]) * alarm["Period"] <= 86_400


def test_the_rate_parser_reads_what_eventbridge_writes() -> None:
    assert [rate_minutes(e) for e in ("rate(1 hour)", "rate(5 minutes)", "rate(2 days)")] == [60, 5, 2880]
    with pytest.raises(AssertionError):
        rate_minutes("cron(0 * * * ? *)")


def test_the_dashboard_shows_every_alarm_that_always_exists(template: dict[str, Any]) -> None:
    text = template["Resources"]["Dashboard"]["Properties"]["DashboardBody"]["Fn::Sub"][0]
    shown = set(re.findall(r'"\$\{(\w+)\.Arn\}"', text))
    alarms = {
        name
        for name, r in template["Resources"].items()
        if r["Type"] == "AWS::CloudWatch::Alarm" and "Condition" not in r
    }
    assert shown == alarms  # a conditional one cannot be named in the body: it may not exist
