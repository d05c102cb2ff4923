"""Metering: one CloudWatch Logs subscription batch -> the usage table, then watched for anomalies.

The batch is folded in memory (:class:`keysentry.usage.Batch`) and written as one update per key and
hour, and per key and day (:mod:`keysentry.store.usage`), in transactions that each carry a marker
of the batch: a redelivered batch (CloudWatch Logs and Lambda deliver at least once) counts once.
What the batch leaves in each hour is handed to the :class:`Watcher`, which raises the anomalies;
:class:`Watchers` hands it to several (the anomalies, the quotas), each on its own.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from keysentry.store.usage import (
    DAY,
    Item,
    ItemKey,
    UsageTable,
    api_pk,
    day_sk,
    hour_sk,
    key_pk,
    merged,
    updates_for,
)
from keysentry.usage import Batch, KeyHour


def batch_id(log_group: str, log_stream: str, event_ids: Sequence[str]) -> str:
    """A delivery's identity, the same when it is delivered again: where its lines come from, and
    their ids (CloudWatch Logs gives every log event a unique id)."""
    digest = hashlib.sha256()
    for part in (log_group, log_stream, *event_ids):
        digest.update(part.encode())
        digest.update(b"\n")
    return digest.hexdigest()[:40]


@dataclass(frozen=True)
class Recorded:
    """What a batch did to each key: the counts it added per hour and the hour's and day's totals
    after it. ``held`` has every item read before the write, the watcher's own reads included."""

    added: dict[tuple[str, int], KeyHour]  # (kid, hour start) -> this batch's counts
    hour_totals: dict[tuple[str, int], KeyHour]
    day_totals: dict[tuple[str, int], KeyHour]  # (kid, day start); a chain's first key's days too
    held: dict[ItemKey, Item]
    replayed: bool  # every chunk was counted before: a redelivery
    meters: dict[str, str] = field(default_factory=dict)  # kid -> its chain's first key (Batch.meters)
    quota_free: frozenset[str] = frozenset()  # keys whose lines said they have no quota


class Watcher(Protocol):
    def reads(self, batch: Batch) -> Iterable[ItemKey]:
        """Items to read with the batch's own (baselines, histories)."""
        ...

    def watch(self, recorded: Recorded) -> int:
        """Raise what the batch shows; return how many anomalies were raised."""
        ...


class Watchers:
    """Several watchers as one: their reads together, each watching what the batch did. One that
    fails does not keep the others from it; the batch then fails with the first error (and is
    delivered again: each watcher is idempotent under redelivery)."""

    def __init__(self, *watchers: Watcher) -> None:
        self.watchers = watchers

    def reads(self, batch: Batch) -> Iterable[ItemKey]:
        return sorted({key for watcher in self.watchers for key in watcher.reads(batch)})

    def watch(self, recorded: Recorded) -> int:
        raised = 0
        failure: Exception | None = None
        for watcher in self.watchers:
            try:
                raised += watcher.watch(recorded)
            except Exception as error:
                failure = failure or error
        if failure is not None:
            raise failure
        return raised


@dataclass
class Outcome:
    lines: int
    unreadable: int
    keys: int
    keyless: int
    writes: int = 0  # item updates (hourly and daily counters)
    chunks: int = 0  # transactions written, each with its marker
    replayed: bool = False
    anomalies: int = 0

    def response(self) -> dict[str, Any]:
        return {
            "lines": self.lines,
            "unreadable": self.unreadable,
            "keys": self.keys,
            "keyless": self.keyless,
            "writes": self.writes,
            "chunks": self.chunks,
            "replayed": self.replayed,
            "anomalies": self.anomalies,
        }


class Metering:
    def __init__(self, table: UsageTable, watcher: Watcher | None = None) -> None:
        self.table = table
        self.watcher = watcher

    def record(self, batch_id: str, batch: Batch, lines: int) -> Outcome:
        kids = {kid for kid, _ in batch.keys}
        outcome = Outcome(lines, batch.unreadable, len(kids), len({api for api, _ in batch.keyless}))
        updates = updates_for(batch.keys, key_pk, batch.chained) + updates_for(batch.keyless, api_pk)
        if not updates:
            return outcome
        wanted: set[ItemKey] = {(u.pk, u.sk) for u in updates}
        if self.watcher is not None:
            wanted |= set(self.watcher.reads(batch))
        held = self.table.get_many(wanted)
        written, outcome.chunks = self.table.apply(batch_id, updates, held)
        outcome.writes, outcome.replayed = len(written), outcome.chunks == 0
        if self.watcher is not None:
            outcome.anomalies = self.watcher.watch(self._recorded(batch, held, written))
        return outcome

    @staticmethod
    def _recorded(batch: Batch, held: dict[ItemKey, Item], written: set[ItemKey]) -> Recorded:
        """Totals after the batch: what was read, plus what this delivery added. An item it did not
        write held the batch's counts when it was read (an earlier delivery of the batch wrote its
        chunk): they are not added twice."""
        hours: dict[tuple[str, int], KeyHour] = {}
        for (kid, start), counts in batch.keys.items():
            key = (key_pk(kid), hour_sk(start))
            hours[(kid, start)] = merged(held.get(key), counts if key in written else KeyHour())
        # each key's day, and a chain's first key's day with its later keys' requests
        added = [((kid, start - start % DAY), counts) for (kid, start), counts in batch.keys.items()]
        added += [((meter, day), KeyHour(chained=n)) for (meter, day), n in batch.chained.items()]
        days: dict[tuple[str, int], KeyHour] = {}
        for (kid, day), counts in added:
            key = (key_pk(kid), day_sk(day))
            total = days.get((kid, day))
            if total is None:
                total = days[(kid, day)] = merged(held.get(key), KeyHour())
            if key in written:
                total.merge(counts, bounded=False)
        return Recorded(
            dict(batch.keys), hours, days, held, not written, dict(batch.meters), batch.quota_free()
        )
