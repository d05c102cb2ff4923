"""Plans: the rate limits and quotas a key is held to (pure: no I/O).

The deployment declares its plans once, as JSON (the template's ``Plans`` parameter)::

    {"free": {"rate": 5, "burst": 10, "quota": {"limit": 1000, "period": "DAY"}},
     "pro":  {"rate": 50, "burst": 100, "quota": {"limit": 100000, "period": "MONTH"}}}

``rate`` is steady requests per second and ``burst`` the bucket API Gateway allows above it (REST usage
plans enforce both; HTTP APIs cannot per key, see docs/plans.md). ``quota`` is optional: requests per
period, where a period is a UTC day, an ISO week (from Monday 00:00 UTC) or a calendar month, as API
Gateway's usage plans count them without an offset.

Every key has a plan by name; a key from before plans were kept, or with no plan, is on the default.
A key is metered by API Gateway under its **usage identifier**: derived from its key id, public and
useless for calling the API (it is not a keysentry key), never the key itself.
"""

from __future__ import annotations

import datetime as dt
import json
import re
from dataclasses import dataclass
from typing import Any, Final

from keysentry.errors import ValidationError

PERIODS: Final = ("DAY", "WEEK", "MONTH")
PLAN_NAME: Final = re.compile(r"[a-z0-9][a-z0-9_-]{0,31}")
MAX_PLANS: Final = 20
USAGE_ID_PREFIX: Final = "keysentry-usage-"  # + the key id: 28 characters (API Gateway wants >= 20)
MAX_RATE: Final = 10_000.0  # API Gateway's default account throttle (requests per second)


@dataclass(frozen=True)
class Quota:
    limit: int
    period: str  # one of PERIODS

    def bounds(self, now: int) -> tuple[int, int]:
        """The period holding ``now``: its start and the start of the next (epoch seconds, UTC)."""
        return period_bounds(self.period, now)


@dataclass(frozen=True)
class Plan:
    name: str
    rate: float
    burst: int
    quota: Quota | None = None

    def as_dict(self) -> dict[str, Any]:
        quota = None if self.quota is None else {"limit": self.quota.limit, "period": self.quota.period}
        return {"name": self.name, "rate": self.rate, "burst": self.burst, "quota": quota}


def period_bounds(period: str, now: int) -> tuple[int, int]:
    day = now - now % 86_400
    if period == "DAY":
        return day, day + 86_400
    if period == "WEEK":
        monday = day - dt.datetime.fromtimestamp(day, dt.UTC).weekday() * 86_400
        return monday, monday + 7 * 86_400
    if period == "MONTH":
        date = dt.datetime.fromtimestamp(now, dt.UTC)
        start = dt.datetime(date.year, date.month, 1, tzinfo=dt.UTC)
        following = dt.datetime(date.year + date.month // 12, date.month % 12 + 1, 1, tzinfo=dt.UTC)
        return int(start.timestamp()), int(following.timestamp())
    raise ValueError(f"unknown quota period {period!r}")


def usage_identifier(kid: str) -> str:
    """The name API Gateway meters a key under: public, derived from the key id, not a key."""
    return USAGE_ID_PREFIX + kid


def _number(value: Any, what: str, low: float, high: float) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not low <= value <= high:
        raise ValidationError(f"{what} must be a number from {low:g} to {high:g}")
    return float(value)


def _plan(name: str, spec: Any) -> Plan:
    if not isinstance(name, str) or not PLAN_NAME.fullmatch(name):
        raise ValidationError("a plan name is 1-32 lowercase letters, digits, '-' or '_'")
    if (
        not isinstance(spec, dict)
        or set(spec) - {"rate", "burst", "quota"}
        or not {"rate", "burst"} <= set(spec)
    ):
        raise ValidationError(f"plan {name}: give rate, burst and, optionally, quota")
    rate = _number(spec["rate"], f"plan {name}: rate", 0.001, MAX_RATE)
    burst = spec["burst"]
    if isinstance(burst, bool) or not isinstance(burst, int) or not 0 <= burst <= 5_000:
        raise ValidationError(f"plan {name}: burst must be a whole number from 0 to 5000")
    quota = spec.get("quota")
    if quota is None:
        return Plan(name, rate, burst)
    if not isinstance(quota, dict) or set(quota) != {"limit", "period"}:
        raise ValidationError(f"plan {name}: a quota is {{limit, period}}")
    limit, period = quota["limit"], quota["period"]
    if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= 1_000_000_000:
        raise ValidationError(f"plan {name}: the quota's limit must be a whole number from 1 to 1000000000")
    if period not in PERIODS:
        raise ValidationError(f"plan {name}: the quota's period must be one of {', '.join(PERIODS)}")
    return Plan(name, rate, burst, Quota(limit, period))


@dataclass(frozen=True)
class Plans:
    """The deployment's plans and its default."""

    plans: dict[str, Plan]
    default: str

    @classmethod
    def from_json(cls, text: str, default: str) -> Plans:
        """Parse and check the whole document; a ValidationError says what is wrong (never echoing
        more than a plan's name)."""
        try:
            raw = json.loads(text)
        except ValueError:
            raise ValidationError("plans must be a JSON object of plan name to plan") from None
        if not isinstance(raw, dict) or not 1 <= len(raw) <= MAX_PLANS:
            raise ValidationError(f"plans must be a JSON object of 1 to {MAX_PLANS} plans")
        plans = {name: _plan(name, spec) for name, spec in raw.items()}
        if default not in plans:
            raise ValidationError("the default plan must be one of the plans")
        return cls(plans, default)

    def get(self, name: str | None) -> Plan:
        """A key's plan: its own, or the default for a key without one."""
        return self.plans[name] if name else self.plans[self.default]

    @property
    def metered(self) -> frozenset[str]:
        """The plans with a quota: their keys' requests are counted per rotation chain."""
        return frozenset(name for name, plan in self.plans.items() if plan.quota is not None)

    def check(self, name: str) -> str:
        """A plan name a key may be given, or a ValidationError naming the plans there are."""
        if name not in self.plans:
            raise ValidationError(f"unknown plan; the plans are: {', '.join(sorted(self.plans))}")
        return name


DEFAULT_PLANS: Final = (
    '{"free": {"rate": 5, "burst": 10, "quota": {"limit": 1000, "period": "DAY"}},'
    ' "pro": {"rate": 50, "burst": 100, "quota": {"limit": 1000000, "period": "MONTH"}},'
    ' "unlimited": {"rate": 1000, "burst": 2000}}'
)
DEFAULT_PLAN: Final = "unlimited"  # keys from before plans: no quota, as before
