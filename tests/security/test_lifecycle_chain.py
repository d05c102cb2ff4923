"""Promises about a key's rotation chain: a leak response reaches every key minted from the leaked one.

A key's holder (anyone who has the key) can mint a successor with ``POST /self/rotate`` when the key
carries the ``keys:rotate-self`` scope, and the schedule mints one the holder collects once. Those
successors are as leaked as the key: suspending, revoking or reporting the key acts on them too.
A successor the owner issued (owner rotation, replacement) is where the chain ends.
"""

from __future__ import annotations

import json
import re
import shlex
from typing import Any

import pytest
from keysentry import aws, cli, keyformat
from keysentry.alerts import lifecycle_event
from keysentry.errors import ConflictError
from keysentry.model import DAY, Status
from keysentry.routes import RouteTable

from tests.conftest import ROOT, FakeClock, all_items, template
from tests.integration.api_helpers import call
from tests.integration.stream_helpers import StreamReader
from tests.integration.test_api import github, match, report

__all__ = ["github"]  # the fixture, shared with the API tests

pytestmark = pytest.mark.usefixtures("api_service")

ROTATE_SELF = "keys:rotate-self"
NO_REPLAY = {"Idempotency-Key": ""}  # the example events carry one; these tests mean distinct requests


def create(lambda_context: Any, **body: Any) -> dict[str, Any]:
    payload = {"owner": "acme-data", "scopes": ["prices:read", ROTATE_SELF], **body}
    status, doc = call("api_create_key", lambda_context, body=payload, headers=NO_REPLAY)
    assert status == 200, doc
    return doc  # type: ignore[no-any-return]


def self_rotate(lambda_context: Any, kid: str, **headers: str) -> tuple[int, Any]:
    return call("api_self_rotate", lambda_context, kid=kid, headers=headers or None)


def minted_by_holder(lambda_context: Any, kid: str, links: int) -> list[str]:
    """``links`` successors, each minted by the holder of the one before: [kid, s1, s2, ...]."""
    chain = [kid]
    for _ in range(links):
        status, doc = self_rotate(lambda_context, chain[-1])
        assert status == 200, doc
        chain.append(doc["kid"])
    return chain


def statuses(service: Any, kids: list[str]) -> list[Status]:
    return [service.get(k).status for k in kids]


def pickup_of(stack: Any, kid: str) -> Any:
    item = aws.client("dynamodb").get_item(
        TableName=stack.refs["KeysTable"], Key={"pk": {"S": kid}, "sk": {"S": "KEY"}}
    )["Item"]
    return item.get("pickup")


# ---------------------------------------------------------------- the chain follows the leak


def test_a_leaked_keys_holder_minted_successors_are_suspended_with_it(
    lambda_context: Any, github: Any, service: Any
) -> None:
    doc = create(lambda_context)
    chain = minted_by_holder(lambda_context, doc["kid"], 2)
    status, feedback = report(lambda_context, github, [match(doc["key"])])
    assert status == 200 and feedback[0]["label"] == "true_positive"
    for kid in chain:
        record = service.get(kid)
        assert record.status is Status.SUSPENDED and record.leaked_at is not None, kid
    for kid in chain[1:]:
        entry = service.audit(kid)[-1]
        assert entry.action == "leak" and doc["kid"] in entry.reason, "the reason names the origin key"
    assert self_rotate(lambda_context, chain[-1])[0] == 409, "no link of the chain mints another"


def test_a_leak_reported_after_the_leaked_key_expired_still_reaches_its_successors(
    lambda_context: Any, github: Any, service: Any, clock: FakeClock
) -> None:
    from keysentry.rotation import RotationJob

    doc = create(lambda_context)
    chain = minted_by_holder(lambda_context, doc["kid"], 1)
    clock.advance(days=8)  # the first key's grace ends: the schedule expires it
    RotationJob(service).run()
    assert statuses(service, chain) == [Status.EXPIRED, Status.ACTIVE]
    assert report(lambda_context, github, [match(doc["key"])])[1][0]["label"] == "true_positive"
    assert service.get(chain[1]).status is Status.SUSPENDED and service.get(chain[1]).leaked_at


def test_suspending_a_key_by_hand_suspends_the_successors_its_holder_minted(
    lambda_context: Any, service: Any
) -> None:
    chain = minted_by_holder(lambda_context, create(lambda_context)["kid"], 2)
    status, doc = call("api_suspend_key", lambda_context, kid=chain[0], body={"reason": "in a pastebin"})
    assert status == 200 and doc["status"] == "suspended"
    assert statuses(service, chain) == [Status.SUSPENDED] * 3
    assert all(len(service.audit(k)) >= 2 and service.audit(k)[-1].action == "suspend" for k in chain)


def test_revoking_a_key_stops_the_chain_at_an_owner_issued_successor(
    lambda_context: Any, service: Any
) -> None:
    chain = minted_by_holder(lambda_context, create(lambda_context)["kid"], 1)
    owner_issued = service.rotate(chain[1], actor="ops").record.kid  # the owner's own rotation
    after = minted_by_holder(lambda_context, owner_issued, 1)
    service.revoke(chain[0], actor="ops", reason="leaked")
    assert statuses(service, chain) == [Status.REVOKED, Status.REVOKED]
    assert service.get(owner_issued).status is Status.ROTATING, "the owner's key is not the leak's"
    assert service.get(after[1]).status is Status.ACTIVE


def test_a_revoke_still_wins_over_a_holder_racing_it(
    lambda_context: Any, service: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    chain = minted_by_holder(lambda_context, create(lambda_context)["kid"], 2)
    real_apply, lost = service.store.apply, {chain[1]: 2}

    def racing_apply(old: Any, new: Any) -> Any:
        if lost.get(old.kid):  # someone else writes the key first, twice
            lost[old.kid] -= 1
            raise ConflictError(old.kid)
        return real_apply(old, new)

    monkeypatch.setattr(service.store, "apply", racing_apply)
    service.revoke(chain[0], actor="ops", reason="leaked")
    assert statuses(service, chain) == [Status.REVOKED] * 3


def test_a_chain_that_cannot_be_finished_says_which_keys_are_still_live_and_a_retry_finishes_it(
    lambda_context: Any, service: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    chain = minted_by_holder(lambda_context, create(lambda_context)["kid"], 2)
    real_apply = service.store.apply

    def stuck_apply(old: Any, new: Any) -> Any:
        if old.kid == chain[1]:
            raise ConflictError(old.kid)
        return real_apply(old, new)

    monkeypatch.setattr(service.store, "apply", stuck_apply)
    status, doc = call("api_suspend_key", lambda_context, kid=chain[0], body={"reason": "leaked"})
    assert status == 409 and chain[1] in doc["message"] and "again" in doc["message"]
    assert statuses(service, chain) == [Status.SUSPENDED, Status.ROTATING, Status.SUSPENDED]
    monkeypatch.setattr(service.store, "apply", real_apply)
    status, doc = call("api_suspend_key", lambda_context, kid=chain[0], body={"reason": "leaked"})
    assert status == 200, doc
    assert statuses(service, chain) == [Status.SUSPENDED] * 3
    status, doc = call("api_suspend_key", lambda_context, kid=chain[0], body={"reason": "leaked"})
    assert status == 409, "nothing left to suspend: the lifecycle's answer, as before"


def test_a_scheduled_successor_is_in_the_chain_and_its_pickup_copy_dies_with_a_suspension(
    lambda_context: Any, service: Any, stack: Any, clock: FakeClock
) -> None:
    from keysentry.rotation import RotationJob

    kid = create(lambda_context, rotation_days=30)["kid"]
    clock.advance(days=30)
    successor = RotationJob(service).run().rotated[0].split("->")[1]
    assert pickup_of(stack, successor) is not None
    service.suspend(kid, actor="ops", reason="leaked")
    assert service.get(successor).status is Status.SUSPENDED
    assert pickup_of(stack, successor) is None
    assert call("api_self_successor", lambda_context, kid=kid)[0] == 404


def test_a_revoked_keys_pickup_copy_is_erased(
    lambda_context: Any, service: Any, stack: Any, clock: FakeClock
) -> None:
    from keysentry.rotation import RotationJob

    kid = create(lambda_context, rotation_days=30)["kid"]
    clock.advance(days=30)
    successor = RotationJob(service).run().rotated[0].split("->")[1]
    service.revoke(kid, actor="ops", reason="leaked")
    assert pickup_of(stack, successor) is None
    assert statuses(service, [kid, successor]) == [Status.REVOKED, Status.REVOKED]
    assert "pickup" not in json.dumps(all_items(stack.refs["KeysTable"]))


# ---------------------------------------------------------------- self-rotation is narrow and loud


def test_self_rotation_needs_its_own_scope(lambda_context: Any, service: Any) -> None:
    kid = create(lambda_context, scopes=["prices:read"])["kid"]
    status, doc = self_rotate(lambda_context, kid)
    assert status == 403 and ROTATE_SELF in doc["message"]
    assert service.get(kid).status is Status.ACTIVE


def test_the_default_route_scopes_do_not_grant_self_rotation() -> None:
    default = template()["Parameters"]["RouteScopes"]["Default"]
    routes = RouteTable.from_json(default)
    assert routes.required_scope("POST", "/self/rotate") == ROTATE_SELF
    assert routes.required_scope("POST", "/self/revoke") == ""
    assert routes.required_scope("POST", "/self/successor") == ""
    # The policy a key without the scope gets (cached across its routes) must not open it:
    # no Allow statement covers it, or an explicit Deny does (IAM: an explicit Deny wins).
    policy = routes.policy_for(("prices:read",))

    def covers(resource: str) -> bool:
        pattern = "".join(".*" if p == "*" else re.escape(p) for p in re.split(r"(\*)", resource))
        return re.fullmatch(pattern, "POST/self/rotate") is not None

    assert not any(covers(r) for r in policy.allow) or any(covers(r) for r in policy.deny)


def test_self_rotation_raises_a_medium_alert_and_an_owners_rotation_an_info_one(
    lambda_context: Any, service: Any, stack: Any
) -> None:
    stream = StreamReader(stack.refs["KeysTable"])
    kid = create(lambda_context)["kid"]
    other = create(lambda_context)["kid"]
    stream.read()
    self_rotate(lambda_context, kid)
    service.rotate(other, actor="ops")
    events = [
        lifecycle_event(r["eventID"], r["dynamodb"].get("OldImage"), r["dynamodb"].get("NewImage"))
        for r in stream.read()
    ]
    rotated = {e["kid"]: e["severity"] for e in events if e and e["type"] == "rotated"}
    assert rotated == {kid: "medium", other: "info"}


def test_a_key_under_a_leak_report_cannot_rotate_itself(
    lambda_context: Any, github: Any, service: Any
) -> None:
    doc = create(lambda_context)
    report(lambda_context, github, [match(doc["key"])])
    service.resume(doc["kid"], actor="ops", reason="checking")  # even when the owner lets it work again
    status, body = self_rotate(lambda_context, doc["kid"])
    assert status == 409 and "leak" in body["message"]
    assert service.get(doc["kid"]).successor is None


def test_a_replayed_self_rotation_never_returns_the_key_again(lambda_context: Any, service: Any) -> None:
    kid = create(lambda_context)["kid"]
    first = self_rotate(lambda_context, kid, **{"Idempotency-Key": "retry-1"})
    assert first[0] == 200 and keyformat.parse(first[1]["key"]).kid == first[1]["kid"]
    status, replay = self_rotate(lambda_context, kid, **{"Idempotency-Key": "retry-1"})
    assert status == 200 and replay["kid"] == first[1]["kid"]
    assert "key" not in replay and "signing_secret" not in replay
    assert first[1]["key"] not in json.dumps(replay)
    assert "owner" in replay["notice"] and first[1]["kid"] in replay["notice"]
    assert len(service.audit(kid)) == 2, "one rotation"


# ---------------------------------------------------------------- expiry is a limit


def test_a_successor_never_outlives_its_predecessors_expiry(
    lambda_context: Any, service: Any, clock: FakeClock
) -> None:
    doc = create(lambda_context, expires_in_days=10)
    kid, deadline = doc["kid"], doc["expires_at"]
    for _ in range(3):
        clock.advance(days=3)
        status, successor = self_rotate(lambda_context, kid)
        assert status == 200 and successor["expires_at"] == deadline
        kid = successor["kid"]
    clock.advance(days=2)
    status, body = self_rotate(lambda_context, kid)
    assert status == 409 and service.get(kid).successor is None, body


def test_a_chain_never_outlives_max_lifetime_from_its_first_key(service: Any, clock: FakeClock) -> None:
    issued = service.create("acme", actor="ops", expires_in_days=service.settings.max_lifetime_days)
    first, kid = issued.record, issued.record.kid
    for _ in range(5):
        clock.advance(days=60)
        kid = service.rotate(kid, actor="ops").record.kid
    assert service.get(kid).expires_at == first.expires_at
    assert first.expires_at == first.created_at + service.settings.max_lifetime_days * DAY


# ---------------------------------------------------------------- the owner's answer: replace


def test_the_owner_replaces_a_suspended_key_and_it_stays_suspended(lambda_context: Any, service: Any) -> None:
    doc = create(lambda_context, allow_cidrs=["10.0.0.0/8"])
    service.suspend(doc["kid"], actor="ops", reason="leaked")
    status, replacement = call("api_rotate_key", lambda_context, kid=doc["kid"], body={}, headers=NO_REPLAY)
    assert status == 200, replacement
    assert keyformat.parse(replacement["key"]).kid == replacement["kid"]
    assert replacement["status"] == "active" and replacement["issued_by"] == "owner"
    assert replacement["scopes"] == doc["scopes"] and replacement["allow_cidrs"] == ["10.0.0.0/8"]
    assert service.get(doc["kid"]).status is Status.SUSPENDED
    assert call("api_rotate_key", lambda_context, kid=doc["kid"], body={}, headers=NO_REPLAY)[0] == 409, (
        "replaced once"
    )
    service.revoke(doc["kid"], actor="ops", reason="leaked")
    assert service.get(replacement["kid"]).status is Status.ACTIVE, "the replacement is not in the chain"


def test_replacing_a_leaked_key_whose_holder_already_rotated_it_replaces_the_whole_chain(
    lambda_context: Any, service: Any
) -> None:
    chain = minted_by_holder(lambda_context, create(lambda_context)["kid"], 2)
    service.suspend(chain[0], actor="ops", reason="leaked")
    replacement = service.rotate(chain[0], actor="ops").record
    assert replacement.predecessor == chain[-1] and replacement.status is Status.ACTIVE
    service.revoke(chain[0], actor="ops", reason="leaked")
    assert statuses(service, chain) == [Status.REVOKED] * 3
    assert service.get(replacement.kid).status is Status.ACTIVE


def leak_runbook() -> list[str]:
    text = (ROOT / "docs" / "operations.md").read_text()
    section = text.split("## When a key leaks", 1)[1].split("\n## ", 1)[0]
    steps = re.split(r"^\d+\. ", section, flags=re.MULTILINE)[1:]
    return [re.findall(r"`(keysentry keys [^`]+)`", step)[0] for step in steps]  # each step's command


def test_the_leak_runbook_works_step_by_step(
    lambda_context: Any,
    service: Any,
    capfd: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(cli, "_service", lambda args: service)
    doc = create(lambda_context)
    attacker = minted_by_holder(lambda_context, doc["kid"], 1)[1]  # a second holder got there first
    commands = leak_runbook()
    assert [c.split()[2] for c in commands] == ["suspend", "rotate", "revoke", "audit"]
    outputs = []
    for command in commands:
        argv = shlex.split(command.replace("KID", doc["kid"]))[1:]
        code = cli.main([*argv, "--json"])
        out, err = capfd.readouterr()
        assert code == 0, (command, err)
        outputs.append(json.loads(out))
    replacement = outputs[1]
    assert keyformat.parse(replacement["key"]).kid == replacement["kid"]
    assert service.get(replacement["kid"]).status is Status.ACTIVE
    assert service.get(replacement["kid"]).scopes == tuple(doc["scopes"])
    assert statuses(service, [doc["kid"], attacker]) == [Status.REVOKED, Status.REVOKED]
    assert [e["action"] for e in outputs[3]["entries"]][-2:] == ["suspend", "revoke"]


# ---------------------------------------------------------------- short-lived keys


@pytest.mark.parametrize(
    ("given", "seconds"),
    [(7200, 7200), ("PT2H", 7200), ("P7D", 7 * DAY), ("PT30M", 1800), ("P1DT12H", 36 * 3600)],
)
def test_a_key_can_expire_in_minutes_or_hours(
    lambda_context: Any, clock: FakeClock, given: Any, seconds: int
) -> None:
    doc = create(lambda_context, expires_in=given)
    assert doc["expires_at"] == clock.now + seconds


@pytest.mark.parametrize(
    "body",
    [
        {"expires_in": 59},
        {"expires_in": "PT30S"},
        {"expires_in": "P400D"},
        {"expires_in": "P1M"},
        {"expires_in": "2 hours"},
        {"expires_in": 0},
        {"expires_in": 7200, "expires_in_days": 1},
    ],
)
def test_an_expiry_out_of_bounds_is_refused_clearly(lambda_context: Any, body: dict[str, Any]) -> None:
    status, doc = call(
        "api_create_key", lambda_context, body={"owner": "acme", **body}, headers={"Idempotency-Key": ""}
    )
    assert status in (400, 422) and "expir" in json.dumps(doc).lower(), doc
    assert not [i for i in all_items_keys() if i["sk"]["S"] == "KEY"]


@pytest.mark.parametrize("value", [True, False, 7200.5])
def test_an_expiry_of_the_wrong_type_is_refused_as_such(lambda_context: Any, value: Any) -> None:
    status, doc = call(
        "api_create_key",
        lambda_context,
        body={"owner": "acme", "expires_in": value},
        headers={"Idempotency-Key": ""},
    )
    assert status == 422 and "expires_in" in json.dumps(doc), doc  # not taken as 1 or 0 seconds
    assert "minute" not in json.dumps(doc)


def all_items_keys() -> list[dict[str, Any]]:
    from keysentry.settings import Settings

    return all_items(Settings.from_env().keys_table)


@pytest.mark.parametrize(("flag", "seconds"), [("2h", 7200), ("30m", 1800), ("7d", 7 * DAY)])
def test_the_cli_issues_keys_that_expire_in_minutes_hours_or_days(
    service: Any,
    capfd: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    clock: FakeClock,
    flag: str,
    seconds: int,
) -> None:
    monkeypatch.setattr(cli, "_service", lambda args: service)
    code = cli.main(["keys", "create", "--owner", "acme", "--no-scopes", "--expires-in", flag, "--json"])
    out, err = capfd.readouterr()
    assert code == 0, err
    assert json.loads(out)["expires_at"] == clock.now + seconds


def test_the_cli_refuses_an_expiry_under_a_minute_with_one_line(
    service: Any, capfd: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(cli, "_service", lambda args: service)
    assert (
        cli.main(["keys", "create", "--owner", "acme", "--no-scopes", "--expires-in", "20s"])
        == cli.EXIT_USAGE
    )
    err = capfd.readouterr().err
    assert "minute" in err and "Traceback" not in err


def test_keys_from_before_the_minter_was_kept_are_judged_by_their_audit_trail(
    lambda_context: Any, service: Any, stack: Any
) -> None:
    chain = minted_by_holder(lambda_context, create(lambda_context)["kid"], 1)
    owner_issued = service.rotate(chain[1], actor="ops").record.kid
    for kid in (*chain, owner_issued):  # as such records were written before
        aws.client("dynamodb").update_item(
            TableName=stack.refs["KeysTable"],
            Key={"pk": {"S": kid}, "sk": {"S": "KEY"}},
            UpdateExpression="REMOVE issued_by",
        )
    service.suspend(chain[0], actor="ops", reason="leaked")
    assert statuses(service, chain) == [Status.SUSPENDED, Status.SUSPENDED]
    assert service.get(owner_issued).status is Status.ACTIVE
