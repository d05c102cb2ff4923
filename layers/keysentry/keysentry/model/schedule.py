"""When the schedule next has something to do with a key (pure, no I/O)."""

from __future__ import annotations

import zlib
from enum import StrEnum

from keysentry.model.record import DUE_SHARDS, GRACE_REMINDER_LEAD, REMINDER_LEADS, KeyRecord, Lapse, Status


def due_shard(kid: str) -> str:
    return str(zlib.crc32(kid.encode()) % DUE_SHARDS)


def pending_reminder(record: KeyRecord) -> tuple[str, int] | None:
    """The next reminder not yet sent and when it falls due, if any."""
    if record.status is Status.ACTIVE:
        done = {stage for stage, _ in REMINDER_LEADS[: _stage_index(record.reminded) + 1]}
        for stage, lead in REMINDER_LEADS:
            if stage not in done:
                return stage, record.rotate_after - lead
    if record.status is Status.ROTATING and record.grace_until is not None and record.reminded != "grace":
        return "grace", record.grace_until - GRACE_REMINDER_LEAD
    return None


def _stage_index(stage: str | None) -> int:
    for i, (name, _) in enumerate(REMINDER_LEADS):
        if name == stage:
            return i
    return -1


def next_due(record: KeyRecord) -> int | None:
    """When the schedule next has something to do with this key; None when never (terminal)."""
    if not record.is_live:
        return None
    times: list[int] = []
    if record.expires_at is not None:
        times.append(record.expires_at)
    if record.status is Status.ACTIVE:
        times.append(record.rotate_after)
    rotating = record.status is Status.ROTATING or record.suspended_from is Status.ROTATING
    if rotating and record.grace_until is not None:
        times.append(record.grace_until)
    reminder = pending_reminder(record)
    if reminder is not None:
        times.append(reminder[1])
    return min(times) if times else None


class Step(StrEnum):
    ROTATE = "rotate"
    EXPIRE_LIFETIME = "expire_lifetime"
    EXPIRE_GRACE = "expire_grace"
    REMIND = "remind"


def plan(record: KeyRecord, now: int) -> tuple[Step, str] | None:
    """What the schedule must do with this key now, if anything, and why."""
    if not record.is_live:
        return None
    lapse = record.lapsed(now)  # what the authorizer refuses and a reading shows expired already
    if lapse is Lapse.LIFETIME:
        return Step.EXPIRE_LIFETIME, "lifetime ended"
    if lapse is Lapse.GRACE:
        return Step.EXPIRE_GRACE, "rotation grace window ended"
    if record.status is Status.ACTIVE and record.rotate_after <= now:
        return Step.ROTATE, f"rotation period of {record.rotation_days} days reached"
    reminder = pending_reminder(record)
    if reminder is not None and reminder[1] <= now:
        return Step.REMIND, reminder[0]
    return None
