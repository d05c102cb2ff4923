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


def test_show_reads_the_id_of_a_pasted_key_and_never_echoes_the_key(
    stack: Any, capfd: pytest.CaptureFixture[str]
) -> None:
    _, created, _ = run(capfd, "keys", "create", "--owner", "acme", "--scope", "a", "--json")
    for argv in (["keys", "show", created["key"]], ["keys", "show", created["key"], "--json"]):
        code, shown, err = run(capfd, *argv)
        assert code == 0
        assert created["kid"] in str(shown)
        assert created["key"] not in str(shown) + err
        assert keyformat.parse(created["key"]).token[-20:] not in str(shown) + err


def test_create_takes_metadata_as_pairs_or_json_within_the_apis_bounds(
    stack: Any, capfd: pytest.CaptureFixture[str]
) -> None:
    code, created, _ = run(
        capfd, "keys", "create", "--owner", "acme", "--scope", "a", "--metadata", "team=data",
        "--metadata", '{"ctx_tier": "gold", "note": "a=b"}', "--json",
    )  # fmt: skip
    assert code == 0
    assert created["metadata"] == {"team": "data", "ctx_tier": "gold", "note": "a=b"}
    code, shown, _ = run(capfd, "keys", "show", created["kid"], "--json")
    assert shown["metadata"] == created["metadata"]
    too_many = [arg for i in range(30) for arg in ("--metadata", f"k{i}=v")]
    for bad, message in (
        (["--metadata", "novalue"], "is not name=value"),
        (["--metadata", '{"n": 1}'], "JSON object of name to text"),
        (too_many, "at most"),
    ):
        code, out, err = run(capfd, "keys", "create", "--owner", "acme", "--scope", "a", *bad)
        assert code == 2 and message in err and out == ""


def test_create_without_a_scope_is_refused_until_no_scopes_is_said(
    stack: Any, capfd: pytest.CaptureFixture[str]
) -> None:
    code, out, err = run(capfd, "keys", "create", "--owner", "acme")
    assert code == 2 and out == ""
    assert "--scope" in err and "--no-scopes" in err and "/self" in err
    _, listed, _ = run(capfd, "keys", "list", "--json")
    assert listed["keys"] == []  # nothing was made
    code, created, _ = run(capfd, "keys", "create", "--owner", "acme", "--no-scopes", "--json")
    assert code == 0 and created["scopes"] == []
    with pytest.raises(SystemExit):
        cli.main(["keys", "create", "--owner", "acme", "--no-scopes", "--scope", "a"])
    assert "not allowed with argument" in capfd.readouterr().err


@pytest.mark.parametrize("owner", [None, "acme"])
def test_list_limit_gives_a_full_page_while_more_keys_exist(
    stack: Any, capfd: pytest.CaptureFixture[str], owner: str | None
) -> None:
    # Given three keys, each with audit entries beside it in the table, one of them suspended
    kids = [
        run(capfd, "keys", "create", "--owner", "acme", "--scope", "a", "--json")[1]["kid"] for _ in range(3)
    ]
    run(capfd, "keys", "suspend", kids[0], "--reason", "x")
    by_owner = ["--owner", owner] if owner else []
    # When they are listed two at a time
    _, first, _ = run(capfd, "keys", "list", *by_owner, "--limit", "2", "--json")
    _, rest, _ = run(
        capfd, "keys", "list", *by_owner, "--limit", "2", "--cursor", first["next_cursor"], "--json"
    )
    # Then the first page is full, and the pages hold every key once
    assert len(first["keys"]) == 2 and first["next_cursor"]
    assert len(rest["keys"]) == 1 and rest["next_cursor"] is None
    assert sorted(k["kid"] for k in first["keys"] + rest["keys"]) == sorted(kids)
    # and a status filter fills its page too
    _, active, _ = run(capfd, "keys", "list", *by_owner, "--status", "active", "--limit", "2", "--json")
    assert sorted(k["kid"] for k in active["keys"]) == sorted(kids[1:])
    code, text, _ = run(capfd, "keys", "list", *by_owner, "--limit", "2")
    assert code == 0 and len([line for line in text.splitlines() if line.split()[0] in kids]) == 2
    assert "more: --cursor" in text


def test_update_prints_the_plan_it_set(stack: Any, capfd: pytest.CaptureFixture[str]) -> None:
    _, created, _ = run(capfd, "keys", "create", "--owner", "acme", "--scope", "a", "--json")
    code, text, _ = run(capfd, "keys", "update", created["kid"], "--plan", "pro")
    assert code == 0
    assert any(line.startswith("plan:") and "pro" in line for line in text.splitlines())
    _, doc, _ = run(capfd, "keys", "update", created["kid"], "--plan", "free", "--json")
    assert doc["plan"] == "free"


@pytest.mark.parametrize(
    "argv, code",
    [
        (["keys", "show", "AAAAAAAAAAAA"], 3),
        (["keys", "show", "nope"], 2),
        (["keys", "create", "--owner", "acme"], 2),
        (["keys", "revoke", "AAAAAAAAAAAA", "--reason", "x"], 3),
        (["rotation", "run", "--now", "yesterday"], 2),
    ],
)
def test_with_json_an_error_is_a_document_on_stderr_with_the_same_exit_code(
    stack: Any, capfd: pytest.CaptureFixture[str], argv: list[str], code: int
) -> None:
    text_code, _, text_err = run(capfd, *argv)
    got, out, err = run(capfd, *argv, "--json")
    assert got == text_code == code and out == ""
    doc = json.loads(err)
    assert doc == {"error": text_err.removeprefix("error: ").strip(), "code": code}
