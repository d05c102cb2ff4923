"""A key whose time is up reads ``expired`` everywhere at once (show, list, the status filter, the
API, the answers to a change), as the authorizer already refuses it, while the schedule stays the
writer of record: the stored status changes only when it runs, and the stream alerts once."""

from __future__ import annotations

import json
from typing import Any

import pytest
from keysentry import cli
from keysentry.model import Status
from keysentry.rotation import RotationJob

from functions.alerts import handler as alerts_handler
from functions.authorizer import handler as authorizer_handler
from tests.conftest import FakeClock, all_items
from tests.integration.api_helpers import call
from tests.integration.authz_helpers import effect, event, install_authorizer
from tests.integration.stream_helpers import StreamReader, Targets, batch

ROUTES = '{"GET /v1/prices/*": "prices:read", "GET /self": ""}'
OWNER = "acme-data"

pytestmark = pytest.mark.usefixtures("api_service")


def cli_run(clock: FakeClock, capfd: pytest.CaptureFixture[str], *argv: str) -> tuple[int, Any, str]:
    code = cli.main(list(argv), clock=clock)
    out, err = capfd.readouterr()
    return code, json.loads(out) if "--json" in argv and out else out, err


def listed(clock: FakeClock, capfd: pytest.CaptureFixture[str], *argv: str) -> list[tuple[str, str]]:
    code, doc, err = cli_run(clock, capfd, "keys", "list", "--owner", OWNER, *argv, "--json")
    assert code == 0, err
    return [(k["kid"], k["status"]) for k in doc["keys"]]


def api_listed(lambda_context: Any, status: str) -> list[tuple[str, str]]:
    code, doc = call("api_list_keys", lambda_context, query={"owner": OWNER, "status": status})
    assert code == 200, doc
    return [(k["kid"], k["status"]) for k in doc["keys"]]


def test_a_key_past_its_expiry_reads_expired_everywhere_before_the_schedule_writes_it(
    stack: Any,
    service: Any,
    clock: FakeClock,
    capfd: pytest.CaptureFixture[str],
    lambda_context: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Given a key that expires in a minute, and one that does not
    stream, targets = StreamReader(stack.refs["KeysTable"]), Targets(stack)
    install_authorizer(stack, clock, ROUTES, monkeypatch, cache_ttl=0)
    issued = service.create(OWNER, actor="ops", scopes=["prices:read"], expires_in=60)
    kid, token = issued.record.kid, issued.token
    clock.advance(1)
    other = service.create(OWNER, actor="ops", scopes=["prices:read"]).record.kid
    request = event("authorizer_rest_request_valid", token)

    def authorize() -> str:
        decision = effect(authorizer_handler.lambda_handler(request, lambda_context))
        capfd.readouterr()  # its metrics line
        return decision

    assert authorize() == "Allow"
    assert listed(clock, capfd, "--status", "expired") == []

    # When its expiry is a second past, and the hourly job has not run
    clock.advance(60)

    # Then the authorizer refuses it, and every reading says expired
    assert authorize() == "Deny"
    code, shown, _ = cli_run(clock, capfd, "keys", "show", kid, "--json")
    assert code == 0 and shown["status"] == "expired"
    code, text, _ = cli_run(clock, capfd, "keys", "show", kid)
    assert "status:        expired" in text
    assert listed(clock, capfd) == [(kid, "expired"), (other, "active")]
    assert listed(clock, capfd, "--status", "expired") == [(kid, "expired")]
    assert listed(clock, capfd, "--status", "active") == [(other, "active")]
    code, text, _ = cli_run(clock, capfd, "keys", "list", "--owner", OWNER)
    assert [line.split()[3] for line in text.splitlines()[1:]] == ["expired", "active"]

    assert call("api_get_key", lambda_context, kid=kid)[1]["status"] == "expired"
    assert api_listed(lambda_context, "expired") == [(kid, "expired")]
    assert api_listed(lambda_context, "active") == [(other, "active")]
    whoami = call("api_self", lambda_context, authorizer={"key_id": kid, "owner_id": OWNER})
    assert whoami[0] == 200 and whoami[1]["status"] == "expired"
    assert service.usage(kid)["status"] == "expired"

    # and every change answers that it has expired
    for argv in (["resume", kid], ["suspend", kid], ["rotate", kid], ["revoke", kid, "--reason", "x"]):
        code, _, err = cli_run(clock, capfd, "keys", *argv)
        assert code == 4 and f"key {kid}: it is expired (past its expiry)" in err, (argv, err)
    code, refused = call("api_suspend_key", lambda_context, kid=kid, body={"reason": "x"})
    assert code == 409 and "expired" in json.dumps(refused)

    # and nothing was written: the stored status is the job's to change
    assert service.get(kid).status is Status.ACTIVE
    items = all_items(stack.refs["KeysTable"])
    assert [i["action"]["S"] for i in items if i["pk"]["S"] == kid and "action" in i] == ["create"]

    # When the job runs, it writes the expiry, and the stream alerts once
    assert RotationJob(service).run().expired == [kid]
    assert service.get(kid).status is Status.EXPIRED
    assert RotationJob(service).run().expired == []
    assert alerts_handler.lambda_handler(batch(stream.read()), lambda_context) == {"batchItemFailures": []}
    capfd.readouterr()  # its log line
    events = [json.loads(e["Message"]) for e in targets.from_sns()]
    assert [(e["type"], e["kid"]) for e in events] == [("created", kid), ("created", other), ("expired", kid)]
    assert listed(clock, capfd, "--status", "expired") == [(kid, "expired")]


def test_a_rotated_key_past_its_grace_reads_expired_and_hands_out_no_successor(
    service: Any, clock: FakeClock, capfd: pytest.CaptureFixture[str], lambda_context: Any
) -> None:
    kid = service.create(OWNER, actor="ops", scopes=["prices:read"]).record.kid
    clock.advance(1)
    successor = service.rotate(kid, actor="ops", grace_days=1).record.kid
    assert listed(clock, capfd, "--status", "rotating") == [(kid, "rotating")]

    clock.advance(days=1, seconds=1)

    assert listed(clock, capfd) == [(kid, "expired"), (successor, "active")]
    assert listed(clock, capfd, "--status", "rotating") == []
    assert listed(clock, capfd, "--status", "expired") == [(kid, "expired")]
    assert call("api_get_key", lambda_context, kid=kid)[1]["status"] == "expired"
    code, _, err = cli_run(clock, capfd, "keys", "suspend", kid, "--reason", "x")
    assert code == 4 and "it is expired (past its rotation grace window)" in err
    assert service.pick_up_successor(kid) is None
    assert service.get(kid).status is Status.ROTATING
    assert RotationJob(service).run().expired == [kid]


def test_a_filtered_listing_fills_its_pages_and_its_cursor_misses_nothing(
    service: Any, clock: FakeClock
) -> None:
    # Given an owner's keys, every other one expiring in a minute
    kids = []
    for n in range(7):
        kids.append(service.create(OWNER, actor="ops", expires_in=60 if n % 2 else None).record.kid)
        clock.advance(1)
    clock.advance(60)
    expected = {
        "expired": [k for n, k in enumerate(kids) if n % 2],
        "active": [k for n, k in enumerate(kids) if not n % 2],
    }
    for status, wanted in expected.items():
        for owner in (OWNER, None):
            # When the filtered listing is read two keys a page
            pages, cursor = [], None
            while True:
                records, cursor = service.list_keys(owner, status=status, limit=2, cursor=cursor)
                pages.append([r.kid for r in records])
                assert all(r.status == status for r in records)
                if cursor is None:
                    break
            # Then every page but the last is full, and together they hold each key once
            assert all(len(page) == 2 for page in pages[:-1]), pages
            got = [kid for page in pages for kid in page]
            assert sorted(got) == sorted(wanted) and len(got) == len(wanted)
            if owner is not None:
                assert got == wanted  # the owner's listing is oldest first
