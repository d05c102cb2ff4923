"""The CLI finds a deployed stack by its name alone: template.yaml's resources made in moto under
names as CloudFormation generates them (no default of keysentry's matches one), and a CloudFormation
stack whose outputs and parameters name them, as DescribeStacks answers for a deployed keysentry."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path
from typing import Any

import pytest
from keysentry import aws, cli, keyformat
from keysentry.cli.stack import FROM_OUTPUT, FROM_PARAMETER

from tests.conftest import template
from tests.integration.stack_helpers import create_cloudformation_stack

STACK = "my-api"
GOLD = '{"gold": {"rate": 7, "burst": 14}, "free": {"rate": 1, "burst": 2}}'


@pytest.fixture
def stack(moto: None, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Any:
    """template.yaml's resources under CloudFormation-style names, the stack that names them, and
    an environment that names none of them (nor a cache of an earlier run)."""
    from keysentry_dev.local import provision
    from keysentry_dev.template import cloudformation_names

    parameters = {"Plans": GOLD, "DefaultPlan": "gold"}
    made = provision(template(), parameters, name=cloudformation_names(STACK, seed=23), stack_name=STACK)
    assert made.refs["KeysTable"].startswith(f"{STACK}-KeysTable-")
    assert made.refs["PepperSecret"].split(":")[-1].startswith("PepperSecret-")
    for name in {*FROM_OUTPUT, *FROM_PARAMETER, *made.function_environment()} - {"AWS_ENDPOINT_URL"}:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.chdir(tmp_path)
    return made


def run(capfd: pytest.CaptureFixture[str], *argv: str) -> tuple[int, Any, str]:
    code = cli.main(list(argv))
    out, err = capfd.readouterr()
    return code, json.loads(out) if "--json" in argv and out else out, err


def test_with_only_the_stack_named_create_list_usage_and_revoke_work(
    stack: Any, capfd: pytest.CaptureFixture[str]
) -> None:
    # When the only setting is --stack
    code, created, err = run(
        capfd, "--stack", STACK, "keys", "create", "--owner", "acme", "--scope", "prices:read", "--json"
    )
    assert code == 0, err
    kid = created["kid"]
    # Then the key lives in the stack's table, on the stack's default plan (its parameters)
    item = aws.client("dynamodb").get_item(
        TableName=stack.refs["KeysTable"], Key={"pk": {"S": kid}, "sk": {"S": "KEY"}}
    )
    assert "Item" in item
    code, listed, _ = run(capfd, "keys", "list", "--owner", "acme", "--stack", STACK, "--json")
    assert code == 0 and [k["kid"] for k in listed["keys"]] == [kid]
    code, shown, _ = run(capfd, "keys", "show", kid, "--stack", STACK, "--json")
    assert code == 0 and shown["plan"]["name"] == "gold" and shown["plan"]["rate"] == 7
    code, report, err = run(capfd, "usage", "--owner", "acme", "--stack", STACK, "--json")
    assert code == 0, err
    assert [k["kid"] for k in report["keys"]] == [kid]
    code, usage, _ = run(capfd, "keys", "usage", kid, "--days", "3", "--stack", STACK, "--json")
    assert code == 0 and usage["kid"] == kid
    code, revoked, _ = run(capfd, "keys", "revoke", kid, "--reason", "done", "--stack", STACK, "--json")
    assert code == 0 and revoked["status"] == "revoked"


def test_keysentry_stack_names_it_too(
    stack: Any, capfd: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("KEYSENTRY_STACK", STACK)
    code, created, err = run(capfd, "keys", "create", "--owner", "acme", "--no-scopes", "--json")
    assert code == 0, err
    assert run(capfd, "keys", "show", created["kid"])[0] == 0


@pytest.mark.parametrize("command", [["keys", "list"], ["keys", "create", "--owner", "a", "--scope", "s"]])
def test_without_the_stack_the_error_names_each_setting_and_where_it_comes_from(
    stack: Any, capfd: pytest.CaptureFixture[str], command: list[str]
) -> None:
    code, out, err = run(capfd, *command)
    assert code == cli.EXIT_USAGE and out == ""
    for name in ("KEYS_TABLE", "USAGE_TABLE", "PEPPER_SECRET_ID", "KMS_KEY_ID"):
        assert name in err
    assert "--stack NAME" in err and "KEYSENTRY_STACK" in err and "Traceback" not in err
    # and with --json, the same as a document on stderr
    code, out, err = run(capfd, *command, "--json")
    assert code == cli.EXIT_USAGE and out == ""
    assert json.loads(err)["code"] == cli.EXIT_USAGE and "KEYS_TABLE" in json.loads(err)["error"]


def test_one_missing_setting_is_named_alone(
    stack: Any, capfd: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    env = stack.function_environment()
    for name in ("USAGE_TABLE", "PEPPER_SECRET_ID", "KMS_KEY_ID"):
        monkeypatch.setenv(name, env[name])
    code, _, err = run(capfd, "keys", "list")
    assert code == cli.EXIT_USAGE
    assert err.startswith("error: KEYS_TABLE is not set: pass --stack NAME (or set KEYSENTRY_STACK)")


def test_a_stack_that_does_not_exist_is_named_and_exits_5(
    stack: Any, capfd: pytest.CaptureFixture[str]
) -> None:
    code, out, err = run(capfd, "--stack", "no-such-stack", "keys", "list")
    assert code == cli.EXIT_AWS and out == ""
    assert "no stack named no-such-stack in us-east-1" in err and "--stack" in err


def test_a_stack_without_keysentrys_outputs_is_named_with_the_output(
    stack: Any, capfd: pytest.CaptureFixture[str]
) -> None:
    create_cloudformation_stack("parent", {"ItemsApiUrl": "https://example.com"}, {})
    code, _, err = run(capfd, "--stack", "parent", "keys", "list")
    assert code == cli.EXIT_USAGE
    assert "stack parent (from --stack) has no output KeysTableName (KEYS_TABLE)" in err
    assert "nested stack" in err


def test_a_variable_that_is_set_wins_over_the_stack_and_is_named_when_wrong(
    stack: Any, capfd: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("KEYS_TABLE", "a-table-that-is-not-there")
    code, _, err = run(capfd, "--stack", STACK, "keys", "list")
    assert code == cli.EXIT_AWS
    assert "ResourceNotFoundException" in err
    assert "KEYS_TABLE=a-table-that-is-not-there from the environment" in err
    assert f"USAGE_TABLE={stack.refs['UsageTable']} from stack {STACK}'s output UsageTableName" in err


def test_a_missing_pepper_secret_exits_5_and_names_its_setting(
    stack: Any, capfd: pytest.CaptureFixture[str]
) -> None:
    aws.client("secretsmanager").delete_secret(
        SecretId=stack.refs["PepperSecret"], ForceDeleteWithoutRecovery=True
    )
    code, out, err = run(capfd, "--stack", STACK, "keys", "create", "--owner", "acme", "--no-scopes")
    assert code == cli.EXIT_AWS and out == ""
    assert "not found (PEPPER_SECRET_ID, from stack my-api's output PepperSecretArn" in err


def test_the_stack_is_read_once_and_cached_without_a_secret_until_refreshed(
    stack: Any, capfd: pytest.CaptureFixture[str]
) -> None:
    assert run(capfd, "--stack", STACK, "keys", "list")[0] == 0
    cache = Path(os.environ["XDG_CACHE_HOME"]) / "keysentry" / "stacks.json"
    assert stat.S_IMODE(cache.stat().st_mode) == 0o600
    pepper = aws.client("secretsmanager").get_secret_value(SecretId=stack.refs["PepperSecret"])
    secret_values = json.loads(pepper["SecretString"]).values()
    assert not any(value in cache.read_text() for value in secret_values if len(value) > 8)
    (entry,) = json.loads(cache.read_text()).values()
    assert entry["outputs"]["KeysTableName"] == stack.refs["KeysTable"]
    # When the stack goes, the cached outputs still serve, until --refresh reads the stack again
    aws.client("cloudformation").delete_stack(StackName=STACK)
    assert run(capfd, "--stack", STACK, "keys", "list")[0] == 0
    code, _, err = run(capfd, "--stack", STACK, "--refresh", "keys", "list")
    assert code == cli.EXIT_AWS and f"no stack named {STACK}" in err


@pytest.mark.parametrize("how", ["option", "variable"])
def test_a_samconfig_environment_names_the_stack(
    stack: Any, capfd: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, how: str
) -> None:
    Path("samconfig.toml").write_text(
        'version = 0.1\n[prod.deploy.parameters]\nstack_name = "my-api"\nregion = "us-east-1"\n'
        '[dev.deploy.parameters]\nstack_name = "keysentry-dev"\n'
    )
    argv = ["--config-env", "prod"] if how == "option" else []
    if how == "variable":
        monkeypatch.setenv("KEYSENTRY_CONFIG_ENV", "prod")
    code, created, err = run(capfd, *argv, "keys", "create", "--owner", "acme", "--no-scopes", "--json")
    assert code == 0, err
    assert keyformat.parse(created["key"]).kid == created["kid"]
    code, _, err = run(capfd, "--config-env", "staging", "keys", "list")
    assert code == cli.EXIT_USAGE and "no stack_name in [staging.deploy.parameters]" in err
    code, _, err = run(capfd, "--config-env", "dev", "keys", "list")
    assert code == cli.EXIT_AWS and "no stack named keysentry-dev" in err


def test_plans_sync_reads_the_stack_too(stack: Any, capfd: pytest.CaptureFixture[str]) -> None:
    code, doc, err = run(capfd, "--stack", STACK, "plans", "sync", "--dry-run", "--json")
    assert code == 0, err
    assert doc["default_plan"] == "gold" and doc["stage"] == "dev"


@pytest.mark.parametrize("spoil", ["aged", "garbled"])
def test_a_cached_stack_older_than_its_ttl_or_unreadable_is_read_again(
    stack: Any, capfd: pytest.CaptureFixture[str], spoil: str
) -> None:
    from keysentry.cli.stack import CACHE_TTL_S

    assert run(capfd, "--stack", STACK, "keys", "list")[0] == 0
    cache = Path(os.environ["XDG_CACHE_HOME"]) / "keysentry" / "stacks.json"
    doc = json.loads(cache.read_text())
    for entry in doc.values():
        entry["read_at"] = entry["read_at"] - CACHE_TTL_S - 1 if spoil == "aged" else "yesterday"
    cache.write_text(json.dumps(doc))
    aws.client("cloudformation").delete_stack(StackName=STACK)
    code, _, err = run(capfd, "--stack", STACK, "keys", "list")
    assert code == cli.EXIT_AWS and f"no stack named {STACK}" in err


def test_a_samconfig_environment_gives_its_region_where_the_shell_sets_none(
    stack: Any, capfd: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    Path("samconfig.toml").write_text(
        '[prod.deploy.parameters]\nstack_name = "my-api"\nregion = "us-east-1"\n'
    )
    for name in ("AWS_DEFAULT_REGION", "AWS_REGION"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(Path("no-config")))  # and no region from a profile
    aws.reset()
    code, _, err = run(capfd, "--stack", STACK, "keys", "list")
    assert code == cli.EXIT_AWS and "no AWS region" in err
    code, _, err = run(capfd, "--config-env", "prod", "keys", "list")
    assert code == 0, err
