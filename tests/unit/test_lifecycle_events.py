"""Stream record images to lifecycle events, without AWS: which records alert, and what an event says."""

from __future__ import annotations

import json
from dataclasses import replace
from typing import Any

import pytest
from keysentry import model
from keysentry.alerts import SEVERITY, lifecycle_event
from keysentry.model import DAY, Action, IssuedBy, KeyRecord
from keysentry.store import to_item

from tests.conftest import T0

DIGEST = "5e" * 32


def key(**overrides: object) -> KeyRecord:
    record = model.new_record(
        kid="AAAAAAAAAAAA",
        owner_id="acme",
        env="live",
        digest=DIGEST,
        pepper_version="1",
        now=T0,
        actor="ops@acme",
        name="feed",
        scopes=["prices:read"],
        rotation_days=30,
    )
    return replace(record, **overrides)  # type: ignore[arg-type]


def event(old: KeyRecord | None, new: KeyRecord | None) -> dict[str, Any] | None:
    return lifecycle_event("evt-1", to_item(old) if old else None, to_item(new) if new else None)


def test_a_new_key_is_a_created_event_with_who_and_when() -> None:
    created = event(None, key())
    assert created is not None
    assert {k: created[k] for k in ("id", "type", "severity", "kid", "owner_id", "name", "env")} == {
        "id": "evt-1",
        "type": "created",
        "severity": "info",
        "kid": "AAAAAAAAAAAA",
        "owner_id": "acme",
        "name": "feed",
        "env": "live",
    }
    assert (created["old_status"], created["new_status"], created["actor"]) == (None, "active", "ops@acme")
    assert created["at"] == T0 and created["time"] == "2026-09-21T14:13:20Z"
    assert created["rotate_after"] == T0 + 30 * DAY


@pytest.mark.parametrize(
    ("action", "kind", "new_status"),
    [
        (Action.SUSPEND, "suspended", "suspended"),
        (Action.REVOKE, "revoked", "revoked"),
        (Action.EXPIRE, "expired", "expired"),
        (Action.LEAK, "leaked", "suspended"),
    ],
)
def test_each_transition_is_its_own_event_with_its_severity(
    action: Action, kind: str, new_status: str
) -> None:
    before = key()
    after = model.transition(before, action, now=T0 + 60, actor="sec@acme", reason="why")
    alert = event(before, after)
    assert alert is not None
    assert (alert["type"], alert["severity"]) == (kind, SEVERITY[kind])
    assert (alert["old_status"], alert["new_status"]) == ("active", new_status)
    assert (alert["actor"], alert["reason"], alert["at"], alert["key_version"]) == (
        "sec@acme",
        "why",
        T0 + 60,
        2,
    )


def test_a_resume_is_its_own_event() -> None:
    suspended = model.transition(key(), Action.SUSPEND, now=T0, actor="sec")
    alert = event(suspended, model.transition(suspended, Action.RESUME, now=T0 + 1, actor="sec"))
    assert alert is not None and (alert["type"], alert["old_status"], alert["new_status"]) == (
        "resumed",
        "suspended",
        "active",
    )


def test_a_policy_change_names_the_fields_that_changed() -> None:
    before = key()
    after = model.update(before, now=T0 + 5, actor="ops", scopes=["prices:read", "orders:write"], name="feed")
    alert = event(before, after)
    assert alert is not None and alert["type"] == "policy_changed" and alert["changed"] == ["scopes"]


def test_a_reminder_says_which_one() -> None:
    before = key()
    alert = event(before, model.remind(before, "7d", now=T0 + 23 * DAY, actor="schedule"))
    assert alert is not None and (alert["type"], alert["reminder"]) == ("rotation_due_soon", "7d")


def test_a_key_that_minted_its_own_successor_is_worth_a_look() -> None:
    by_holder = key(
        issued_by=IssuedBy.HOLDER, last_change=model.Change(Action.CREATE, "key:ZZZZZZZZZZZZ", T0, "")
    )
    alert = event(None, by_holder)
    assert alert is not None and (alert["type"], alert["severity"]) == ("created", "medium")


def test_writes_that_change_no_lifecycle_state_are_not_events() -> None:
    record = key()
    assert event(record, replace(record, last_used_at=T0 + 9)) is None, "usage: same version"
    assert event(record, None) is None, "a removal"
    audit = {"pk": {"S": record.kid}, "sk": {"S": f"AUDIT#{T0:012d}#00000001"}, "action": {"S": "create"}}
    assert lifecycle_event("evt-2", None, audit) is None


def test_a_transition_whose_change_is_missing_cannot_be_decoded_into_an_event() -> None:
    before = key()
    after = replace(model.transition(before, Action.REVOKE, now=T0, actor="x"), last_change=None)
    with pytest.raises(ValueError):
        event(before, after)


def test_an_event_never_carries_the_digest_or_the_signing_secret() -> None:
    signed = key(signing=model.Signing(mode="hmac", secret_ciphertext="s3cr3t-signing-secret-value"))
    revoked = model.transition(signed, Action.REVOKE, now=T0, actor="sec", reason="done")
    for alert in (event(None, signed), event(signed, revoked)):
        text = json.dumps(alert)
        assert DIGEST not in text and "s3cr3t-signing-secret-value" not in text and "pepper" not in text
