"""REST APIs: API Gateway's usage plans and API keys kept in step with keysentry's plans and keys.

At deploy (and by ``keysentry local up``), :func:`sync_usage_plans` makes one usage plan per plan of
the ``Plans`` parameter, named ``keysentry-<stage>-<plan>`` (the name is the mapping: nothing else
stores it), with the plan's throttle and quota, bound to the protected REST stages. A rerun changes
nothing; a usage plan whose plan is gone from ``Plans`` is left as it is and reported.

From the keys table's stream, :class:`KeySync` gives each key an API key named, and valued, by its
usage identifier (never the key), enabled unless the key is suspended, associated with its plan's
usage plan and no other keysentry one; a revoked, expired or leaked key's API key is deleted. Each
record brings the key to its state *in the table now* (one consistent read), so a redelivered or
late record cannot bring back what a later one removed, and doing it twice changes nothing.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Final, Literal

from keysentry.errors import KeyNotFoundError, ValidationError
from keysentry.gateway import Gateway, UsagePlan
from keysentry.model import KeyRecord, Status
from keysentry.plans import Plan, Plans, usage_identifier
from keysentry.store import from_item, is_key_item

if TYPE_CHECKING:
    from mypy_boto3_apigateway.type_defs import PatchOperationTypeDef

STAGE_PAIR: Final = re.compile(r"[a-z0-9]{10}:[A-Za-z0-9_-]{1,128}")
METERED: Final = frozenset({Status.ACTIVE, Status.ROTATING, Status.SUSPENDED})  # have an API key


def usage_plan_prefix(stage: str) -> str:
    return f"keysentry-{stage}-"


def usage_plan_name(stage: str, plan: str) -> str:
    """The usage plan of ``plan`` in the deployment ``stage``: found by this name, never stored."""
    return usage_plan_prefix(stage) + plan


def parse_stages(text: str) -> list[tuple[str, str]]:
    """``"restApiId:stage,..."`` -> [(restApiId, stage)]; a ValidationError says which part is wrong."""
    pairs = [part.strip() for part in text.split(",") if part.strip()]
    for pair in pairs:
        if not STAGE_PAIR.fullmatch(pair):
            raise ValidationError(f"usage plan stages are restApiId:stage pairs, not {pair[:140]!r}")
    return sorted({(pair.split(":", 1)[0], pair.split(":", 1)[1]) for pair in pairs})


# ---------------------------------------------------------------- usage plans, at deploy


@dataclass(frozen=True)
class PlansOutcome:
    created: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    left: list[str] = field(default_factory=list)  # usage plans whose plan is no longer in Plans

    def reason(self) -> str:
        parts = [f"{what}: {', '.join(names)}" for what, names in self.as_dict().items() if names]
        return "; ".join(parts) or "no plans"

    def as_dict(self) -> dict[str, Any]:
        return {
            "created": self.created,
            "updated": self.updated,
            "unchanged": self.unchanged,
            "left": self.left,
        }


def _throttle(plan: Plan) -> dict[str, Any]:
    return {"rateLimit": plan.rate, "burstLimit": plan.burst}


def _quota(plan: Plan) -> dict[str, Any] | None:
    return None if plan.quota is None else {"limit": plan.quota.limit, "period": plan.quota.period}


def _patch(current: UsagePlan, plan: Plan, stages: list[tuple[str, str]]) -> list[PatchOperationTypeDef]:
    """The operations that bring ``current`` to ``plan`` on ``stages`` (none when it is so already)."""
    ops: list[PatchOperationTypeDef] = []
    if current.rate != plan.rate or current.burst != plan.burst:
        op: Literal["add", "replace"] = "replace" if current.rate is not None else "add"
        ops += [
            {"op": op, "path": "/throttle/rateLimit", "value": f"{plan.rate:g}"},
            {"op": op, "path": "/throttle/burstLimit", "value": str(plan.burst)},
        ]
    want = None if plan.quota is None else (plan.quota.limit, plan.quota.period)
    if want is None and current.quota is not None:
        ops.append({"op": "remove", "path": "/quota"})
    elif want is not None and current.quota != want:
        op = "replace" if current.quota is not None else "add"
        ops += [
            {"op": op, "path": "/quota/limit", "value": str(want[0])},
            {"op": op, "path": "/quota/period", "value": want[1]},
        ]
    for api, stage in sorted(set(stages) - current.stages):
        ops.append({"op": "add", "path": "/apiStages", "value": f"{api}:{stage}"})
    return ops


def sync_usage_plans(
    plans: Plans, stage: str, stages: list[tuple[str, str]], gateway: Gateway
) -> PlansOutcome:
    """One usage plan per plan, bound to ``stages`` (stages bound by hand are kept). Idempotent."""
    existing = gateway.usage_plans(usage_plan_prefix(stage))
    outcome = PlansOutcome()
    for plan in plans.plans.values():
        name = usage_plan_name(stage, plan.name)
        current = existing.get(name)
        if current is None:
            description = (
                f"keysentry plan {plan.name} ({stage}); managed by keysentry from the Plans parameter"
            )
            gateway.create_usage_plan(name, description, stages, _throttle(plan), _quota(plan))
            outcome.created.append(name)
            continue
        operations = _patch(current, plan, stages)
        gateway.update_usage_plan(current.id, operations)
        (outcome.updated if operations else outcome.unchanged).append(name)
    wanted = {usage_plan_name(stage, name) for name in plans.plans}
    outcome.left.extend(sorted(set(existing) - wanted))
    return outcome


# ---------------------------------------------------------------- API keys, from the stream


def relevant(old_image: dict[str, Any] | None, new_image: dict[str, Any] | None) -> str | None:
    """The kid of a key item whose record changed what API Gateway holds for it (created, its
    status or its plan), or None (audit entries, last use, a re-hash, a pickup)."""
    image = new_image or old_image
    if not image or not is_key_item(image):
        return None
    if not new_image or not old_image:
        return str(from_item(image).kid)
    old, new = from_item(old_image), from_item(new_image)
    if old.status != new.status or old.plan != new.plan:
        return new.kid
    return None


@dataclass
class KeySync:
    """One stream batch's work on API Gateway: each record's key brought to its current state."""

    gateway: Gateway
    read: Callable[[str], KeyRecord]  # the key's record now (a consistent read)
    stage: str
    default_plan: str
    changes: list[tuple[str, str]] = field(default_factory=list)  # (kid, what was done)
    _plans: dict[str, UsagePlan] | None = None

    def usage_plans(self) -> dict[str, UsagePlan]:
        if self._plans is None:
            self._plans = self.gateway.usage_plans(usage_plan_prefix(self.stage))
        return self._plans

    def record(self, old_image: dict[str, Any] | None, new_image: dict[str, Any] | None) -> None:
        """Bring the key of one stream record in step; raises when API Gateway could not be."""
        kid = relevant(old_image, new_image)
        if kid is not None:
            self.key(kid)

    def key(self, kid: str) -> None:
        try:
            record: KeyRecord | None = self.read(kid)
        except KeyNotFoundError:
            record = None
        name = usage_identifier(kid)
        if record is None or record.status not in METERED:
            existing = self.gateway.api_key(name)
            if existing is not None:
                self.gateway.delete_api_key(existing)
                self.changes.append((kid, "deleted"))
            return
        enabled = record.status is not Status.SUSPENDED
        description = f"keysentry key {kid} (its usage identifier, not the key)"
        key = self.gateway.ensure_api_key(name, name, enabled, description)
        if self.gateway.set_enabled(key, enabled):  # before anything can fail: a suspension holds
            self.changes.append((kid, "enabled" if enabled else "disabled"))
        plan = record.plan or self.default_plan
        target = self.usage_plans().get(usage_plan_name(self.stage, plan))
        if target is None:
            raise LookupError(f"no usage plan {usage_plan_name(self.stage, plan)}: deploy the plan first")
        managed = {p.id for p in self.usage_plans().values()}
        current = self.gateway.plans_of(key) & managed
        for plan_id in current - {target.id}:
            self.gateway.dissociate(plan_id, key)
        if target.id not in current:
            self.gateway.associate(target.id, key)
            self.changes.append((kid, f"on {plan}"))
