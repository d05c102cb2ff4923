"""The scheduled job: rotate due keys, expire ended ones, remind before rotation is due.

Work is found by querying the sparse, write-sharded due index (never a Scan), so the items read
grow with the keys due, not with the table. Each key is re-read strongly consistent and changed
with one conditional write: two runs at once, or a run racing a revoke, cannot both win. A run
stops cleanly before Lambda's time limit; what it did not reach stays due for the next run.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from keysentry import model
from keysentry.errors import ConflictError, KeyNotFoundError, TransitionError
from keysentry.model import KeyRecord, Status
from keysentry.service import KeyService

ACTOR = "schedule"
RECENT_USE_S = model.DAY


class Step(StrEnum):
    ROTATE = "rotate"
    EXPIRE_LIFETIME = "expire_lifetime"
    EXPIRE_GRACE = "expire_grace"
    REMIND = "remind"


def plan(record: KeyRecord, now: int) -> tuple[Step, str] | None:
    """What the schedule must do with this key now, if anything (pure)."""
    if not record.is_live:
        return None
    if record.expires_at is not None and record.expires_at <= now:
        return Step.EXPIRE_LIFETIME, "lifetime ended"
    rotating = record.status is Status.ROTATING or record.suspended_from is Status.ROTATING
    if rotating and record.grace_until is not None and record.grace_until <= now:
        return Step.EXPIRE_GRACE, "rotation grace window ended"
    if record.status is Status.ACTIVE and record.rotate_after <= now:
        return Step.ROTATE, f"rotation period of {record.rotation_days} days reached"
    reminder = model.pending_reminder(record)
    if reminder is not None and reminder[1] <= now:
        return Step.REMIND, reminder[0]
    return None


@dataclass
class Summary:
    rotated: list[str] = field(default_factory=list)
    expired: list[str] = field(default_factory=list)
    reminded: list[str] = field(default_factory=list)
    skipped: int = 0
    errors: int = 0
    examined: int = 0
    stopped_early: bool = False

    def as_dict(self) -> dict[str, Any]:
        return {
            "rotated": len(self.rotated),
            "expired": len(self.expired),
            "reminded": len(self.reminded),
            "skipped": self.skipped,
            "errors": self.errors,
            "examined": self.examined,
            "stopped_early": self.stopped_early,
        }


class RotationJob:
    def __init__(
        self,
        service: KeyService,
        *,
        remaining_ms: Callable[[], int] = lambda: 900_000,
        safety_ms: int = 10_000,
        on_error: Callable[[str, Exception], None] = lambda kid, error: None,
    ) -> None:
        self.service = service
        self.remaining_ms = remaining_ms
        self.safety_ms = safety_ms
        self.on_error = on_error

    def run(self, now: int | None = None) -> Summary:
        now = self.service.clock() if now is None else now
        summary = Summary()
        for kid in self.service.store.due(now):
            if self.remaining_ms() < self.safety_ms:
                summary.stopped_early = True
                break
            summary.examined += 1
            try:
                self._one(kid, now, summary)
            except (ConflictError, TransitionError, KeyNotFoundError):
                summary.skipped += 1  # another writer got there first: nothing to undo
            except Exception as error:  # one bad item never stops the run
                summary.errors += 1
                self.on_error(kid, error)
        return summary

    def _one(self, kid: str, now: int, summary: Summary) -> None:
        record = self.service.store.get(kid)
        step = plan(record, now)
        if step is None:
            summary.skipped += 1
            return
        action, detail = step
        if action is Step.ROTATE:
            issued = self.service.rotate_record(record, actor=ACTOR, reason=detail, deliver=True)
            summary.rotated.append(f"{kid}->{issued.record.kid}")
        elif action in (Step.EXPIRE_LIFETIME, Step.EXPIRE_GRACE):
            self.service.expire(record, actor=ACTOR, reason=detail)
            if record.successor:
                self.service.erase_pickup(record.successor)  # the one-time copy ends with the grace
            summary.expired.append(kid)
        else:
            reason = f"rotation due soon ({detail})"
            if detail == "grace" and record.last_used_at and now - record.last_used_at < RECENT_USE_S:
                reason = "predecessor still in use late in its grace window"
            self.service.store.apply(
                record, model.remind(record, detail, now=now, actor=ACTOR, reason=reason)
            )
            summary.reminded.append(f"{kid}:{detail}")
