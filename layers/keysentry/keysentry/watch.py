"""Usage anomalies: from what a key did in an hour, its trailing baseline and its history, which
anomalies to raise (pure: no I/O). docs/anomalies.md gives the reasons for each threshold.

- ``usage_spike``: the hour's requests are more than :data:`SPIKE_FACTOR` times the key's hourly
  baseline (its daily totals of the :data:`BASELINE_DAYS` full days before the hour's day) and more
  than :data:`SPIKE_FLOOR`; a key with no full day of history, more than :data:`NEW_KEY_SPIKE_FLOOR`.
- ``new_source_network``: a source network (/24, /48) the key's profile has not seen, once the key
  has been seen for :data:`LEARNING_S`, while its profile holds fewer than :data:`MAX_NETWORKS`.
- ``refusal_spike``: at least :data:`REFUSAL_FLOOR` refusals in the hour that say someone holds the
  key but not its rights (wrong IP, signature, scope, digest): dead-key and deployment reasons aside.
- ``dead_key_used``: a refusal because the key is revoked, suspended, expired or past its grace.

Each anomaly has an id that is the same whenever it is found again (:attr:`Anomaly.event_id`): the
same key and hour (and network), so it is alerted once however often it is seen.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Final

from keysentry.usage import HOUR, OTHER

DAY: Final = 86_400
SPIKE_FACTOR: Final = 10
SPIKE_FLOOR: Final = 100  # requests in the hour: below it, no key's hour is a spike
NEW_KEY_SPIKE_FLOOR: Final = 1_000  # for a key without a full day of history
BASELINE_DAYS: Final = 7
LEARNING_S: Final = 24 * HOUR  # a key's networks are learned, not alerted, for its first day
MAX_NETWORKS: Final = 500  # networks a profile keeps; a key seen from more is used from everywhere
REFUSAL_FLOOR: Final = 20

USAGE_SPIKE: Final = "usage_spike"
NEW_SOURCE_NETWORK: Final = "new_source_network"
REFUSAL_SPIKE: Final = "refusal_spike"
DEAD_KEY_USED: Final = "dead_key_used"
TYPES: Final = (USAGE_SPIKE, NEW_SOURCE_NETWORK, REFUSAL_SPIKE, DEAD_KEY_USED)
# What may suspend a key that opted in. A dead key's use never does: it is refused already.
SUSPENDS: Final = frozenset({USAGE_SPIKE, NEW_SOURCE_NETWORK, REFUSAL_SPIKE})

# The authorizer's reasons for refusing a key that is no longer live (authorizer/decide.py).
DEAD_KEY_REASONS: Final = frozenset(
    {"status_revoked", "status_suspended", "status_expired", "expired", "grace_ended"}
)
# A refusal of a token whose secret part is wrong: whoever sent it knows the key's id, not the key.
# It counts towards a refusal spike (someone is guessing), but never suspends: anyone who learns a key
# id (it is in logs, alerts and backends' context) could otherwise disable that key at will.
KEY_NOT_HELD: Final = frozenset({"wrong_digest"})
# Refusals that say the deployment is wrong, not the caller: a route without a rule, a signed key
# behind a caching stage or a TOKEN authorizer, a test key on a live stage.
DEPLOYMENT_REASONS: Final = frozenset(
    {
        "route_not_mapped",
        "signed_key_behind_gateway_cache",
        "signature_needs_request_authorizer",
        "test_key_on_non_test_stage",
    }
)


def hour_iso(start: int) -> str:
    return dt.datetime.fromtimestamp(start, dt.UTC).strftime("%Y-%m-%dT%H:00Z")


def baseline_days(hour_start: int) -> list[int]:
    """The starts of the full days a baseline is made of: the :data:`BASELINE_DAYS` before the hour's."""
    today = hour_start - hour_start % DAY
    return [today - n * DAY for n in range(BASELINE_DAYS, 0, -1)]


@dataclass(frozen=True)
class Profile:
    """What is known of a key's past: when it was first seen, and the networks it was used from."""

    first_seen: int | None = None
    networks: frozenset[str] = frozenset()

    def learned(self, hour_start: int) -> bool:
        return self.first_seen is not None and hour_start - self.first_seen >= LEARNING_S

    def to_learn(self, seen: Iterable[str]) -> list[str]:
        """The networks among ``seen`` to add, in order, as many as the profile has room for."""
        new = sorted({n for n in seen if n != OTHER} - self.networks)
        return new[: max(MAX_NETWORKS - len(self.networks), 0)]


@dataclass(frozen=True)
class Baseline:
    """A key's requests in the full days of history before an hour (at most :data:`BASELINE_DAYS`)."""

    requests: int
    days: int

    @property
    def hourly(self) -> float | None:
        return self.requests / (24 * self.days) if self.days else None


def baseline(day_requests: Mapping[int, int], hour_start: int, first_seen: int | None) -> Baseline:
    """The hourly baseline before ``hour_start`` from the daily totals (day start -> requests).

    Only the days since the key was first seen count (a key used for three days is averaged over
    three, not seven); the earliest daily total in the window counts as seen, for keys older than
    their profile. A day without a total after that is a day without use."""
    days = baseline_days(hour_start)
    used = [d for d in days if day_requests.get(d)]
    known = [first_seen - first_seen % DAY] if first_seen is not None else []
    start = min(known + used[:1]) if known or used else None
    counted = [d for d in days if start is not None and d >= start]
    return Baseline(sum(day_requests.get(d, 0) for d in counted), len(counted))


@dataclass(frozen=True)
class Anomaly:
    type: str
    kid: str
    hour: int  # its start, epoch seconds
    requests: int = 0
    baseline: float | None = None
    network: str | None = None
    refusals: dict[str, int] = field(default_factory=dict)

    @property
    def event_id(self) -> str:
        """The same for every sighting of the same anomaly: the de-duplication key."""
        tail = f":{self.network}" if self.network else ""
        if self.type == REFUSAL_SPIKE and self.suspends:  # not spent by an earlier spike of guesses
            tail = ":key_presented"
        return f"{self.type}:{self.kid}:{hour_iso(self.hour)}{tail}"

    @property
    def suspends(self) -> bool:
        """Whether a key that opted in is suspended for it: a refusal spike only when its refusals
        show the key itself was presented (enough of them past the digest check)."""
        if self.type == REFUSAL_SPIKE:
            held = sum(n for r, n in self.refusals.items() if r not in KEY_NOT_HELD)
            return held >= REFUSAL_FLOOR
        return self.type in SUSPENDS

    def describe(self) -> str:
        """One line, for the suspension's reason: the figures, never a secret."""
        at = hour_iso(self.hour)
        if self.type == USAGE_SPIKE:
            usual = "no history" if self.baseline is None else f"baseline {self.baseline:.1f}/h"
            return f"{self.requests} requests in the hour from {at} ({usual})"
        if self.type == NEW_SOURCE_NETWORK:
            return f"first use from {self.network} in the hour from {at}"
        reasons = ", ".join(f"{r} {n}" for r, n in sorted(self.refusals.items()))
        return f"{sum(self.refusals.values())} refusals in the hour from {at} ({reasons})"


def suspicious(refusals: Mapping[str, int]) -> dict[str, int]:
    """The refusals that say someone holds the key but not its rights."""
    return {
        r: n for r, n in refusals.items() if n and r not in DEAD_KEY_REASONS and r not in DEPLOYMENT_REASONS
    }


def spike(kid: str, hour: int, requests: int, usual: Baseline) -> Anomaly | None:
    hourly = usual.hourly
    if hourly is None:
        fires = requests > NEW_KEY_SPIKE_FLOOR
    else:
        fires = requests > SPIKE_FLOOR and requests > SPIKE_FACTOR * hourly
    return Anomaly(USAGE_SPIKE, kid, hour, requests=requests, baseline=hourly) if fires else None


def new_networks(kid: str, hour: int, seen: Iterable[str], profile: Profile) -> list[Anomaly]:
    """One anomaly per network ``seen`` that the profile does not hold, once the key is learned and
    while the profile has room (a full profile stops learning, and alerting)."""
    if not profile.learned(hour):
        return []
    return [Anomaly(NEW_SOURCE_NETWORK, kid, hour, network=n) for n in profile.to_learn(seen)]


def refused(kid: str, hour: int, refusals: Mapping[str, int]) -> list[Anomaly]:
    found = []
    tried = suspicious(refusals)
    if sum(tried.values()) >= REFUSAL_FLOOR:
        found.append(Anomaly(REFUSAL_SPIKE, kid, hour, refusals=tried))
    dead = {r: n for r, n in refusals.items() if n and r in DEAD_KEY_REASONS}
    if dead:
        found.append(Anomaly(DEAD_KEY_USED, kid, hour, refusals=dead))
    return found


@dataclass(frozen=True)
class KeyHourView:
    """What the rules read of one key and hour: the hour's totals once the batch is in, the networks
    the batch saw, the baseline and the profile."""

    kid: str
    hour: int
    requests: int
    refusals: Mapping[str, int]
    networks: Iterable[str]
    usual: Baseline
    profile: Profile


def anomalies(view: KeyHourView) -> list[Anomaly]:
    """Every anomaly one key's hour shows, in the order of :data:`TYPES`."""
    found: list[Anomaly] = []
    spiked = spike(view.kid, view.hour, view.requests, view.usual)
    if spiked is not None:
        found.append(spiked)
    found += new_networks(view.kid, view.hour, view.networks, view.profile)
    found += refused(view.kid, view.hour, view.refusals)
    return found


__all__ = [
    "BASELINE_DAYS",
    "DEAD_KEY_REASONS",
    "DEAD_KEY_USED",
    "DEPLOYMENT_REASONS",
    "KEY_NOT_HELD",
    "LEARNING_S",
    "MAX_NETWORKS",
    "NEW_KEY_SPIKE_FLOOR",
    "NEW_SOURCE_NETWORK",
    "REFUSAL_FLOOR",
    "REFUSAL_SPIKE",
    "SPIKE_FACTOR",
    "SPIKE_FLOOR",
    "SUSPENDS",
    "TYPES",
    "USAGE_SPIKE",
    "Anomaly",
    "Baseline",
    "KeyHourView",
    "Profile",
    "anomalies",
    "baseline",
    "baseline_days",
    "hour_iso",
    "suspicious",
]
