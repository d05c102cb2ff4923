"""The authorizer's memory within one container: key records by kid (bounded, TTL), a short
negative cache of unknown kids, and the decisions of bearer-key requests (until the record's TTL or
the key's next time boundary, whichever is first: its grace or lifetime ends, or the quota it
exhausted resets).

A record is decided afresh against the clock on every request, so a quota mark it holds ends on
time; a mark set after the record was read is seen once the record's TTL has passed."""

from __future__ import annotations

import ipaddress
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any, Final

from keysentry.authorizer.outcomes import Decision, Outcome
from keysentry.model import KeyRecord, network

NEGATIVE_TTL_S: Final = 5.0

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
# (token, method, path, source ip, shape, stage): everything a bearer decision depends on
DecisionKey = tuple[Any, ...]


@dataclass(frozen=True)
class Entry:
    record: KeyRecord
    allow: tuple[Network, ...]
    deny: tuple[Network, ...]
    expires: float
    verifier: Any = None  # signed keys: holds an hmac secret in memory no longer than the record

    # what identifying a token needs of it (:class:`keysentry.identify.Hashed`)
    @property
    def digest(self) -> str:
        return self.record.digest

    @property
    def pepper_version(self) -> str:
        return self.record.pepper_version


class RecordCache:
    """Key records by kid, bounded (LRU) with a TTL; plus a short negative cache for unknown kids."""

    def __init__(self, ttl: float, max_entries: int = 10_000, negative_ttl: float = NEGATIVE_TTL_S) -> None:
        self.ttl = ttl
        self.max_entries = max_entries
        self.negative_ttl = min(negative_ttl, ttl)
        self._entries: OrderedDict[str, Entry] = OrderedDict()
        self._missing: OrderedDict[str, float] = OrderedDict()
        # request key -> (monotonic until, wall-clock until, decision, its record if an Allow), for
        # bearer keys only: the same request gets the same answer until the record's TTL or the key's
        # next time boundary.
        self.decisions: dict[DecisionKey, tuple[float, float, Decision, KeyRecord | None]] = {}

    def get(self, kid: str, now: float) -> Entry | None:
        entry = self._entries.get(kid)
        if entry is None:
            return None
        if entry.expires <= now:
            del self._entries[kid]
            return None
        return entry

    def put(self, record: KeyRecord, now: float, verifier: Any = None) -> Entry:
        entry = Entry(
            record,
            # records stored before mapped networks were normalised on input are normalised here
            tuple(network(c) for c in record.allow_cidrs),
            tuple(network(c) for c in record.deny_cidrs),
            now + self.ttl,
            verifier,
        )
        if self.ttl > 0:
            self._entries[record.kid] = entry
            self._entries.move_to_end(record.kid)
            while len(self._entries) > self.max_entries:
                self._entries.popitem(last=False)
        return entry

    def is_missing(self, kid: str, now: float) -> bool:
        until = self._missing.get(kid)
        if until is None:
            return False
        if until <= now:
            del self._missing[kid]
            return False
        return True

    def mark_missing(self, kid: str, now: float) -> None:
        if self.negative_ttl > 0:
            self._missing[kid] = now + self.negative_ttl
            while len(self._missing) > self.max_entries:
                self._missing.popitem(last=False)

    def remember(self, key: DecisionKey, until: float, wall_until: float, decision: Decision) -> None:
        """Keep a decision until the record's TTL (monotonic) or the key's next time boundary (wall clock)."""
        if self.ttl <= 0:
            return
        if len(self.decisions) >= self.max_entries:
            self.decisions.clear()
        allowed = decision.record if decision.outcome is Outcome.ALLOW else None
        self.decisions[key] = (until, wall_until, decision, allowed)

    def clear(self) -> None:
        self._entries.clear()
        self._missing.clear()
        self.decisions.clear()
