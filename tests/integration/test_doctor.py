"""`keysentry doctor` on the local stack: every check holds as provisioned; break one thing (the
pepper, the schedule, a subscription, an alarm, a table, ...) and exactly its check fails, with its
remedy, and the command exits 1. The pepper's value is never in what it prints."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from keysentry import aws, cli
from keysentry_dev.template import STACK

CHECKS = [
    "keys table",
    "nonce table",
    "idempotency table",
    "usage table",
    "pepper",
    "kms",
    "rotation schedule",
    "alarms",
    "usage subscriptions",
    "authorizer settings",
    "github scanning keys",
]


@pytest.fixture
def local(stack: Any, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Any:
    """The local stack as `keysentry local up` provisions it, and no stack cache of an earlier run."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    return stack


def doctor(capfd: pytest.CaptureFixture[str], *extra: str) -> tuple[int, Any, str]:
    code = cli.main(["--stack", STACK, "doctor", *extra])
    out, err = capfd.readouterr()
    return code, json.loads(out) if "--json" in extra else out, err


def failing(capfd: pytest.CaptureFixture[str]) -> dict[str, dict[str, Any]]:
    code, doc, err = doctor(capfd, "--json")
    assert code == 1 and doc["ok"] is False, err
    return {c["name"]: c for c in doc["checks"] if not c["ok"]}


def pepper_values(stack: Any) -> list[str]:
    secret = aws.client("secretsmanager").get_secret_value(SecretId=stack.refs["PepperSecret"])
    return [v for k, v in json.loads(secret["SecretString"]).items() if k != "current"]


def test_every_check_holds_on_the_local_stack(local: Any, capfd: pytest.CaptureFixture[str]) -> None:
    secrets = pepper_values(local)
    code, out, err = doctor(capfd)
    assert code == 0, out + err
    lines = out.splitlines()
    assert (
        lines[0] == f"stack {STACK} (us-east-1)"
        and lines[-1] == f"{len(CHECKS)} of {len(CHECKS)} checks hold"
    )
    assert [line.split()[0] for line in lines[1:-1]] == ["ok"] * len(CHECKS)
    assert "stream NEW_AND_OLD_IMAGES" in out and "owner-index, due-index, audit-owner-index" in out
    assert not any(s in out + err for s in secrets)


def test_json_is_one_document_with_a_check_each(local: Any, capfd: pytest.CaptureFixture[str]) -> None:
    code, doc, _ = doctor(capfd, "--json")
    assert code == 0
    assert set(doc) == {"stack", "region", "ok", "checks"} and doc["stack"] == STACK and doc["ok"] is True
    assert [c["name"] for c in doc["checks"]] == CHECKS
    for check in doc["checks"]:
        assert set(check) == {"name", "ok", "detail", "remedy"} and check["ok"] and check["remedy"] == ""


def _delete_pepper(stack: Any) -> None:
    aws.client("secretsmanager").delete_secret(
        SecretId=stack.refs["PepperSecret"], ForceDeleteWithoutRecovery=True
    )


def _disable_schedule(stack: Any) -> None:
    scheduler = aws.client("scheduler")
    schedule = scheduler.get_schedule(Name=stack.refs["RotationFunctionHourly"])
    scheduler.update_schedule(
        Name=schedule["Name"],
        ScheduleExpression=schedule["ScheduleExpression"],
        FlexibleTimeWindow=schedule["FlexibleTimeWindow"],
        Target=schedule["Target"],
        State="DISABLED",
    )


def _remove_subscription(stack: Any) -> None:
    aws.client("logs").delete_subscription_filter(
        logGroupName=stack.refs["SampleApiAccessLogs"], filterName=stack.refs["UsageFunctionAccessLogs"]
    )


def _alarm_in_alarm(stack: Any) -> None:
    aws.client("cloudwatch").set_alarm_state(
        AlarmName=stack.refs["AlertsErrorAlarm"],
        StateValue="ALARM",
        StateReason="Threshold Crossed: 3 errors",
    )


def _drop_nonce_table(stack: Any) -> None:
    aws.client("dynamodb").delete_table(TableName=stack.refs["NonceTable"])


def _no_scanning_keys(stack: Any) -> None:
    aws.client("ssm").put_parameter(
        Name=stack.refs["GitHubScanningKeys"], Value='{"public_keys": []}', Overwrite=True
    )


def _self_rotation_open_to_any_key(stack: Any) -> None:
    client = aws.client("lambda")
    function = stack.refs["AuthorizerFunction"]
    env = client.get_function_configuration(FunctionName=function)["Environment"]["Variables"]
    env["ROUTE_SCOPES"] = json.dumps({"GET /v1/prices/*": "prices:read", "ANY /self*": ""})
    client.update_function_configuration(FunctionName=function, Environment={"Variables": env})


def _disable_kms_key(stack: Any) -> None:
    aws.client("kms").disable_key(KeyId=stack.refs["SigningSecretsKey"])


BREAKS: dict[str, tuple[Callable[[Any], None], str, str]] = {
    "pepper deleted": (_delete_pepper, "pepper", "restore-secret"),
    "schedule disabled": (_disable_schedule, "rotation schedule", "enable it"),
    "subscription removed": (_remove_subscription, "usage subscriptions", "put-subscription-filter"),
    "alarm in ALARM": (_alarm_in_alarm, "alarms", "docs/operations.md"),
    "table missing": (_drop_nonce_table, "nonce table", "redeploy"),
    "no scanning keys": (_no_scanning_keys, "github scanning keys", "aws lambda invoke"),
    "self rotation open": (_self_rotation_open_to_any_key, "authorizer settings", "RouteScopes"),
    "kms key disabled": (_disable_kms_key, "kms", "aws kms enable-key"),
}


@pytest.mark.parametrize("case", sorted(BREAKS))
def test_one_thing_broken_fails_exactly_its_check_with_its_remedy(
    local: Any, capfd: pytest.CaptureFixture[str], case: str
) -> None:
    secrets = pepper_values(local)
    breaks, check, remedy = BREAKS[case]
    breaks(local)
    failed = failing(capfd)
    assert list(failed) == [check]
    assert remedy in failed[check]["remedy"]
    # and the text says the same on the check's one line, its exit code 1
    code, out, err = doctor(capfd)
    (line,) = [line for line in out.splitlines() if line.startswith("FAIL")]
    assert code == 1 and line.split(None, 1)[1].startswith(check) and "fix: " in line
    assert not any(s in out + err for s in secrets)


def test_the_subscription_remedy_names_the_usage_function_and_the_group(
    local: Any, capfd: pytest.CaptureFixture[str]
) -> None:
    _remove_subscription(local)
    check = failing(capfd)["usage subscriptions"]
    assert local.refs["SampleApiAccessLogs"] in check["detail"]
    assert local.attrs["UsageFunction"]["Arn"] in check["remedy"]


def test_a_malformed_pepper_fails_without_showing_it(local: Any, capfd: pytest.CaptureFixture[str]) -> None:
    short = "tooShortPepperValue42"
    aws.client("secretsmanager").put_secret_value(
        SecretId=local.refs["PepperSecret"], SecretString=json.dumps({"current": "2", "2": short})
    )
    check = failing(capfd)["pepper"]
    assert "shorter than 32 bytes" in check["detail"]
    code, out, err = doctor(capfd)
    assert code == 1 and short not in out + err


def test_a_missing_heartbeat_fails_the_rotation_check_and_a_run_is_shown(
    local: Any, capfd: pytest.CaptureFixture[str]
) -> None:
    import datetime as dt

    alarm = local.refs["RotationHeartbeatAlarm"]
    cloudwatch = aws.client("cloudwatch")
    (described,) = cloudwatch.describe_alarms(AlarmNames=[alarm])["MetricAlarms"]
    cloudwatch.put_metric_data(
        Namespace=described["Namespace"],
        MetricData=[
            {
                "MetricName": described["MetricName"],
                "Dimensions": described["Dimensions"],
                "Value": 1,
                "Timestamp": dt.datetime.now(dt.UTC) - dt.timedelta(minutes=20),
            }
        ],
    )
    code, doc, _ = doctor(capfd, "--json")
    rotation = next(c for c in doc["checks"] if c["name"] == "rotation schedule")
    assert code == 0 and "last run" in rotation["detail"] and "min ago" in rotation["detail"]
    cloudwatch.set_alarm_state(AlarmName=alarm, StateValue="ALARM", StateReason="no heartbeat")
    failed = failing(capfd)
    assert set(failed) == {"rotation schedule", "alarms"}
    assert "RotationHeartbeatAlarm is in ALARM" in failed["rotation schedule"]["detail"]
    assert "rotation run" in failed["rotation schedule"]["remedy"]


def test_without_a_stack_the_error_says_how_to_name_one(
    local: Any, capfd: pytest.CaptureFixture[str]
) -> None:
    code = cli.main(["doctor"])
    _, err = capfd.readouterr()
    assert code == cli.EXIT_USAGE and "--stack NAME" in err and "Traceback" not in err
    code = cli.main(["--stack", "no-such-stack", "doctor", "--json"])
    out, err = capfd.readouterr()
    assert code == cli.EXIT_AWS and out == "" and "no stack named no-such-stack" in json.loads(err)["error"]
