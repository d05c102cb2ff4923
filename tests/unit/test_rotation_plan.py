"""What the schedule does with a key, decided without AWS: rotation.plan and the model's due times."""

from __future__ import annotations

from dataclasses import replace

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from keysentry import model
from keysentry.errors import TransitionError
from keysentry.model import DAY, Action, KeyRecord, Status
from keysentry.rotation import Step, plan

from tests.conftest import T0


def key(rotation_days: int = 30, **overrides: object) -> KeyRecord:
    record = model.new_record(
        kid="AAAAAAAAAAAA",
        owner_id="acme",
        env="live",
        digest="d" * 64,
        pepper_version="1",
        now=T0,
        actor="ops",
        rotation_days=rotation_days,
    )
    return replace(record, **overrides)  # type: ignore[arg-type]


def rotating(grace_days: int = 7) -> KeyRecord:
    return key(status=Status.ROTATING, successor="BBBBBBBBBBBB", grace_until=T0 + 30 * DAY + grace_days * DAY)


def test_an_active_key_is_reminded_7_days_then_1_day_before_and_rotated_on_the_day() -> None:
    record = key()
    due = T0 + 30 * DAY
    assert plan(record, due - 7 * DAY - 1) is None
    assert plan(record, due - 7 * DAY) == (Step.REMIND, "7d")
    reminded = model.remind(record, "7d", now=due - 7 * DAY, actor="schedule")
    assert plan(reminded, due - 2 * DAY) is None, "each reminder once"
    assert plan(reminded, due - DAY) == (Step.REMIND, "1d")
    reminded = model.remind(reminded, "1d", now=due - DAY, actor="schedule")
    assert plan(reminded, due - 1) is None
    assert plan(reminded, due) == (Step.ROTATE, "rotation period of 30 days reached")


def test_a_late_run_sends_the_earliest_reminder_not_sent_and_a_later_one_covers_the_earlier() -> None:
    record = key()
    assert plan(record, T0 + 29 * DAY) == (Step.REMIND, "7d"), "the earliest reminder not yet sent"
    assert plan(model.remind(record, "1d", now=T0, actor="s"), T0 + 29 * DAY) is None


def test_a_key_past_its_rotation_day_is_rotated_even_if_no_reminder_was_sent() -> None:
    assert plan(key(), T0 + 60 * DAY) == (Step.ROTATE, "rotation period of 30 days reached")


def test_an_ended_lifetime_expires_the_key_before_anything_else() -> None:
    record = key(expires_at=T0 + 30 * DAY)
    assert plan(record, T0 + 30 * DAY) == (Step.EXPIRE_LIFETIME, "lifetime ended")
    suspended = model.transition(record, Action.SUSPEND, now=T0, actor="sec")
    assert plan(suspended, T0 + 30 * DAY) == (Step.EXPIRE_LIFETIME, "lifetime ended")


def test_a_rotating_key_is_reminded_a_day_before_its_grace_ends_then_expired() -> None:
    record = rotating()
    end = T0 + 37 * DAY
    assert plan(record, end - DAY - 1) is None, "an old key is never rotated again"
    assert plan(record, end - DAY) == (Step.REMIND, "grace")
    reminded = model.remind(record, "grace", now=end - DAY, actor="schedule")
    assert plan(reminded, end - 1) is None
    assert plan(reminded, end) == (Step.EXPIRE_GRACE, "rotation grace window ended")


def test_a_suspension_pauses_rotation_but_not_the_end_of_a_grace_window() -> None:
    active = model.transition(key(), Action.SUSPEND, now=T0, actor="sec")
    assert plan(active, T0 + 60 * DAY) is None
    from_rotating = model.transition(rotating(), Action.SUSPEND, now=T0, actor="sec")
    assert plan(from_rotating, T0 + 37 * DAY) == (Step.EXPIRE_GRACE, "rotation grace window ended")


@pytest.mark.parametrize("status", [Status.REVOKED, Status.EXPIRED])
def test_a_terminal_key_never_has_anything_due(status: Status) -> None:
    record = key(status=status, expires_at=T0 + DAY)
    assert plan(record, T0 + 400 * DAY) is None
    assert model.next_due(record) is None


RECORDS = {
    "active": key(),
    "active, reminded 7d": model.remind(key(), "7d", now=T0, actor="s"),
    "active, reminded 1d": model.remind(key(), "1d", now=T0, actor="s"),
    "active, short lifetime": key(expires_at=T0 + 3 * DAY),
    "rotating": rotating(),
    "rotating, reminded": model.remind(rotating(), "grace", now=T0, actor="s"),
    "suspended while rotating": model.transition(rotating(), Action.SUSPEND, now=T0, actor="s"),
    "suspended with a lifetime": model.transition(
        key(expires_at=T0 + 40 * DAY), Action.SUSPEND, now=T0, actor="s"
    ),
}


@pytest.mark.parametrize("name", list(RECORDS))
def test_next_due_is_exactly_when_the_plan_first_has_something_to_do(name: str) -> None:
    record = RECORDS[name]
    due = model.next_due(record)
    assert due is not None
    assert plan(record, due - 1) is None
    assert plan(record, due) is not None


def test_a_suspended_key_without_a_lifetime_waits_for_nothing() -> None:
    suspended = model.transition(key(), Action.SUSPEND, now=T0, actor="sec")
    assert model.next_due(suspended) is None


def test_due_shards_are_stable_and_spread_over_every_shard() -> None:
    kids = [f"{i:012d}" for i in range(400)]
    shards = [model.due_shard(kid) for kid in kids]
    assert shards == [model.due_shard(kid) for kid in kids]
    assert set(shards) == {str(i) for i in range(model.DUE_SHARDS)}


# ---------------------------------------------------------------- the status a reading shows

_TIMES = st.one_of(st.none(), st.integers(T0 - 3 * DAY, T0 + 3 * DAY))


@settings(max_examples=300, deadline=None)
@given(
    status=st.sampled_from(list(Status)),
    suspended_from=st.sampled_from([None, Status.ACTIVE, Status.ROTATING]),
    expires_at=_TIMES,
    grace_until=_TIMES,
    now=st.integers(T0 - 4 * DAY, T0 + 4 * DAY),
)
def test_readers_the_authorizer_and_the_schedule_agree_on_when_a_key_has_expired(
    status: Status, suspended_from: Status | None, expires_at: int | None, grace_until: int | None, now: int
) -> None:
    from keysentry.authorizer.decide import _status_denial

    record = key(
        status=status,
        suspended_from=suspended_from if status is Status.SUSPENDED else None,
        expires_at=expires_at,
        grace_until=grace_until,
        rotate_after=T0 + 30 * DAY,
    )
    read = record.status_at(now)
    # the authorizer lets a key through exactly when a reading shows it active or rotating
    assert (_status_denial(record, now) is None) == (read in (Status.ACTIVE, Status.ROTATING))
    # a reading differs from what is stored only by showing expired what the schedule will expire now
    step = plan(record, now)
    expires = step is not None and step[0] in (Step.EXPIRE_LIFETIME, Step.EXPIRE_GRACE)
    assert (read is not record.status) == expires
    assert read is record.status or read is Status.EXPIRED
    assert record.read_at(now).status is read and record.read_at(now).version == record.version
    # and every change but the schedule's expiry answers from what a reading shows
    for action in (Action.RESUME, Action.SUSPEND, Action.REVOKE, Action.UPDATE):
        if read is Status.EXPIRED:
            with pytest.raises(TransitionError, match="expired"):
                model.check_allowed(record, action, now)
