"""The CLI's tables as an operator reads them: an owner's keys and audit trail, times relative to a
fixed clock, --owner keeping other owners out, --output json unchanged for scripts, and docs/cli.md's
examples exactly what the commands print."""

from __future__ import annotations

import json
import re
import shlex
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from keysentry import cli

from tests.conftest import T0, FakeClock

CLI_DOC = Path(__file__).resolve().parents[2] / "docs" / "cli.md"
KID = re.compile(r"\b[0-9A-Za-z]{12}\b")
DAY = 86_400


@dataclass
class Scenario:
    """acme-data's keys, 40 days into their life, and one key of another owner."""

    feed: str
    successor: str
    backfill: str
    other: str


def run(clock: FakeClock, capfd: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = cli.main(list(argv), clock=clock)
    out, err = capfd.readouterr()
    return code, out, err


def created(clock: FakeClock, capfd: pytest.CaptureFixture[str], *argv: str) -> str:
    code, out, _ = run(clock, capfd, "keys", "create", *argv, "--json")
    assert code == 0
    return str(json.loads(out)["kid"])


@pytest.fixture
def scenario(
    service: Any, clock: FakeClock, capfd: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> Scenario:
    monkeypatch.setenv("KEYSENTRY_ACTOR", "cli:dana")
    clock.now = T0 - 40 * DAY
    feed = created(
        clock, capfd, "--owner", "acme-data", "--name", "price feed", "--scope", "prices:read",
        "--scope", "prices:history", "--scope", "prices:stream", "--rotation-days", "30", "--expires-in-days", "180",
    )  # fmt: skip
    other = created(clock, capfd, "--owner", "globex", "--name", "orders", "--scope", "orders:write")
    clock.now = T0 - 12 * DAY
    backfill = created(
        clock, capfd, "--owner", "acme-data", "--name", "nightly backfill of the price history",
        "--scope", "prices:history", "--plan", "free", "--expires-in-days", "14",
    )  # fmt: skip
    clock.now = T0 - 5 * DAY
    code, out, _ = run(clock, capfd, "keys", "rotate", feed, "--grace-days", "7", "--json")
    assert code == 0
    successor = json.loads(out)["kid"]
    clock.now = T0 - 2 * 3600
    assert service.store.touch(successor, clock.now, stale_before=clock.now)  # the authorizer's record of use
    clock.now = T0 - 3 * 3600
    assert run(clock, capfd, "keys", "suspend", backfill, "--reason", "leaked in a gist")[0] == 0
    clock.now = T0
    return Scenario(feed, successor, backfill, other)


def test_keys_list_is_a_table_with_times_from_now(
    scenario: Scenario, clock: FakeClock, capfd: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = run(clock, capfd, "keys", "list", "--owner", "acme-data")
    assert code == 0
    header, *rows = out.splitlines()
    assert header.split() == ["KID", "OWNER", "NAME", "STATUS", "PLAN", "SCOPES", "EXPIRES", "LAST", "USED"]
    by_kid = {row[:12]: row for row in rows}
    assert set(by_kid) == {scenario.feed, scenario.successor, scenario.backfill}
    # the rotating key stops working when its grace ends (in 2 d), its successor was used 2 h ago
    assert "rotating" in by_kid[scenario.feed] and "in 2 d" in by_kid[scenario.feed]
    assert by_kid[scenario.successor].endswith("in 140 d  2 h ago")  # rotation never extends expiry
    assert by_kid[scenario.feed].rstrip().endswith("never")
    # a long name and a long scope list are cut, the columns still start where the header's do
    assert "nightly backfill of…" in by_kid[scenario.backfill] and "prices:read,prices:history,…" in out
    for title in ("STATUS", "PLAN", "EXPIRES", "LAST USED"):
        at = header.index(title)
        assert all(row[at - 2 : at] == "  " and row[at] != " " for row in rows), title
    assert "free" in by_kid[scenario.backfill] and "unlimited" in by_kid[scenario.feed]


def test_owner_keeps_other_owners_out_of_every_list(
    scenario: Scenario, clock: FakeClock, capfd: pytest.CaptureFixture[str]
) -> None:
    everyone = run(clock, capfd, "keys", "list")[1]
    assert scenario.other in everyone and scenario.feed in everyone
    for argv in (["keys", "list"], ["audit"], ["usage"]):
        code, out, _ = run(clock, capfd, *argv, "--owner", "acme-data")
        assert code == 0 and scenario.feed in out and scenario.other not in out, argv
        code, out, _ = run(clock, capfd, *argv, "--owner", "globex")
        assert code == 0 and scenario.other in out and scenario.feed not in out, argv


def test_the_audit_trails_say_when_who_what_and_why(
    scenario: Scenario, clock: FakeClock, capfd: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = run(clock, capfd, "audit", "--owner", "acme-data")
    assert code == 0
    header, *rows = out.splitlines()
    assert header.split()[:4] == ["WHEN", "KID", "ACTION", "STATUS"]
    assert rows[0].split()[:6] == ["3", "h", "ago", scenario.backfill, "suspend", "active"]
    assert rows[0].endswith("cli:dana  leaked in a gist")
    code, out, _ = run(clock, capfd, "keys", "audit", scenario.feed)
    assert code == 0
    lines = out.splitlines()
    assert lines[1].startswith("40 d ago  create") and lines[2].startswith("5 d ago   rotate")
    assert "active -> rotating" in lines[2] and "KID" not in lines[0]


@pytest.mark.parametrize(
    "argv",
    [
        ["keys", "list", "--owner", "acme-data"],
        ["audit", "--owner", "acme-data"],
        ["usage", "--owner", "acme-data"],
    ],
)
def test_output_json_is_what_json_printed_and_the_table_is_the_default(
    scenario: Scenario, clock: FakeClock, capfd: pytest.CaptureFixture[str], argv: list[str]
) -> None:
    _, as_json, _ = run(clock, capfd, *argv, "--json")
    _, as_output, _ = run(clock, capfd, *argv, "--output", "json")
    _, as_short, _ = run(clock, capfd, "-o", "json", *argv)
    _, before, _ = run(clock, capfd, "--json", *argv)  # before the command, as after it
    assert json.loads(as_json) == json.loads(as_output) == json.loads(as_short) == json.loads(before)
    _, table, _ = run(clock, capfd, *argv)
    assert run(clock, capfd, *argv, "--output", "table")[1] == table
    with pytest.raises(ValueError):
        json.loads(table)


def test_json_keeps_the_fields_scripts_read(
    scenario: Scenario, clock: FakeClock, capfd: pytest.CaptureFixture[str]
) -> None:
    listed = json.loads(run(clock, capfd, "keys", "list", "--owner", "acme-data", "--json")[1])
    assert set(listed) == {"keys", "next_cursor"}
    successor = next(k for k in listed["keys"] if k["kid"] == scenario.successor)
    assert successor["last_used_at"] == T0 - 2 * 3600 and successor["owner_id"] == "acme-data"
    audit = json.loads(run(clock, capfd, "audit", "--owner", "acme-data", "--json")[1])
    assert set(audit) == {"owner", "entries", "next_cursor"}
    assert audit["entries"][0]["at"] == T0 - 3 * 3600 and audit["entries"][0]["reason"] == "leaked in a gist"


def test_an_unknown_output_is_a_usage_error(capfd: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as raised:
        cli.main(["keys", "list", "--output", "yaml"])
    assert raised.value.code == 2 and "invalid choice: 'yaml'" in capfd.readouterr().err


def documented_examples() -> list[tuple[str, str]]:
    """docs/cli.md's ``$ keysentry ...`` console examples (but usage reports) and what each shows."""
    section = CLI_DOC.read_text()
    blocks = re.findall(r"```console\n\$ keysentry (.*?)\n(.*?)```", section, re.S)
    return [(command, shown) for command, shown in blocks if "usage" not in command]


def tied_in_any_order(text: str) -> list[str]:
    """The lines, rows that share their first cell (two audit entries of one second: a rotation and
    its successor's creation) in one fixed order: the store returns those in no set order."""
    lines = text.splitlines()
    first = {}
    for i, line in enumerate(lines):
        first.setdefault(line.split("  ")[0], i)
    return sorted(lines, key=lambda line: (first[line.split("  ")[0]], line))


def test_the_cli_document_shows_what_the_cli_prints(
    scenario: Scenario, clock: FakeClock, capfd: pytest.CaptureFixture[str]
) -> None:
    examples = documented_examples()
    assert [command for command, _ in examples][:2] == [
        "keys list --owner acme-data",
        "audit --owner acme-data",
    ]
    kids = [scenario.feed, scenario.successor, scenario.backfill, scenario.other]
    doc_kid: dict[str, str] = {}  # the document's key ids stand for the scenario's: the first list names them
    for command, shown in examples:
        code, out, _ = run(clock, capfd, *shlex.split(command))
        assert code == 0
        printed = [k for k in dict.fromkeys(KID.findall(out)) if k in kids and k not in doc_kid]
        named = [k for k in dict.fromkeys(KID.findall(shown)) if k not in doc_kid.values()]
        assert len(printed) == len(named), (command, out)
        doc_kid.update(zip(printed, named, strict=True))
        for mine, theirs in doc_kid.items():
            out = out.replace(mine, theirs)
        assert tied_in_any_order(out) == tied_in_any_order(shown), f"`keysentry {command}` prints:\n{out}"


@pytest.mark.parametrize("output", ["table", "json"])
@pytest.mark.parametrize(
    "argv, code, message",
    [
        (["keys", "list", "--status", "lost"], 2, "status must be one of"),
        (["keys", "list", "--owner", "bad owner"], 2, "owner"),
        (["keys", "list", "--limit", "5000"], 2, "limit must be between 1 and"),
        (["keys", "list", "--cursor", "not-a-cursor"], 2, "cursor"),
        (["audit", "--owner", "acme-data", "--cursor", "not-a-cursor"], 2, "cursor"),
        (["audit", "--owner", "bad owner"], 2, "owner"),
        (["usage", "--owner", "bad owner"], 2, "owner"),
        (["keys", "audit", "AAAAAAAAAAAA"], 3, "no key with id AAAAAAAAAAAA"),
    ],
)
def test_a_list_asked_wrongly_exits_as_before_in_either_output(
    stack: Any,
    clock: FakeClock,
    capfd: pytest.CaptureFixture[str],
    output: str,
    argv: list[str],
    code: int,
    message: str,
) -> None:
    got, out, err = run(clock, capfd, *argv, "--output", output)
    assert (got, out) == (code, "")
    assert message in err and "Traceback" not in err


def test_a_stored_value_cannot_send_the_terminal_an_escape_sequence(
    stack: Any, clock: FakeClock, capfd: pytest.CaptureFixture[str]
) -> None:
    # Given an audit entry whose actor holds escape sequences (a window title, a colour) and a newline
    kid = created(
        clock,
        capfd,
        "--owner",
        "acme-data",
        "--no-scopes",
        "--actor",
        "ops\x1b]0;pwned\x07\x1b[31m\nfake row",
    )

    # When the trails are printed as tables
    for argv in (["audit", "--owner", "acme-data"], ["keys", "audit", kid]):
        code, out, _ = run(clock, capfd, *argv)

        # Then the row stays one row and the terminal gets no escape character
        assert code == 0 and "\x1b" not in out and "\x07" not in out
        assert len(out.splitlines()) == 2 and "ops?]0;pwned??[31m?fake row" in out
