"""Promises about rotating the pepper: it reaches warm containers, re-hashes are audited, and the
operator can tell when an old pepper may go. The operations guide's procedure, step by step."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from typing import Any

import pytest
from keysentry import aws, cli
from keysentry.authorizer import Authorizer, Unauthorized
from keysentry.peppers import PepperSource
from keysentry.routes import RouteTable
from keysentry.service import KeyService
from keysentry.settings import Settings
from keysentry.store import KeyStore

from tests.conftest import ROOT, FakeClock, Monotonic
from tests.integration.authz_helpers import effect, event

ROUTES = '{"GET /v1/prices/*": "prices:read"}'
MAX_AGE = 300


@pytest.fixture
def warm(stack: Any, clock: FakeClock, mono: Monotonic) -> tuple[KeyService, Authorizer]:
    """One warm API container (the service) and one warm authorizer container, each with its own
    copy of the pepper secret, both on the same monotonic clock."""
    secret = stack.refs["PepperSecret"]
    service = KeyService(
        KeyStore(stack.refs["KeysTable"]),
        PepperSource(secret, max_age=MAX_AGE, monotonic=mono),
        settings=Settings.from_env(),
        clock=clock,
    )
    authorizer = Authorizer(
        KeyStore(stack.refs["KeysTable"]),
        PepperSource(secret, max_age=MAX_AGE, monotonic=mono),
        RouteTable.from_json(ROUTES),
        clock=clock,
        monotonic=mono,
    )
    return service, authorizer


def allow(authorizer: Authorizer, token: str) -> str:
    from keysentry.authorizer import read_request, respond

    request = read_request(event("authorizer_rest_request_valid", token))
    assert request is not None
    return effect(respond(authorizer, request, authorizer.decide(request)))


def _procedure_snippets() -> list[tuple[str, list[str]]]:
    """The python3 -c programs of the guide's pepper procedure, with their arguments."""
    guide = (ROOT / "docs" / "operations.md").read_text()
    section = guide[guide.index("## Rotating the pepper") :]
    section = section[: section.index("\n## ", 1)]
    return [(code, args.split()) for code, args in re.findall(r"python3 -c '([^']*)'([^\\\n|]*)", section)]


def _run_step(secret_id: str, code: str, args: list[str]) -> None:
    """get-secret-value | python3 -c '...' | put-secret-value, as the guide has it."""
    sm = aws.client("secretsmanager")
    current = sm.get_secret_value(SecretId=secret_id)["SecretString"]
    done = subprocess.run(  # noqa: S603 - the guide's own program, run as the guide runs it
        [sys.executable, "-c", code, *args], input=current, capture_output=True, text=True, check=True
    )
    assert done.stdout.count("\n") == 1 and not done.stderr, "one line, nothing on the terminal"
    sm.put_secret_value(SecretId=secret_id, SecretString=done.stdout.strip())


def _secret(stack: Any) -> dict[str, str]:
    text = aws.client("secretsmanager").get_secret_value(SecretId=stack.refs["PepperSecret"])["SecretString"]
    return json.loads(text)  # type: ignore[no-any-return]


def _status(capfd: pytest.CaptureFixture[str], *flags: str) -> dict[str, Any]:
    capfd.readouterr()
    assert cli.main(["peppers", "status", "--json", *flags]) == 0
    return json.loads(capfd.readouterr().out)  # type: ignore[no-any-return]


def _counts(status: dict[str, Any]) -> dict[str, int]:
    return {v["version"]: v["live_keys"] for v in status["versions"]}


def test_the_guides_pepper_procedure_step_by_step(
    stack: Any,
    warm: tuple[KeyService, Authorizer],
    mono: Monotonic,
    clock: FakeClock,
    capfd: pytest.CaptureFixture[str],
) -> None:
    service, authorizer = warm
    add_version, remove_version = _procedure_snippets()
    used = service.create("acme", actor="ops", scopes=["prices:read"])
    idle = service.create("acme", actor="ops", scopes=["prices:read"])
    parked = service.create("acme", actor="ops", scopes=["prices:read"])
    service.suspend(parked.record.kid, actor="ops", reason="holiday")
    dead = service.create("acme", actor="ops", scopes=["prices:read"])
    service.revoke(dead.record.kid, actor="ops", reason="gone")
    assert allow(authorizer, used.token) == "Allow"  # both containers are warm, on version 1

    # 1. where the live keys stand
    assert _counts(_status(capfd)) == {"1": 3}

    # 2. add a version, point current at it
    _run_step(stack.refs["PepperSecret"], *add_version)
    secret = _secret(stack)
    assert secret["current"] == "2" and len(secret["2"]) == 64 and secret["1"]

    # 3. within PepperMaxAgeSeconds, the warm containers use it
    mono.now += MAX_AGE - 1
    late = service.create("acme", actor="ops")
    assert late.record.pepper_version == "1", "not yet: the container's copy is not that old"
    mono.now += 1
    newer = service.create("acme", actor="ops", scopes=["prices:read"])
    assert newer.record.pepper_version == "2"
    clock.advance(60)
    assert allow(authorizer, used.token) == "Allow"
    rehashed = service.get(used.record.kid)
    assert rehashed.pepper_version == "2" and rehashed.version == used.record.version
    entry = service.audit(used.record.kid)[-1]
    assert (entry.action, entry.actor) == ("rehash", "keysentry:authorizer")
    assert entry.changes == {"pepper_version": {"from": "1", "to": "2"}}
    assert allow(authorizer, used.token) == "Allow" and allow(authorizer, newer.token) == "Allow"

    # 4. the keys nobody used are still on version 1: listed, then rotated
    status = _status(capfd, "--kids")
    assert _counts(status)["1"] == 3 and status["removable"] == []
    (old,) = [v for v in status["versions"] if v["version"] == "1"]
    assert old["kids"] == sorted([idle.record.kid, parked.record.kid, late.record.kid])
    successor = service.rotate(idle.record.kid, actor="ops", grace_days=0)
    assert successor.record.pepper_version == "2"
    service.revoke(parked.record.kid, actor="ops", reason="not coming back")
    service.revoke(late.record.kid, actor="ops", reason="replaced")
    assert _counts(_status(capfd)).get("1", 0) == 1, "a rotating key in grace is live"
    clock.advance(1)
    service.expire(service.get(idle.record.kid), actor="ops", reason="grace over")

    # 5. no live key under version 1: remove it, and everything live still verifies
    status = _status(capfd)
    assert _counts(status)["1"] == 0 and status["removable"] == ["1"]
    capfd.readouterr()
    assert cli.main(["peppers", "status"]) == 0
    assert "no live key: may be removed" in capfd.readouterr().out
    code, args = remove_version
    assert args == ["1"]
    _run_step(stack.refs["PepperSecret"], code, args)
    assert sorted(_secret(stack)) == ["2", "current"]
    mono.now += MAX_AGE
    for token in (used.token, newer.token, successor.token):
        assert allow(authorizer, token) == "Allow"
    with pytest.raises(Unauthorized):
        allow(authorizer, dead.token)  # revoked, and its pepper gone: refused either way
    assert _counts(_status(capfd)) == {"2": 3}


def test_the_removal_step_refuses_the_current_version(stack: Any) -> None:
    _, remove_version = _procedure_snippets()
    with pytest.raises(subprocess.CalledProcessError):
        _run_step(stack.refs["PepperSecret"], remove_version[0], ["1"])
    assert _secret(stack)["current"] == "1" and "1" in _secret(stack)


def test_pepper_status_reads_the_due_index_never_a_scan(
    service: Any, capfd: pytest.CaptureFixture[str]
) -> None:
    for _ in range(3):
        service.create("acme", actor="ops")
    calls: list[str] = []
    aws.client("dynamodb").meta.events.register("before-call", lambda model, **_: calls.append(model.name))
    status = _status(capfd)
    assert _counts(status) == {"1": 3} and status["current"] == "1"
    assert "Scan" not in calls and set(calls) == {"Query", "BatchGetItem"}


def test_a_version_live_keys_need_but_the_secret_lacks_is_flagged(
    stack: Any, service: Any, capfd: pytest.CaptureFixture[str]
) -> None:
    service.create("acme", actor="ops")
    aws.client("secretsmanager").put_secret_value(
        SecretId=stack.refs["PepperSecret"], SecretString=json.dumps({"current": "2", "2": "p" * 64})
    )
    service.peppers._peppers = None  # a new container
    status = _status(capfd)
    assert [(v["version"], v["live_keys"], v["in_secret"]) for v in status["versions"]] == [
        ("1", 1, False),
        ("2", 0, True),
    ]
    assert status["removable"] == []
    assert cli.main(["peppers", "status"]) == 0
    assert "NOT IN THE SECRET" in capfd.readouterr().out


def test_every_function_gets_the_pepper_max_age_from_the_template(stack: Any) -> None:
    assert stack.function_environment()["PEPPER_MAX_AGE_SECONDS"] == "300"
