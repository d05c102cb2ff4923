"""Deleting the stack and deploying it again, as docs/operations.md says, under moto: the keys issued
before still pass the authorizer, a signed key's HMAC secret still decrypts.

moto runs no CloudFormation: the deletion follows each resource's DeletionPolicy as template.yaml
states it (keysentry_dev.local.delete_stack), and the import adopts the resources named in the
resources-to-import file the documented command writes (provision(imports=...))."""

from __future__ import annotations

import copy
import json
import shlex
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import ClientError
from keysentry import aws
from keysentry.authorizer import Authorizer
from keysentry.client import sign
from keysentry.settings import AuthorizerSettings
from keysentry_dev import local, recovery

from functions.authorizer import handler
from tests.conftest import ROOT, FakeClock, template
from tests.integration.authz_helpers import effect, event

DOCS = ROOT / "docs" / "operations.md"


def documented_command(program: str) -> list[str]:
    """The arguments of the one line of docs/operations.md that runs ``program``."""
    lines = [line.strip() for line in DOCS.read_text().splitlines() if program in line]
    assert len(lines) == 1, f"docs/operations.md runs {program} once: {lines}"
    words = shlex.split(lines[0])
    return words[words.index(program) + 1 :]


def issue_keys(service: Any) -> tuple[Any, Any]:
    bearer = service.create("acme", actor="ops", scopes=["orders:write"])
    signed = service.create("acme", actor="ops", scopes=["orders:write"], signing="hmac")
    return bearer, signed


def delete(stack: Any, tmp_path: Path, *, unretained: tuple[str, ...] = ()) -> None:
    """Delete the stack (as if its template did not retain ``unretained``); keep its resources'
    listing, as ``list-stack-resources`` gives it."""
    deployed = copy.deepcopy(stack.template)
    for name in unretained:
        del deployed["Resources"][name]["DeletionPolicy"]
    listing = local.delete_stack(replace(stack, template=deployed))
    (tmp_path / "old-resources.json").write_text(json.dumps({"StackResourceSummaries": listing}))


def deploy_again(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, *extra: str) -> Any:
    """Run the documented command on the deleted stack's listing; import, and deploy the rest."""
    monkeypatch.chdir(
        tmp_path
    )  # where the documented command is run; template.yaml is found beside the package
    assert recovery.main([*documented_command("keysentry_dev.recovery"), *extra]) == 0
    imports = json.loads((tmp_path / "resources-to-import.json").read_text())
    new = local.provision(template(), imports=imports)
    for name, value in new.function_environment().items():
        monkeypatch.setenv(name, value)
    return new


def authorizer_of(stack: Any, clock: FakeClock, monkeypatch: pytest.MonkeyPatch) -> Authorizer:
    """The authorizer function of ``stack`` as deployed: its environment, built as the handler does."""
    variables = template()["Resources"]["AuthorizerFunction"]["Properties"]["Environment"]["Variables"]
    for name, value in stack.environment(variables).items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("ROUTE_SCOPES", '{"POST /v1/orders": "orders:write"}')
    built = Authorizer.from_settings(AuthorizerSettings.from_env())
    built.clock = clock
    monkeypatch.setattr(handler, "_authorizer", built)
    return built


def order(token: str, headers: dict[str, str] | None = None) -> dict[str, Any]:
    doc = event("authorizer_rest_request_wrong_scope", token)  # POST /v1/orders
    doc["headers"] = {"X-Api-Key": token, **(headers or {})}
    doc["multiValueHeaders"] = {k: [v] for k, v in doc["headers"].items()}
    doc["queryStringParameters"], doc["multiValueQueryStringParameters"] = {}, {}
    return doc


def signed_order(issued: Any, clock: FakeClock) -> dict[str, Any]:
    headers = sign(
        "POST",
        "/v1/orders",
        {},
        b"{}",
        key=issued.token,
        secret=issued.signing_secret,
        timestamp_ms=clock.now * 1000,
    )
    return order(issued.token, headers)


def decide(doc: dict[str, Any], lambda_context: Any) -> str:
    """Allow, Deny, or Unauthorized (401: the handler raises it)."""
    try:
        return effect(handler.lambda_handler(doc, lambda_context))
    except Exception as error:
        return type(error).__name__


def exists(kind: str, name: str) -> bool:
    try:
        if kind == "table":
            aws.client("dynamodb").describe_table(TableName=name)
        else:
            aws.client("secretsmanager").get_secret_value(SecretId=name)
    except ClientError:
        return False
    return True


def test_keys_issued_before_the_stack_was_deleted_work_in_the_stack_deployed_again(
    stack: Any,
    service: Any,
    clock: FakeClock,
    lambda_context: Any,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Given a bearer key and an HMAC-signed key, both allowed
    bearer, signed = issue_keys(service)
    authorizer_of(stack, clock, monkeypatch)
    assert decide(order(bearer.token), lambda_context) == "Allow"
    assert decide(signed_order(signed, clock), lambda_context) == "Allow"
    old = dict(stack.refs)

    # When the stack is deleted: what it does not retain is gone, the table, pepper and key are left
    delete(stack, tmp_path)
    assert not exists("table", old["NonceTable"]) and not exists("table", old["IdempotencyTable"])
    assert exists("table", old["KeysTable"]) and exists("secret", old["PepperSecret"])

    # and it is deployed again as docs/operations.md says: the new stack has them, the rest is new
    new = deploy_again(tmp_path, monkeypatch)
    for name in ("KeysTable", "UsageTable", "PepperSecret", "SigningSecretsKey"):
        assert new.refs[name] == old[name], name
    assert exists("table", new.refs["NonceTable"])
    plan = json.loads((tmp_path / "template-import.json").read_text())
    assert set(plan["Resources"]) == {"KeysTable", "UsageTable", "PepperSecret", "SigningSecretsKey"}
    assert set(plan["Parameters"]) == {"Stage"}  # the tags: pass the old stack's value

    # and the old keys pass the new stack's authorizer; the signing secret decrypts
    clock.advance(60)
    authorizer_of(new, clock, monkeypatch)
    assert decide(order(bearer.token), lambda_context) == "Allow"
    assert decide(signed_order(signed, clock), lambda_context) == "Allow"
    assert decide(order(signed.token), lambda_context) == "Deny"  # unsigned: still required


def test_without_the_old_pepper_the_old_keys_no_longer_verify(
    stack: Any,
    service: Any,
    clock: FakeClock,
    lambda_context: Any,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """What the retention protects: a stack whose pepper was not retained (as before it was), deployed
    again with a new pepper, refuses every key its table holds."""
    bearer, _ = issue_keys(service)
    old_pepper = stack.refs["PepperSecret"]
    delete(stack, tmp_path, unretained=("PepperSecret",))
    assert not exists("secret", old_pepper)
    new = deploy_again(tmp_path, monkeypatch, "--create-anew", "PepperSecret")
    assert new.refs["PepperSecret"] != old_pepper
    authorizer_of(new, clock, monkeypatch)
    assert decide(order(bearer.token), lambda_context) == "Unauthorized"


def test_a_stack_that_did_not_retain_the_pepper_is_not_imported_half(
    stack: Any, tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    # a stack deployed before the pepper was retained: its deletion took the secret with it
    delete(stack, tmp_path, unretained=("PepperSecret",))
    old = tmp_path / "old-resources.json"
    assert recovery.main([str(old), "--out-dir", str(tmp_path)]) == 2
    assert "not retained by the old stack: PepperSecret" in capfd.readouterr().err
    assert not (tmp_path / "resources-to-import.json").exists()
