"""Reading usage: a key's counters over a window, by hour or by day, and an owner's keys by use.

The usage function keeps one item per key and hour (for 35 days) and per key and day (400 days)
(:mod:`keysentry.store.usage`). A report reads one of the two series over a window of whole periods,
fills each period nobody used with zeros (a chart needs its gaps) and sums the window.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass
from typing import Any, Final

from keysentry import model
from keysentry.errors import ValidationError
from keysentry.model import KeyRecord
from keysentry.plans import Plans, Quota
from keysentry.service.base import ServiceBase
from keysentry.store.usage import DAY, DAY_TTL_S, HOUR, HOUR_TTL_S, day_sk, decode, hour_sk, key_pk, start_of
from keysentry.usage import OTHER, KeyHour

GRANULARITIES: Final = ("hour", "day")
PERIOD: Final = {"hour": HOUR, "day": DAY}
RETENTION: Final = {"hour": HOUR_TTL_S, "day": DAY_TTL_S}  # how far back each series is kept
MAX_POINTS: Final = {"hour": HOUR_TTL_S // HOUR, "day": DAY_TTL_S // DAY}  # 840 hours, 400 days
DEFAULT_POINTS: Final = {"hour": 24, "day": 30}  # without a window: the last 24 hours, or 30 days
TOP_ROUTES: Final = 20  # routes a report names; the rest are summed as "other"
TOP_NETWORKS: Final = 10  # source networks a report names, busiest first; the rest: "other"
OWNER_KEYS: Final = 100  # keys an owner's report reads: the first page of the owner's listing
_EPOCH = re.compile(r"[0-9]{1,16}")
_ISO_EXAMPLE = "2026-11-29T10:00:00Z"


def iso(ts: int) -> str:
    return dt.datetime.fromtimestamp(ts, dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_time(text: str, name: str) -> int:
    """An instant given in a query: epoch seconds, an ISO 8601 time with its offset (Z, +02:00), or
    an ISO 8601 date (its midnight, UTC). The message never repeats the text (it may be anything)."""
    if _EPOCH.fullmatch(text):
        if len(text) > 11:
            raise ValidationError(f"{name} is too large for epoch seconds (milliseconds? divide by 1000)")
        return int(text)
    try:
        if len(text) <= 10:
            day = dt.date.fromisoformat(text)
            return int(dt.datetime(day.year, day.month, day.day, tzinfo=dt.UTC).timestamp())
        parsed = dt.datetime.fromisoformat(text)
        if parsed.tzinfo is None:
            raise ValidationError(f"{name} needs its time zone: end it with Z or an offset such as +00:00")
        return int(parsed.timestamp())
    except (ValueError, OverflowError):
        raise ValidationError(
            f"{name} must be epoch seconds or an ISO 8601 time such as {_ISO_EXAMPLE}"
        ) from None


@dataclass(frozen=True)
class Window:
    """Whole periods of one granularity: ``start`` is the first period's start, ``end`` the last
    one's end (exclusive)."""

    start: int
    end: int
    granularity: str

    @property
    def period(self) -> int:
        return PERIOD[self.granularity]

    def starts(self) -> range:
        return range(self.start, self.end, self.period)

    def sort_key(self, start: int) -> str:
        return hour_sk(start) if self.granularity == "hour" else day_sk(start)

    def as_dict(self) -> dict[str, Any]:
        return {"from": iso(self.start), "to": iso(self.end), "granularity": self.granularity}


def window(start: int | None, end: int | None, granularity: str, now: int) -> Window:
    """The periods a report covers: from the one ``start`` falls in to the one before ``end`` (a
    period ``end`` falls inside is included), never past the current period. Without ``start``:
    the last :data:`DEFAULT_POINTS` periods up to ``end``, the current one included without either.
    Refused: an unknown granularity, ``start`` not before ``end``, more periods than a series keeps
    (:data:`MAX_POINTS`), and a start older than the series is kept (:data:`RETENTION`)."""
    if granularity not in GRANULARITIES:
        raise ValidationError(f"granularity must be one of {', '.join(GRANULARITIES)}")
    if start is not None and end is not None and start >= end:
        raise ValidationError("from must be before to")
    period = PERIOD[granularity]
    current_end = now - now % period + period
    last = current_end if end is None else min(-(-end // period) * period, current_end)
    first = last - DEFAULT_POINTS[granularity] * period if start is None else start - start % period
    if first >= last:
        raise ValidationError("from must be before now")
    points, kept_days = (last - first) // period, RETENTION[granularity] // DAY
    if points > MAX_POINTS[granularity]:
        advice = ": ask for granularity=day" if granularity == "hour" else ""
        raise ValidationError(
            f"a report by {granularity} covers at most {MAX_POINTS[granularity]} {granularity}s{advice}"
        )
    oldest = -(-(now - RETENTION[granularity]) // period) * period  # the oldest period still kept
    if first < oldest:
        raise ValidationError(
            f"counts by {granularity} are kept {kept_days} days: from must be on or after {iso(oldest)}"
        )
    return Window(first, last, granularity)


def top(counter: dict[str, int], limit: int, name: str) -> list[dict[str, Any]]:
    """The ``limit`` busiest names, busiest first (ties by name), then the rest as "other"."""
    ranked = sorted(((k, v) for k, v in counter.items() if k != OTHER and v), key=lambda kv: (-kv[1], kv[0]))
    rows: list[dict[str, Any]] = [{name: k, "requests": v} for k, v in ranked[:limit]]
    rest = sum(v for _, v in ranked[limit:]) + counter.get(OTHER, 0)
    if rest:
        rows.append({name: OTHER, "requests": rest})
    return rows


def summary(span: Window, periods: dict[int, KeyHour]) -> dict[str, Any]:
    """A window's totals and its series, one entry per period, zeros included."""
    total, series = KeyHour(), []
    for start in span.starts():
        counts = periods.get(start, KeyHour())
        total.merge(counts, bounded=False)
        series.append(
            {
                "start": iso(start),
                "requests": counts.requests,
                "bytes": counts.bytes,
                "refused": sum(counts.refusals.values()),
            }
        )
    return {
        **span.as_dict(),
        "requests": total.requests,
        "bytes": total.bytes,
        "latency_ms_mean": round(total.latency_ms / total.requests, 1) if total.requests else None,
        "refused": sum(total.refusals.values()),
        "by_status": dict(sorted(total.by_status.items())),
        "by_route": top(total.by_route, TOP_ROUTES, "route"),
        "networks": top(total.networks, TOP_NETWORKS, "network"),
        "refusals": dict(sorted(total.refusals.items(), key=lambda kv: (-kv[1], kv[0]))),
        "series": series,
    }


def plan_view(record: KeyRecord, plans: Plans) -> dict[str, Any]:
    """The key's plan with its limits; a plan the deployment no longer declares, by name only."""
    name = record.plan or plans.default
    if name not in plans.plans:
        return {"name": name, "rate": None, "burst": None, "quota": None, "declared": False}
    return {**plans.plans[name].as_dict(), "declared": True}


class Usage(ServiceBase):
    def view(self, kid: str) -> dict[str, Any]:
        """A key as its reading shows it (GET /keys/{kid}, ``keys show``, GET /self): its public
        fields, its plan with the plan's limits and, when the plan has a quota, ``quota``: the limit,
        the period, the requests used in the current period (the usage table's days), when it
        resets, and ``exhausted_until`` while the key is refused for it."""
        return self.view_of(self.get(kid))

    def view_of(self, record: KeyRecord) -> dict[str, Any]:
        """:meth:`view` of a record just read (as read now: see :meth:`read`)."""
        record = record.read_at(self.clock())
        plans = self.settings.plans()
        plan = plan_view(record, plans)
        quota = plans.plans[plan["name"]].quota if plan["declared"] else None
        used = None if quota is None else self.quota_used(record, quota)
        return {**record.public_view(), "plan": plan, "quota": used}

    def quota_used(self, record: KeyRecord, quota: Quota) -> dict[str, Any]:
        """The quota's limit and period, the key's requests in the current period with its chain's
        (the sum of the days of its chain's first key in the usage table), when the period ends, and ``exhausted_until`` while marked."""
        now = self.clock()
        start, resets_at = quota.bounds(now)
        days = Window(start, now - now % DAY + DAY, "day")  # whole UTC days: every period starts on one
        # with the rest of its rotation chain: its first key's days hold the chain's count
        periods = self._periods(record.meter or record.kid, days)
        used = sum(counts.metered() for counts in periods.values())
        view = {"limit": quota.limit, "period": quota.period, "used": used, "resets_at": resets_at}
        if record.quota_refused(now):
            view["exhausted_until"] = record.quota_exhausted_until
        return view

    def usage(
        self, kid: str, start: int | None = None, end: int | None = None, granularity: str = "hour"
    ) -> dict[str, Any]:
        """What the key did in the window (see :func:`window`): totals, status classes, routes,
        networks, refusals by reason, and the series; with the key's status and last use."""
        record = self.get(kid)  # an unknown key is a 404, not an empty report
        now = self.clock()
        span = window(start, end, granularity, now)
        report = {
            "kid": record.kid,
            "status": str(record.status_at(now)),
            "last_used_at": record.last_used_at,
        }
        return {**report, **summary(span, self._periods(record.kid, span))}

    def owner_usage(
        self, owner_id: str, start: int | None = None, end: int | None = None, granularity: str = "hour"
    ) -> dict[str, Any]:
        """The owner's keys with their totals in the window, busiest first. Bounded: the first
        :data:`OWNER_KEYS` keys of the owner's listing (``truncated`` says when there are more)."""
        owner_id = model.validate_owner(owner_id)
        now = self.clock()
        span = window(start, end, granularity, now)
        records, more = self.store.list_by_owner(owner_id, limit=OWNER_KEYS)
        rows: list[dict[str, Any]] = []
        for record in records:
            total = KeyHour()
            for counts in self._periods(record.kid, span).values():
                total.merge(counts, bounded=False)
            rows.append(
                {
                    "kid": record.kid,
                    "name": record.name,
                    "status": str(record.status_at(now)),
                    "requests": total.requests,
                    "bytes": total.bytes,
                    "refused": sum(total.refusals.values()),
                }
            )
        rows.sort(key=lambda row: (-row["requests"], -row["refused"], row["kid"]))
        return {
            "owner": owner_id,
            **span.as_dict(),
            "requests": sum(row["requests"] for row in rows),
            "keys": rows,
            "keys_read_at_most": OWNER_KEYS,
            "truncated": more is not None,
        }

    def _periods(self, kid: str, span: Window) -> dict[int, KeyHour]:
        """The key's stored periods in the window, by start (a period nobody used has no item)."""
        items = self.usage_table.query(
            key_pk(kid), span.sort_key(span.start), span.sort_key(span.end - span.period)
        )
        return {start_of(item["sk"]["S"]): decode(item) for item in items}
