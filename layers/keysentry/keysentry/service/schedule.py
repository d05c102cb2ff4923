"""The scheduled run as one use case: rotate due keys, expire ended ones, remind before rotation.

Work is found by querying the sparse, write-sharded due index (never a Scan), so the items read
grow with the keys due, not with the table. Each key is re-read strongly consistent and changed
with one conditional write: two runs at once, or a run racing a revoke, cannot both win. A run
stops cleanly before Lambda's time limit; what it did not reach stays due for the next run.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from keysentry import model
from keysentry.errors import ConflictError, KeyNotFoundError, TransitionError
from keysentry.model import KeyRecord, Step
from keysentry.service.chain import Lifecycle
from keysentry.service.rotating import Rotating

ACTOR = "schedule"
RECENT_USE_S = model.DAY


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


def _never_short() -> int:
    return 900_000


def _ignore(kid: str, error: Exception) -> None:
    return None


class Scheduling(Rotating, Lifecycle):
    def run_schedule(
        self,
        now: int | None = None,
        *,
        remaining_ms: Callable[[], int] = _never_short,
        safety_ms: int = 10_000,
        on_error: Callable[[str, Exception], None] = _ignore,
    ) -> Summary:
        """Do what is due at ``now`` (default: the clock), until ``remaining_ms()`` falls under
        ``safety_ms``. One key's failure is counted, passed to ``on_error``, and never stops the run."""
        now = self.clock() if now is None else now
        summary = Summary()
        for kid in self.store.due(now):
            if remaining_ms() < safety_ms:
                summary.stopped_early = True
                break
            summary.examined += 1
            try:
                self.scheduled_step(kid, now, summary)
            except (ConflictError, TransitionError, KeyNotFoundError):
                summary.skipped += 1  # another writer got there first: nothing to undo
            except Exception as error:  # one bad item never stops the run
                summary.errors += 1
                on_error(kid, error)
        return summary

    def scheduled_step(self, kid: str, now: int, summary: Summary) -> None:
        """What the schedule must do with one key now (see :func:`keysentry.model.plan`), done."""
        record = self.store.get(kid)
        step = model.plan(record, now)
        if step is None:
            summary.skipped += 1
            return
        action, detail = step
        if action is Step.ROTATE:
            issued = self.rotate_record(record, actor=ACTOR, reason=detail, deliver=True)
            summary.rotated.append(f"{kid}->{issued.record.kid}")
        elif action in (Step.EXPIRE_LIFETIME, Step.EXPIRE_GRACE):
            self.expire(record, actor=ACTOR, reason=detail)
            if record.successor:
                self.erase_pickup(record.successor)  # the one-time copy ends with the grace
            summary.expired.append(kid)
        else:
            self.remind(record, detail, now=now)
            summary.reminded.append(f"{kid}:{detail}")

    def remind(self, record: KeyRecord, stage: str, *, now: int) -> KeyRecord:
        """Record that the ``stage`` reminder went out (the stream raises the alert)."""
        reason = f"rotation due soon ({stage})"
        if stage == "grace" and record.last_used_at and now - record.last_used_at < RECENT_USE_S:
            reason = "predecessor still in use late in its grace window"
        new = model.remind(record, stage, now=now, actor=ACTOR, reason=reason)
        return self.store.apply(record, new)
