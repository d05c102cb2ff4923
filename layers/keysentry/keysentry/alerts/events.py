"""Lifecycle events: a keys-table stream record's old and new images -> zero or one event; usage
events: an anomaly the usage watcher found, or a key's quota used up, with the key's public fields
(pure).

An event never carries the key, its digest, a signing secret or a pickup blob: it is built from an
allow-list of fields, not by removing secrets from the record. The one secret-bearing field it may
carry is a ``rotated`` event's ``sealed_successor``: the successor sealed to the consumer's X25519
delivery key, which only the holder of the private key can open (that is how it is delivered).
"""

from __future__ import annotations

import datetime as dt
from typing import Any, Final

from keysentry.model import Action, KeyRecord
from keysentry.plans import Plan
from keysentry.store import from_item, is_key_item
from keysentry.watch import DEAD_KEY_USED, NEW_SOURCE_NETWORK, REFUSAL_SPIKE, USAGE_SPIKE, Anomaly, hour_iso

SCHEMA_VERSION: Final = "1"

SEVERITY: Final = {
    "created": "info",
    "rotated": "info",
    "rotation_due_soon": "low",
    "resumed": "medium",
    "policy_changed": "medium",
    "expired": "medium",
    "suspended": "high",
    "revoked": "high",
    "leaked": "critical",
}
# Anomalies in a key's usage (keysentry.watch): alerts on the same topic and bus, not key transitions.
USAGE_SEVERITY: Final = {
    USAGE_SPIKE: "medium",
    NEW_SOURCE_NETWORK: "low",
    REFUSAL_SPIKE: "high",
    DEAD_KEY_USED: "medium",
}
_BY_ACTION: Final = {
    Action.SUSPEND: "suspended",
    Action.RESUME: "resumed",
    Action.REVOKE: "revoked",
    Action.EXPIRE: "expired",
    Action.LEAK: "leaked",
    Action.ROTATE: "rotated",
    Action.REMIND: "rotation_due_soon",
    Action.UPDATE: "policy_changed",
}
# Every change that can narrow what a key may do: API Gateway's cached Allow would otherwise outlive
# it by up to the stage's TTL. A policy change may remove scopes, add a denied range or require
# signed requests; a rotation may end the predecessor at once (no grace). Only a creation, a resume
# and a reminder never narrow.
FLUSH_ON: Final = frozenset({"revoked", "suspended", "leaked", "expired", "policy_changed", "rotated"})
_POLICY_FIELDS: Final = (
    "name",
    "scopes",
    "allow_cidrs",
    "deny_cidrs",
    "metadata",
    "rotation_days",
    "suspend_on_anomaly",
    "plan",
)


def _iso(ts: int | None) -> str | None:
    return None if ts is None else dt.datetime.fromtimestamp(ts, dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def lifecycle_event(
    event_id: str, old_image: dict[str, Any] | None, new_image: dict[str, Any] | None
) -> dict[str, Any] | None:
    """The event for one stream record, or None when it is not a key transition.

    Raises (KeyError, ValueError) on a record that claims to be a key but cannot be decoded: that
    record is then reported as failed, alone.
    """
    if not new_image or not is_key_item(new_image):
        return None  # removals, audit entries
    new = from_item(new_image)
    old = from_item(old_image) if old_image and is_key_item(old_image) else None
    if old is not None and old.version == new.version:
        return None  # usage, re-hash, pickup set or erased: not a lifecycle change
    change = new.last_change
    if old is None:
        kind = "created"
    else:
        if change is None:
            raise ValueError("a key transition without its change")
        kind = _BY_ACTION.get(Action(change.action), "policy_changed")
    event: dict[str, Any] = {
        "schema_version": SCHEMA_VERSION,
        "id": event_id,
        "type": kind,
        "severity": _severity(kind, change.actor if change else None),
        "kid": new.kid,
        "owner_id": new.owner_id,
        "name": new.name,
        "env": new.env,
        "old_status": old.status.value if old else None,
        "new_status": new.status.value,
        "actor": change.actor if change else None,
        "reason": change.reason if change else "",
        "at": change.at if change else new.created_at,
        "time": _iso(change.at if change else new.created_at),
        "key_version": new.version,
        "predecessor": new.predecessor,
        "successor": new.successor,
        "rotate_after": new.rotate_after,
        "grace_until": new.grace_until,
        "expires_at": new.expires_at,
        "last_used_at": new.last_used_at,
    }
    if kind == "policy_changed" and old is not None:
        event["changed"] = [f for f in _POLICY_FIELDS if getattr(old, f) != getattr(new, f)]
    if kind == "rotation_due_soon":
        event["reminder"] = new.reminded
    if kind == "rotated" and new.sealed_successor:
        event["sealed_successor"] = dict(new.sealed_successor)
    return event


def _severity(kind: str, actor: str | None) -> str:
    """A key that minted its own successor (actor ``key:KID``) is worth a look: if it leaked, the
    successor is the attacker's too."""
    if kind in ("rotated", "created") and actor is not None and actor.startswith("key:"):
        return "medium"
    return SEVERITY[kind]


def usage_event(anomaly: Anomaly, record: KeyRecord, *, at: int, suspended: bool) -> dict[str, Any]:
    """The alert for an anomaly of ``record``'s usage: its figures and the key's public fields.
    ``status`` is the key's when the anomaly was found; ``suspended``, whether it was suspended for it."""
    return {
        "schema_version": SCHEMA_VERSION,
        "id": anomaly.event_id,
        "type": anomaly.type,
        "severity": USAGE_SEVERITY[anomaly.type],
        "kid": record.kid,
        "owner_id": record.owner_id,
        "name": record.name,
        "env": record.env,
        "status": record.status.value,
        "reason": anomaly.describe(),
        "at": at,
        "time": _iso(at),
        "suspended": suspended,
        "usage": {
            "hour": hour_iso(anomaly.hour),
            "requests": anomaly.requests,
            "baseline": None if anomaly.baseline is None else round(anomaly.baseline, 2),
            "network": anomaly.network,
            "refusals": dict(sorted(anomaly.refusals.items())),
        },
    }


# A key that used up its plan's quota (keysentry.alerts.quota): once per key and quota period.
QUOTA_EXHAUSTED: Final = "quota_exhausted"
QUOTA_SEVERITY: Final = "medium"


def quota_event_id(kid: str, plan: str, period: str, period_start: int) -> str:
    """The same whenever the key is found over its plan's quota in that period: one alert per key,
    plan and period. The period's kind is part of it (a day, a week and a month may start at the same
    midnight), and so is the plan: a key moved to a larger plan the day it used up the smaller's is
    alerted again when it uses up the larger's."""
    return f"{QUOTA_EXHAUSTED}:{kid}:{plan}:{period}:{_iso(period_start)}"


def quota_event(
    record: KeyRecord, plan: Plan, *, period_start: int, resets_at: int, used: int, at: int
) -> dict[str, Any]:
    """The alert that ``record`` used ``used`` requests of its plan's quota in the period from
    ``period_start``: it is refused (``quota_exceeded``) until ``resets_at``."""
    if plan.quota is None:
        raise ValueError(f"plan {plan.name} has no quota")
    limit, period = plan.quota.limit, plan.quota.period
    return {
        "schema_version": SCHEMA_VERSION,
        "id": quota_event_id(record.kid, plan.name, period, period_start),
        "type": QUOTA_EXHAUSTED,
        "severity": QUOTA_SEVERITY,
        "kid": record.kid,
        "owner_id": record.owner_id,
        "name": record.name,
        "env": record.env,
        "status": record.status.value,
        "reason": f"{used} requests of {limit} per {period.lower()} on plan {plan.name};"
        f" refused until {_iso(resets_at)}",
        "at": at,
        "time": _iso(at),
        "quota": {
            "plan": plan.name,
            "limit": limit,
            "period": period,
            "period_start": period_start,
            "used": used,
            "resets_at": resets_at,
        },
    }
