"""The doctor's checks without AWS, and what they assume of template.yaml held to it."""

from __future__ import annotations

import json

import pytest
from keysentry.cli.doctor import checks, fetch, report
from keysentry.cli.doctor.checks import Refused, RotationFacts, SubscriptionFacts, TableFacts

from tests.conftest import template

PEPPER = "p" * 64
ROUTES = template()["Parameters"]["RouteScopes"]["Default"]


def test_the_self_routes_are_the_management_apis_routes_behind_the_authorizer() -> None:
    events = template()["Resources"]["ApiFunction"]["Properties"]["Events"].values()
    behind = {
        (e["Properties"]["Method"].upper(), e["Properties"]["Path"])
        for e in events
        if e["Properties"].get("Auth", {}).get("Authorizer") == "KeysentryAuthorizer"
    }
    assert set(checks.SELF_ROUTES) == behind


def test_the_usage_log_groups_are_those_the_template_subscribes_to_the_usage_function() -> None:
    resources = template()["Resources"]
    subscribed = {
        r["Properties"]["LogGroupName"]["Ref"]
        for r in resources.values()
        if r["Type"] == "AWS::Logs::SubscriptionFilter"
        and r["Properties"]["DestinationArn"] == {"Fn::GetAtt": ["UsageFunction", "Arn"]}
    }
    subscribed |= {
        e["Properties"]["LogGroupName"]["Ref"]
        for e in resources["UsageFunction"]["Properties"]["Events"].values()
        if e["Type"] == "CloudWatchLogs"
    }
    assert set(fetch.USAGE_LOG_GROUPS) == subscribed


def test_the_rotation_schedule_is_sams_name_for_the_rotation_functions_event() -> None:
    events = template()["Resources"]["RotationFunction"]["Properties"]["Events"]
    (name,) = [n for n, e in events.items() if e["Type"] == "ScheduleV2"]
    assert f"RotationFunction{name}" == fetch.ROTATION_SCHEDULE
    assert template()["Resources"][fetch.HEARTBEAT_ALARM]["Properties"]["MetricName"] == "RotationHeartbeat"


def authorizer_env(**changes: str) -> dict[str, str]:
    env = {
        "ROUTE_SCOPES": ROUTES,
        "TEST_STAGES": "dev,test",
        "MANAGEMENT_API_PARAMETER": "/keysentry/s/management-api-id",
        "KEYS_TABLE": "t",
        "PEPPER_SECRET_ID": "p",
    }
    return {**env, **changes}


def test_the_templates_default_routes_hold() -> None:
    assert checks.check_authorizer("fn", authorizer_env(), {"KEYS_TABLE": "t"}).ok


@pytest.mark.parametrize(
    ("changes", "said"),
    [
        ({"ROUTE_SCOPES": json.dumps({"ANY /*": ""})}, "any key may call POST /self/rotate"),
        (
            {"ROUTE_SCOPES": json.dumps({"GET /self": "", "POST /self/rotate": "keys:rotate-self"})},
            "GET /self/usage is not in RouteScopes",
        ),
        ({"ROUTE_SCOPES": "{not json"}, "ROUTE_SCOPES is not valid JSON"),
        ({"TEST_STAGES": "dev,bad stage"}, "TEST_STAGES: 'bad stage'"),
        ({"KEYS_TABLE": "another"}, "it reads KEYS_TABLE=another, the command line t"),
        ({"MANAGEMENT_API_PARAMETER": ""}, "MANAGEMENT_API_PARAMETER is not set"),
    ],
)
def test_authorizer_settings_that_do_not_fit_fail(changes: dict[str, str], said: str) -> None:
    check = checks.check_authorizer("fn", authorizer_env(**changes), {"KEYS_TABLE": "t"})
    assert not check.ok and said in check.detail and check.remedy


def test_the_pepper_is_read_for_its_shape_only() -> None:
    good = checks.check_pepper("arn", json.dumps({"current": "2", "1": PEPPER, "2": PEPPER}))
    assert good.ok and good.detail == "current version 2 of 2, well formed"
    for bad in (json.dumps({"current": "3", "1": PEPPER}), json.dumps({"current": "1", "1": "short"}), "{x"):
        check = checks.check_pepper("arn", bad)
        assert (
            not check.ok and PEPPER not in str(check) and "short" not in check.detail.replace("shorter", "")
        )


def test_a_table_without_its_index_or_stream_fails() -> None:
    table = {
        "TableStatus": "ACTIVE",
        "GlobalSecondaryIndexes": [{"IndexName": "owner-index", "IndexStatus": "ACTIVE"}],
        "StreamSpecification": {"StreamEnabled": True, "StreamViewType": "KEYS_ONLY"},
    }
    (check,) = checks.check_tables([TableFacts("keys", "k", "", table)])
    assert not check.ok
    assert "no index due-index" in check.detail and "no index audit-owner-index" in check.detail
    assert "stream is not NEW_AND_OLD_IMAGES" in check.detail
    (missing,) = checks.check_tables(
        [TableFacts("usage", "u", "the environment", Refused("ResourceNotFoundException"))]
    )
    assert (
        not missing.ok and missing.detail == "u (from the environment) not found (ResourceNotFoundException)"
    )


def test_access_denied_asks_for_a_grant() -> None:
    check = checks.check_scanning_keys("/p", Refused("AccessDeniedException", "no"))
    assert not check.ok and check.remedy == "grant the caller read access to it"


def test_an_alarm_that_does_not_tell_the_topic_fails() -> None:
    described = {
        "a": {"StateValue": "OK", "AlarmActions": ["arn:topic"]},
        "b": {"StateValue": "OK", "AlarmActions": []},
    }
    check = checks.check_alarms(["a", "b", "c"], described, "arn:topic")
    assert not check.ok and check.detail == "c is missing; b does not tell the alerts topic"


def test_a_subscription_to_another_function_is_not_the_usage_functions() -> None:
    other = [{"destinationArn": "arn:aws:lambda:us-east-1:1:function:other"}]
    mine = [{"destinationArn": "arn:aws:lambda:us-east-1:1:function:usage:live"}]
    facts = SubscriptionFacts("usage", "arn:aws:lambda:us-east-1:1:function:usage", {"g1": mine, "g2": other})
    check = checks.check_subscriptions(facts)
    assert not check.ok and "g2 has no subscription to usage" in check.detail and "g1" not in check.detail


def test_a_rotation_with_no_data_yet_holds_and_a_disabled_one_fails() -> None:
    fresh = checks.check_rotation(RotationFacts("s", "ENABLED", None, "INSUFFICIENT_DATA", 1000.0, "st"))
    assert fresh.ok and "no run recorded" in fresh.detail
    ran = checks.check_rotation(RotationFacts("s", "ENABLED", 1000.0 - 600, "OK", 1000.0, "st"))
    assert ran.ok and "last run 10 min ago" in ran.detail
    off = checks.check_rotation(RotationFacts("s", "DISABLED", None, "OK", 1000.0, "st"))
    assert not off.ok and "keysentry --stack st rotation run" in off.remedy


def test_the_report_has_a_line_per_check_with_the_remedy_on_it() -> None:
    results = [checks.Check("a", True, "fine"), checks.Check("b", False, "broken", "do this")]
    doc, lines = report("st", "eu-west-1", results)
    assert doc["ok"] is False and [c["name"] for c in doc["checks"]] == ["a", "b"]
    assert lines == [
        "stack st (eu-west-1)",
        "ok    a                     fine",
        "FAIL  b                     broken; fix: do this",
        "1 of 2 checks hold",
    ]
