"""The operator's CLI: each command, its JSON output, and clear errors for user mistakes."""

from __future__ import annotations

import json
from typing import Any

import pytest
from keysentry import cli, keyformat


def run(capfd: pytest.CaptureFixture[str], *argv: str) -> tuple[int, Any, str]:
    code = cli.main(list(argv))
    out, err = capfd.readouterr()
    try:
        doc = json.loads(out) if "--json" in argv and out else out
    except ValueError:
        doc = out
    return code, doc, err


def test_create_prints_the_key_once_and_it_parses(stack: Any, capfd: pytest.CaptureFixture[str]) -> None:
    code, doc, _ = run(
        capfd,
        "keys", "create", "--owner", "acme", "--name", "feed", "--scope", "prices:read", "--scope", "prices:list",
        "--allow-cidr", "10.0.0.0/8", "--deny-cidr", "2001:db8::/32", "--rotation-days", "30",
        "--expires-in-days", "100", "--env", "test", "--json",
    )  # fmt: skip
    assert code == 0
    parsed = keyformat.parse(doc["key"])
    assert parsed.kid == doc["kid"] and parsed.env == "test"
    assert doc["scopes"] == ["prices:read", "prices:list"]
    assert doc["rotation_days"] == 30
    assert "digest" not in doc

    code, shown, _ = run(capfd, "keys", "show", doc["kid"], "--json")
    assert code == 0 and "key" not in shown and "digest" not in shown
    assert shown["allow_cidrs"] == ["10.0.0.0/8"] and shown["deny_cidrs"] == ["2001:db8::/32"]


def test_the_whole_lifecycle_from_the_command_line(stack: Any, capfd: pytest.CaptureFixture[str]) -> None:
    _, created, _ = run(capfd, "keys", "create", "--owner", "acme", "--no-scopes", "--json")
    kid = created["kid"]
    assert run(capfd, "keys", "suspend", kid, "--reason", "leak?", "--json")[1]["status"] == "suspended"
    assert run(capfd, "keys", "resume", kid, "--json")[1]["status"] == "active"
    assert run(capfd, "keys", "revoke", kid, "--reason", "retired", "--json")[1]["status"] == "revoked"
    _, listed, _ = run(capfd, "keys", "list", "--owner", "acme", "--json")
    assert [k["kid"] for k in listed["keys"]] == [kid]
    _, audit, _ = run(capfd, "keys", "audit", kid, "--json")
    assert [e["action"] for e in audit["entries"]] == ["create", "suspend", "resume", "revoke"]
    assert audit["entries"][1]["reason"] == "leak?"
    code, text, _ = run(capfd, "keys", "audit", kid)
    assert code == 0 and "retired" in text


def test_rotate_from_the_command_line_shows_the_successor_once(
    stack: Any, capfd: pytest.CaptureFixture[str]
) -> None:
    _, created, _ = run(capfd, "keys", "create", "--owner", "acme", "--scope", "a", "--json")
    code, rotated, _ = run(capfd, "keys", "rotate", created["kid"], "--grace-days", "3", "--json")
    assert code == 0
    assert rotated["predecessor"] == created["kid"] and rotated["scopes"] == ["a"]
    assert keyformat.parse(rotated["key"]).kid == rotated["kid"]


@pytest.mark.parametrize(
    "argv, code, message",
    [
        (["keys", "show", "AAAAAAAAAAAA"], 3, "no key with id AAAAAAAAAAAA"),
        (["keys", "show", "nope"], 2, "key id"),
        (
            ["keys", "create", "--owner", "acme", "--no-scopes", "--allow-cidr", "10.0.0.0/33"],
            2,
            "invalid allow CIDR",
        ),
        (
            ["keys", "create", "--owner", "acme", "--no-scopes", "--rotation-days", "120"],
            2,
            "between 30 and 90",
        ),
        (["keys", "create", "--owner", "acme", "--no-scopes", "--expires-in-days", "9999"], 2, "expiry"),
        (["keys", "create", "--owner", "bad owner", "--no-scopes"], 2, "owner"),
        (["keys", "revoke", "AAAAAAAAAAAA", "--reason", "x"], 3, "no key"),
    ],
)
def test_user_mistakes_get_a_clear_error_and_no_traceback(
    stack: Any, capfd: pytest.CaptureFixture[str], argv: list[str], code: int, message: str
) -> None:
    got, out, err = run(capfd, *argv)
    assert got == code
    assert message in err
    assert "Traceback" not in err and out == ""


def test_resuming_a_revoked_key_is_refused(stack: Any, capfd: pytest.CaptureFixture[str]) -> None:
    _, created, _ = run(capfd, "keys", "create", "--owner", "acme", "--no-scopes", "--json")
    run(capfd, "keys", "revoke", created["kid"], "--reason", "gone")
    code, _, err = run(capfd, "keys", "resume", created["kid"])
    assert code == 4 and "it is revoked" in err


def test_revoke_requires_a_reason(stack: Any, capfd: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as raised:
        cli.main(["keys", "revoke", "AAAAAAAAAAAA"])
    assert raised.value.code == 2
    assert "--reason" in capfd.readouterr().err


def test_update_from_the_command_line(stack: Any, capfd: pytest.CaptureFixture[str]) -> None:
    _, created, _ = run(
        capfd, "keys", "create", "--owner", "acme", "--scope", "a", "--allow-cidr", "10.0.0.0/8", "--json"
    )
    code, updated, _ = run(
        capfd,
        "keys",
        "update",
        created["kid"],
        "--scope",
        "b",
        "--scope",
        "c",
        "--allow-cidr",
        "",
        "--rotation-days",
        "45",
        "--json",
    )
    assert code == 0
    assert (updated["scopes"], updated["allow_cidrs"], updated["rotation_days"]) == (["b", "c"], [], 45)
    code, _, err = run(capfd, "keys", "update", created["kid"], "--rotation-days", "10")
    assert code == 2 and "between 30 and 90" in err
    _, audit, _ = run(capfd, "keys", "audit", created["kid"], "--json")
    assert [e["action"] for e in audit["entries"]] == ["create", "update"]
