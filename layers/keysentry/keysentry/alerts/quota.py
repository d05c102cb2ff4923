"""The quota watcher: a metered batch's keys held to their plans' quotas, for APIs whose gateway cannot
(HTTP APIs have no usage plans). When a key's requests in its quota period, with those of the rest of
its rotation chain (its ``meter``: see :class:`keysentry.usage.Batch`), reach the limit, its record
is marked ``quota_exhausted_until`` the period's end, which the authorizer reads with the record it
already reads (refusing ``quota_exceeded``), and a ``quota_exhausted`` alert goes out once per key and
period. docs/plans.md, "HTTP APIs: quotas from the usage pipeline", gives the bound.

Cost: a key whose access log lines say its plan has no quota (an empty ``meter``) costs nothing. For
the others, the period's daily items are read with the batch's own (one BatchGetItem); a key's record
is read only when its count in some period reaches the smallest quota of that period among the plans,
so the keys far from any quota (most keys, most batches) cost no read of the keys table; a record
already marked until the period's end costs no write. Lines without the field (an access log format
from before it) are held to the quota as lines that name a meter.

Once: the mark is conditional (the first to set it wins) and the alert's id (``quota_exhausted:<kid>:
<plan>:<period>:<period start>``) is claimed in the idempotency table by the invocation that set the mark, or by a
redelivered batch (the one whose publish failed before: it was released). A batch whose alert could
not be published fails after marking: enforcement never waits for an alert.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, Final, Protocol

from keysentry.alerts.dedupe import Deduplicator
from keysentry.alerts.events import quota_event, quota_event_id
from keysentry.alerts.once import AlertOnce
from keysentry.alerts.publish import Publisher
from keysentry.errors import KeyNotFoundError
from keysentry.metering import Recorded
from keysentry.model import KeyRecord
from keysentry.plans import Plan, Plans, period_bounds
from keysentry.store.usage import DAY, ItemKey, day_sk, decode, key_pk
from keysentry.usage import Batch

# The keys read each way along a chain from the key found over its quota: past the keys a holder or
# the schedule may mint in a row (keysentry.service.MAX_HOLDER_CHAIN, 50), with room for the owner's.
MAX_CHAIN: Final = 64


class QuotaKeys(Protocol):
    """What the watcher needs of the keys table."""

    def get(self, kid: str) -> KeyRecord: ...

    def mark_quota_exhausted(self, kid: str, until: int, plan: str = "") -> bool: ...


@dataclass(frozen=True)
class Exhausted:
    """A key at or past its plan's quota in the period [start, end)."""

    record: KeyRecord
    plan: Plan
    period: str  # the plan's quota period: DAY, WEEK or MONTH
    start: int
    end: int
    used: int


def period_days(start: int, end: int) -> range:
    """The days (their start, UTC) of a quota period; every period starts and ends at a day."""
    return range(start, end, DAY)


class QuotaWatcher:
    def __init__(
        self,
        plans: Plans,
        keys: QuotaKeys,
        publisher: Publisher,
        dedup: Deduplicator | None,
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.plans = plans
        self.keys = keys
        self.once = AlertOnce(publisher, dedup)
        self.clock = clock
        # the smallest quota of each period any plan counts in: below it, no plan's key is over
        self.floors: dict[str, int] = {}
        for plan in plans.plans.values():
            if plan.quota is not None:
                period, limit = plan.quota.period, plan.quota.limit
                self.floors[period] = min(limit, self.floors.get(period, limit))
        self.marked: list[str] = []

    def _open_periods(self, hour: int) -> list[tuple[str, int, int]]:
        """(period, start, end) of each quota period holding ``hour``, not over yet (a late line of a
        period that has ended changes nothing)."""
        now = int(self.clock())
        found = []
        for period in self.floors:
            start, end = period_bounds(period, hour)
            if end > now:
                found.append((period, start, end))
        return found

    def reads(self, batch: Batch) -> Iterable[ItemKey]:
        """The daily items of each quota period the batch counts in, up to today or the batch's last
        day in it (later days hold nothing yet): a key's own, or its chain's first key's."""
        today = int(self.clock()) // DAY * DAY
        last: dict[tuple[str, str, int, int], int] = {}
        free = batch.quota_free()
        for kid, hour in batch.keys:
            if kid in free:
                continue
            for period in self._open_periods(hour):
                key = (batch.meters.get(kid, kid), *period)
                last[key] = max(last.get(key, today), hour // DAY * DAY)
        return sorted(
            {
                (key_pk(meter), day_sk(day))
                for (meter, _, start, end), until in last.items()
                for day in period_days(start, min(end, until + DAY))
            }
        )

    def watch(self, recorded: Recorded) -> int:
        """Mark each key the batch took to its quota, then alert once; return how many alerts."""
        events = [event for found in self.find(recorded) if (event := self._act(found, recorded.replayed))]
        self.once.publish(events, "quota")
        return len(events)

    def find(self, recorded: Recorded) -> list[Exhausted]:
        """The keys at or past their plan's quota, counted with their chain (its first key's days
        hold the chain's requests): a record read only for a count at a period's floor."""
        over: dict[str, list[tuple[str, int, int, int]]] = {}
        open_periods = {
            (kid, *p)
            for kid, hour in recorded.added
            if kid not in recorded.quota_free
            for p in self._open_periods(hour)
        }
        for kid, period, start, end in sorted(open_periods):
            used = period_total(recorded, recorded.meters.get(kid, kid), start, end)
            if used >= self.floors[period]:
                over.setdefault(kid, []).append((period, start, end, used))
        found: dict[str, Exhausted] = {}
        for kid, candidates in sorted(over.items()):
            if kid in found:
                continue  # found with a chain key of this batch: its record was read then
            record = self._record(kid)
            exhausted = _exhausted(record, self._plan(record), candidates) if record else None
            if record is None or exhausted is None:
                continue
            found[kid] = exhausted
            if _held(exhausted) and not recorded.replayed:
                continue  # marked before, with its chain: no walk (a busy key's batches cost one read)
            for member in self._chain(record):
                more = _exhausted(member, self._plan(member), candidates)
                if more is not None:
                    found.setdefault(member.kid, more)
        return list(found.values())

    def _chain(self, record: KeyRecord) -> list[KeyRecord]:
        """The other live keys of ``record``'s rotation chain: a predecessor in its grace window (or
        a suspended key its owner may resume) is held to the quota its chain used up, whether or not
        the batch saw it. Read only when a key is found exhausted, once per chain and period."""
        meter = record.meter or record.kid
        members = []
        for link in ("predecessor", "successor"):
            current = record
            for _ in range(MAX_CHAIN):
                kid = getattr(current, link)
                nxt = self._record(kid) if kid else None
                if nxt is None or (nxt.meter or nxt.kid) != meter:
                    break
                if nxt.is_live:  # a revoked key in the middle is passed over, not an end
                    members.append(nxt)
                current = nxt
        return members

    def _act(self, found: Exhausted, replayed: bool) -> dict[str, Any] | None:
        """Mark the key; the alert's event if this invocation is the one to send it."""
        record = found.record
        held = _held(found)
        marked_now = not held and self.keys.mark_quota_exhausted(record.kid, found.end, record.plan)
        if marked_now:
            self.marked.append(record.kid)
        # a batch delivered again may be the one whose alert failed: its claim was released
        if not (marked_now or (held and replayed)):
            return None
        if not self.once.claim(quota_event_id(record.kid, found.plan.name, found.period, found.start)):
            return None
        return quota_event(
            record,
            found.plan,
            period_start=found.start,
            resets_at=found.end,
            used=found.used,
            at=int(self.clock()),
        )

    def _plan(self, record: KeyRecord) -> Plan | None:
        """The key's plan; None for a plan the deployment no longer has (no quota is known for it)."""
        return self.plans.plans.get(record.plan or self.plans.default)

    def _record(self, kid: str) -> KeyRecord | None:
        try:
            return self.keys.get(kid)
        except KeyNotFoundError:
            return None


def _exhausted(
    record: KeyRecord, plan: Plan | None, candidates: list[tuple[str, int, int, int]]
) -> Exhausted | None:
    """``record`` at or past its plan's quota in one of the candidate periods (period, start, end,
    the chain's count); None when not, or when it is not live (a revoked or expired key is not
    marked; a suspended one is, so that resuming it opens no window)."""
    if plan is None or plan.quota is None or not record.is_live:
        return None
    for period, start, end, used in candidates:
        if period == plan.quota.period and used >= plan.quota.limit:
            return Exhausted(record, plan, period, start, end, used)
    return None


def _held(found: Exhausted) -> bool:
    """Whether the key is marked until the period's end already."""
    until = found.record.quota_exhausted_until
    return until is not None and until >= found.end


def period_total(recorded: Recorded, meter: str, start: int, end: int) -> int:
    """The requests a quota counts in [start, end) for the chain ``meter`` starts (a key alone: its
    own): its days as the batch left them, else as read."""
    total = 0
    for day in period_days(start, end):
        counted = recorded.day_totals.get((meter, day))
        if counted is not None:
            total += counted.metered()
            continue
        item = recorded.held.get((key_pk(meter), day_sk(day)))
        total += decode(item).metered() if item else 0
    return total
