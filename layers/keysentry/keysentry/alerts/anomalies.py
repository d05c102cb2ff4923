"""The usage watcher: what a metered batch shows (:mod:`keysentry.watch`), as alerts on the topic and
the bus, each once; a key that opted in (``suspend_on_anomaly``) is suspended first.

For each key and hour of the batch it reads (with the batch's own items, one BatchGetItem) the key's
daily totals of the week before and its profile. An anomaly's id is claimed in the idempotency
table before anything is done about it, marked done once published and released when publishing
failed; the batch then fails, and its redelivery (counted once by the usage table) alerts again.
The profiles learn the batch's networks only once its alerts are out.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from typing import Any, Final, Protocol

from keysentry.alerts.dedupe import Deduplicator
from keysentry.alerts.events import usage_event
from keysentry.alerts.once import AlertOnce
from keysentry.alerts.publish import Publisher
from keysentry.errors import ChainIncompleteError, KeyNotFoundError, KeysentryError
from keysentry.metering import Recorded
from keysentry.model import MAX_REASON, KeyRecord, Status
from keysentry.store.usage import (
    PROFILE_TTL_S,
    ItemKey,
    UsageTable,
    day_sk,
    decode,
    key_pk,
    profile_key,
    read_profile,
)
from keysentry.usage import Batch
from keysentry.watch import Anomaly, Baseline, KeyHourView, Profile, anomalies, baseline, baseline_days

USAGE_ACTOR: Final = "keysentry:usage"
SUSPENDABLE: Final = frozenset({Status.ACTIVE, Status.ROTATING})
PROFILE_REFRESH_S: Final = 30 * 86_400  # a profile that changes nothing is rewritten this often (TTL)


class Keys(Protocol):
    """What the watcher needs of the key service."""

    def get(self, kid: str) -> KeyRecord: ...

    def suspend(self, kid: str, *, actor: str, reason: str = "") -> KeyRecord: ...


class UsageWatcher:
    def __init__(
        self,
        table: UsageTable,
        keys: Keys,
        publisher: Publisher,
        dedup: Deduplicator | None,
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.table = table
        self.keys = keys
        self.once = AlertOnce(publisher, dedup)
        self.clock = clock
        self.suspended: list[str] = []

    def reads(self, batch: Batch) -> Iterable[ItemKey]:
        """Each key's profile and its daily totals of the week before each hour of the batch."""
        wanted = set()
        for kid, hour in batch.keys:
            wanted.add(profile_key(kid))
            wanted |= {(key_pk(kid), day_sk(day)) for day in baseline_days(hour)}
        return sorted(wanted)

    def watch(self, recorded: Recorded) -> int:
        """Alert on every anomaly not alerted before; return how many were."""
        events = self._act(self.find(recorded))
        self.once.publish(events, "usage")
        self.learn(recorded)
        return len(events)

    def find(self, recorded: Recorded) -> list[Anomaly]:
        """The anomalies of each key and hour the batch added to; a new network once per batch."""
        found: list[Anomaly] = []
        networks_seen: set[tuple[str, str | None]] = set()
        for (kid, hour), added in sorted(recorded.added.items()):
            profile = read_profile(recorded.held.get(profile_key(kid)))
            totals = recorded.hour_totals[(kid, hour)]
            view = KeyHourView(
                kid,
                hour,
                totals.requests,
                totals.refusals,
                added.networks,
                self._usual(recorded, kid, hour, profile),
                profile,
            )
            for anomaly in anomalies(view):
                if anomaly.network is not None:
                    if (kid, anomaly.network) in networks_seen:
                        continue
                    networks_seen.add((kid, anomaly.network))
                found.append(anomaly)
        return found

    @staticmethod
    def _usual(recorded: Recorded, kid: str, hour: int, profile: Profile) -> Baseline:
        """The key's baseline before ``hour``: its days' totals as the batch left them."""
        days: dict[int, int] = {}
        for day in baseline_days(hour):
            total = recorded.day_totals.get((kid, day))
            item = recorded.held.get((key_pk(kid), day_sk(day)))
            days[day] = total.requests if total is not None else decode(item).requests if item else 0
        return baseline(days, hour, profile.first_seen)

    def _act(self, found: list[Anomaly]) -> list[dict[str, Any]]:
        """Claim each anomaly, suspend its key if it opted in, and build its event."""
        records: dict[str, KeyRecord | None] = {}
        events = []
        for anomaly in found:
            if anomaly.kid not in records:
                records[anomaly.kid] = self._record(anomaly.kid)
            record = records[anomaly.kid]
            if record is None or not self.once.claim(anomaly.event_id):
                continue
            suspended = self._suspend(anomaly, record)
            if suspended:
                records[anomaly.kid] = self._record(anomaly.kid)
            events.append(usage_event(anomaly, record, at=int(self.clock()), suspended=suspended))
        return events

    def _record(self, kid: str) -> KeyRecord | None:
        try:
            return self.keys.get(kid)
        except KeyNotFoundError:
            return None  # a key id no key has (gone since): nobody to alert

    def _suspend(self, anomaly: Anomaly, record: KeyRecord) -> bool:
        """Suspend a key that opted in, for an anomaly that may suspend; whether it was suspended."""
        if not (anomaly.suspends and record.suspend_on_anomaly and record.status in SUSPENDABLE):
            return False
        reason = f"anomaly: {anomaly.type}: {anomaly.describe()}"[:MAX_REASON]
        try:
            self.keys.suspend(record.kid, actor=USAGE_ACTOR, reason=reason)
        except ChainIncompleteError:
            pass  # the key is suspended; a successor is not yet (the error names it; a rerun ends it)
        except KeysentryError:
            return False  # suspended or ended meanwhile: the alert says it was not suspended now
        self.suspended.append(record.kid)
        return True

    def learn(self, recorded: Recorded) -> None:
        """Add what the batch showed to each key's profile: when first seen, the networks used from.
        A profile is written only when that changes it, or to keep it from expiring."""
        hours: dict[str, list[int]] = {}
        networks: dict[str, set[str]] = {}
        for (kid, hour), added in recorded.added.items():
            hours.setdefault(kid, []).append(hour)
            networks.setdefault(kid, set()).update(added.networks)
        for kid, seen in sorted(hours.items()):
            item = recorded.held.get(profile_key(kid))
            profile = read_profile(item)
            new = profile.to_learn(networks[kid])
            expires_at = max(seen) + PROFILE_TTL_S
            held_ttl = int(item["ttl"]["N"]) if item and "ttl" in item else 0
            if profile.first_seen is None or new or held_ttl < expires_at - PROFILE_REFRESH_S:
                self.table.update_profile(kid, first_seen=min(seen), networks=new, expires_at=expires_at)
