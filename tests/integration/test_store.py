"""The key store and service under moto: conditional writes, races, audit, indexes."""

from __future__ import annotations

from typing import Any

import pytest
from keysentry import model
from keysentry.errors import ConflictError, KeyNotFoundError, TransitionError, ValidationError
from keysentry.model import DAY, Action, Status
from keysentry.store import AUDIT_PREFIX, KEY_SK, KeyStore, from_item, to_item

from tests.conftest import FakeClock, all_items


def test_a_created_key_stores_only_its_digest(service: Any, stack: Any) -> None:
    issued = service.create("acme", actor="ops", scopes=["prices:read"])
    item = service.store.get_item(issued.record.kid)
    assert item is not None
    assert issued.token not in str(item)
    peppers = service.peppers.get()
    assert peppers.verify(issued.token, item["digest"]["S"], item["pepper_version"]["S"])


def test_the_codec_round_trips_every_field(service: Any) -> None:
    issued = service.create(
        "acme",
        actor="ops",
        name="feed",
        scopes=["a:b", "c"],
        allow_cidrs=["10.0.0.0/8", "2001:db8::/32"],
        deny_cidrs=["10.9.0.0/16"],
        rotation_days=45,
        expires_in_days=100,
        metadata={"team": "x"},
    )
    assert from_item(to_item(issued.record)) == issued.record
    assert service.get(issued.record.kid) == issued.record


def test_an_owner_holds_several_keys_each_with_its_own_policy(service: Any) -> None:
    read = service.create("acme", actor="ops", scopes=["prices:read"], allow_cidrs=["10.0.0.0/8"])
    write = service.create("acme", actor="ops", scopes=["orders:write"], deny_cidrs=["2001:db8::/32"])
    service.create("globex", actor="ops")
    records, cursor = service.list_keys("acme")
    assert {r.kid: r.scopes for r in records} == {
        read.record.kid: ("prices:read",),
        write.record.kid: ("orders:write",),
    }
    assert cursor is None


def test_listing_pages_with_a_cursor(service: Any) -> None:
    kids = {service.create("acme", actor="ops").record.kid for _ in range(5)}
    seen: set[str] = set()
    cursor = None
    while True:
        records, cursor = service.list_keys("acme", limit=2, cursor=cursor)
        seen |= {r.kid for r in records}
        if cursor is None:
            break
    assert seen == kids
    with pytest.raises(ValidationError):
        service.list_keys("acme", cursor="not-a-cursor!")


def test_every_transition_leaves_an_audit_entry_with_who_when_why(service: Any, clock: FakeClock) -> None:
    kid = service.create("acme", actor="ops@acme").record.kid
    clock.advance(10)
    service.suspend(kid, actor="sec@acme", reason="leak suspected")
    clock.advance(10)
    service.resume(kid, actor="sec@acme", reason="false alarm")
    clock.advance(10)
    service.revoke(kid, actor="sec@acme", reason="retired")
    trail = [(e.action, e.actor, e.reason, e.from_status, e.to_status, e.at) for e in service.audit(kid)]
    t0 = trail[0][5]
    assert trail == [
        ("create", "ops@acme", "", "", "active", t0),
        ("suspend", "sec@acme", "leak suspected", "active", "suspended", t0 + 10),
        ("resume", "sec@acme", "false alarm", "suspended", "active", t0 + 20),
        ("revoke", "sec@acme", "retired", "active", "revoked", t0 + 30),
    ]


def test_an_illegal_transition_changes_nothing(service: Any) -> None:
    kid = service.create("acme", actor="ops").record.kid
    service.revoke(kid, actor="ops", reason="done")
    before = service.store.get_item(kid)
    with pytest.raises(TransitionError):
        service.resume(kid, actor="ops")
    assert service.store.get_item(kid) == before
    assert len(service.audit(kid)) == 2


def test_a_stale_write_is_refused_and_changes_nothing(service: Any) -> None:
    kid = service.create("acme", actor="ops").record.kid
    stale = service.get(kid)
    service.suspend(kid, actor="ops")
    before = service.store.get_item(kid)
    with pytest.raises(ConflictError):
        service.store.apply(stale, model.transition(stale, Action.REVOKE, now=1, actor="x", reason="r"))
    assert service.store.get_item(kid) == before


def test_unknown_and_malformed_kids(service: Any) -> None:
    with pytest.raises(KeyNotFoundError):
        service.get("AAAAAAAAAAAA")
    with pytest.raises(ValidationError):
        service.get("../etc")


def test_revoke_interleaved_with_resume_never_ends_live(service: Any) -> None:
    kid = service.create("acme", actor="ops").record.kid
    service.suspend(kid, actor="ops")
    read_by_resumer = service.get(kid)
    service.revoke(kid, actor="sec", reason="leaked")  # lands between the resumer's read and write
    resumed = model.transition(read_by_resumer, Action.RESUME, now=1, actor="ops")
    with pytest.raises(ConflictError):
        service.store.apply(read_by_resumer, resumed)
    assert service.get(kid).status is Status.REVOKED


def test_revoke_interleaved_with_rotate_never_ends_live(service: Any) -> None:
    kid = service.create("acme", actor="ops").record.kid
    read_by_rotator = service.get(kid)
    service.revoke(kid, actor="sec", reason="leaked")
    with pytest.raises(ConflictError):
        service.rotate_record(read_by_rotator, actor="schedule")
    assert service.get(kid).status is Status.REVOKED
    records, _ = service.list_keys("acme")
    assert [r.kid for r in records] == [kid], "no successor was created"


def test_revoke_wins_when_another_write_lands_first(service: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    kid = service.create("acme", actor="ops").record.kid
    real_apply = service.store.apply
    raced = []

    def apply_after_a_rival(old: Any, new: Any) -> Any:
        if not raced:  # a rival suspend lands between the revoker's read and write
            raced.append(real_apply(old, model.transition(old, Action.SUSPEND, now=1, actor="rival")))
        return real_apply(old, new)

    monkeypatch.setattr(service.store, "apply", apply_after_a_rival)
    assert service.revoke(kid, actor="sec", reason="leaked").status is Status.REVOKED
    assert service.get(kid).status is Status.REVOKED


def test_two_rotations_of_one_key_make_one_successor(service: Any) -> None:
    kid = service.create("acme", actor="ops").record.kid
    first_read, second_read = service.get(kid), service.get(kid)
    service.rotate_record(first_read, actor="run-1")
    with pytest.raises((ConflictError, TransitionError)):
        service.rotate_record(second_read, actor="run-2")
    records, _ = service.list_keys("acme")
    assert len(records) == 2
    assert service.get(kid).successor in {r.kid for r in records}


def test_the_due_index_is_sparse_and_holds_only_what_is_due(service: Any, clock: FakeClock) -> None:
    soon = service.create("acme", actor="ops", rotation_days=30).record.kid
    later = service.create("acme", actor="ops", rotation_days=90).record.kid
    gone = service.create("acme", actor="ops", rotation_days=30).record.kid
    service.revoke(gone, actor="ops", reason="x")
    now = clock() + 24 * DAY  # past the 7-day reminder of the 30-day keys only
    assert set(service.store.due(now)) == {soon}
    assert set(service.store.due(now + 100 * DAY)) == {soon, later}
    revoked_item = service.store.get_item(gone)
    assert "due_at" not in revoked_item and "due_shard" not in revoked_item


def test_touch_records_use_at_most_once_per_window_and_a_rehash_is_audited(
    service: Any, clock: FakeClock
) -> None:
    issued = service.create("acme", actor="ops")
    store: KeyStore = service.store
    kid = issued.record.kid
    assert store.touch(kid, clock(), stale_before=clock() - 3600)
    assert not store.touch(kid, clock() + 60, stale_before=clock() + 60 - 3600)
    record = service.get(kid)
    assert record.last_used_at == clock() and record.version == 1
    assert store.rehash(record, "f" * 64, "2", clock())
    assert not store.rehash(record, "0" * 64, "3", clock()), "only from the digest read"
    rehashed = service.get(kid)
    assert rehashed.pepper_version == "2" and rehashed.digest == "f" * 64 and rehashed.version == 1
    entry = store.audit(kid)[-1]
    assert (entry.action, entry.actor, entry.version) == ("rehash", "keysentry:authorizer", 1)
    assert entry.changes == {"pepper_version": {"from": "1", "to": "2"}}


def test_keys_written_through_the_store_use_the_template_tables(service: Any, stack: Any) -> None:
    assert service.store.table == stack.refs["KeysTable"]
    kid = service.create("acme", actor="ops").record.kid
    service.suspend(kid, actor="ops", reason="check")
    keys = all_items(stack.refs["KeysTable"])
    assert {(i["pk"]["S"], i["sk"]["S"].split("#", 1)[0]) for i in keys} == {
        (kid, KEY_SK),
        (kid, AUDIT_PREFIX.rstrip("#")),
    }
    assert len(keys) == 3, "the key and its two audit entries, in the template's keys table"
    others = [stack.refs[t] for t in ("NonceTable", "IdempotencyTable")]
    assert [all_items(t) for t in others] == [[], []], "nothing written anywhere else"


def test_the_plaintext_scan_finds_a_planted_key(service: Any, stack: Any) -> None:
    """The guard every integration test runs under can fail: plant a key and it is found."""
    from tests.integration.conftest import plaintext_found

    issued = service.create("acme", actor="ops")
    assert plaintext_found([issued.token], stack, ["a clean line"]) == []
    service.store.client.put_item(
        TableName=stack.refs["NonceTable"],
        Item={"pk": {"S": f"oops {issued.token}"}, "expires_at": {"N": "1"}},
    )
    assert plaintext_found([issued.token], stack, [f"logged {issued.token}"]) == [
        stack.refs["NonceTable"],
        "logs",
    ]
    service.store.client.delete_item(
        TableName=stack.refs["NonceTable"], Key={"pk": {"S": f"oops {issued.token}"}}
    )
