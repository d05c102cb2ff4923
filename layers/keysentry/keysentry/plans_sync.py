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

:func:`reconcile` does the same for every key of the table at once (the backfill: at deploy, and by
``keysentry plans sync``), and deletes orphans. What a key's API key should be is one rule,
:func:`wanted` then :func:`steps`, for both.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Final, Literal

from keysentry.errors import KeyNotFoundError, ValidationError
from keysentry.gateway import ApiKey, Gateway, UsagePlan
from keysentry.keyformat import is_kid
from keysentry.model import KeyRecord, Status
from keysentry.plans import USAGE_ID_PREFIX, Plan, Plans, usage_identifier
from keysentry.store import KeyStore, from_item, is_key_item

if TYPE_CHECKING:
    from mypy_boto3_apigateway.type_defs import PatchOperationTypeDef

STAGE_PAIR: Final = re.compile(r"[a-z0-9]{10}:[A-Za-z0-9_-]{1,128}")
METERED: Final = frozenset({Status.ACTIVE, Status.ROTATING, Status.SUSPENDED})  # have an API key


def usage_plan_prefix(stage: str) -> str:
    return f"keysentry-{stage}-"


def plan_description(stage: str, plan: str) -> str:
    """A usage plan's description: what says which deployment it belongs to (names alone cannot:
    ``keysentry-dev-x-free`` is stage dev-x's free plan, or stage dev's plan x-free)."""
    return f"keysentry plan {plan} ({stage}); managed by keysentry from the Plans parameter"


def deployment_plans(gateway: Gateway, stage: str) -> dict[str, UsagePlan]:
    """The usage plans this deployment (``stage``) made, by name; another stage's, in the same
    account and region, are not among them whatever their names."""
    prefix = usage_plan_prefix(stage)
    return {
        name: plan
        for name, plan in gateway.usage_plans(prefix).items()
        if plan.description == plan_description(stage, name.removeprefix(prefix))
    }


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
    existing = deployment_plans(gateway, stage)
    outcome = PlansOutcome()
    for plan in plans.plans.values():
        name = usage_plan_name(stage, plan.name)
        current = existing.get(name)
        if current is None:
            description = plan_description(stage, plan.name)
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


@dataclass(frozen=True)
class Wanted:
    """What API Gateway should hold for one live key: an API key named (and valued) ``name``,
    enabled or not, on the usage plan ``usage_plan`` and no other keysentry one."""

    name: str
    enabled: bool
    usage_plan: str


def wanted(record: KeyRecord | None, stage: str, default_plan: str) -> Wanted | None:
    """The one rule for what API Gateway holds for a key's record (None: no API key at all)."""
    if record is None or record.status not in METERED:
        return None
    plan = record.plan or default_plan
    return Wanted(
        usage_identifier(record.kid), record.status is not Status.SUSPENDED, usage_plan_name(stage, plan)
    )


@dataclass(frozen=True)
class Step:
    """One change to API Gateway: create, enable, disable, delete the key's API key; off or on a usage plan."""

    action: Literal["create", "enable", "disable", "off", "on", "delete"]
    usage_plan: str = ""

    def __str__(self) -> str:
        done = {"create": "created", "enable": "enabled", "disable": "disabled", "delete": "deleted"}
        return done.get(self.action) or f"{self.action} {self.usage_plan}"


def steps(want: Wanted | None, key: ApiKey | None, on: set[str]) -> list[Step]:
    """What brings an API key (``key``, on the keysentry usage plans named ``on``) to ``want``, in the
    order to take them: its state first (a suspension holds even if a usage plan is missing), then
    off the others before onto its own (a key cannot be on two usage plans of one stage)."""
    if want is None:
        return [Step("delete")] if key is not None else []
    found: list[Step] = []
    if key is None:
        found.append(Step("create"))
    elif key.enabled != want.enabled:
        found.append(Step("enable" if want.enabled else "disable"))
    found += [Step("off", name) for name in sorted(on - {want.usage_plan})]
    if want.usage_plan not in on:
        found.append(Step("on", want.usage_plan))
    return found


@dataclass
class KeySync:
    """API Gateway's API keys brought to their keys' current state, one key at a time: each stream
    record's key, and each key a reconciliation finds out of step."""

    gateway: Gateway
    read: Callable[[str], KeyRecord]  # the key's record now (a consistent read)
    stage: str
    default_plan: str
    changes: list[tuple[str, str]] = field(default_factory=list)  # (kid, what was done)
    _plans: dict[str, UsagePlan] | None = None

    def usage_plans(self) -> dict[str, UsagePlan]:
        if self._plans is None:
            self._plans = deployment_plans(self.gateway, self.stage)
        return self._plans

    def record(self, old_image: dict[str, Any] | None, new_image: dict[str, Any] | None) -> None:
        """Bring the key of one stream record in step; raises when API Gateway could not be."""
        kid = relevant(old_image, new_image)
        if kid is not None:
            self.key(kid)

    def wanted(self, kid: str) -> Wanted | None:
        try:
            return wanted(self.read(kid), self.stage, self.default_plan)
        except KeyNotFoundError:
            return None

    def key(self, kid: str) -> None:
        """Bring ``kid``'s API key to its record in the table now; raises when API Gateway could not be."""
        want = self.wanted(kid)
        key = self.gateway.api_key(usage_identifier(kid))
        on: set[str] = set()
        if want is not None and key is not None:  # no usage plan is looked up for a key that has none
            names = {plan.id: plan.name for plan in self.usage_plans().values()}
            on = {names[i] for i in self.gateway.plans_of(key) if i in names}
        self._apply(kid, key, steps(want, key, on), want)

    def _apply(self, kid: str, key: ApiKey | None, todo: list[Step], want: Wanted | None) -> None:
        plans = self.usage_plans() if want is not None else {}
        for step in todo:
            if step.action == "delete" and key is not None:
                self.gateway.delete_api_key(key)
            elif step.action == "create" and want is not None:
                description = f"keysentry key {kid} (its usage identifier, not the key)"
                key = self.gateway.ensure_api_key(want.name, want.name, want.enabled, description)
                self.gateway.set_enabled(key, want.enabled)  # found, not made: another writer's
            elif step.action in ("enable", "disable") and key is not None:
                self.gateway.set_enabled(key, step.action == "enable")
            elif key is not None and want is not None:  # off, on: only once its own usage plan is there
                if want.usage_plan not in plans:
                    raise LookupError(f"no usage plan {want.usage_plan}: deploy the plan first")
                plan_id = plans[step.usage_plan].id
                if step.action == "off":
                    self.gateway.dissociate(plan_id, key)
                else:
                    self.gateway.associate(plan_id, key)
            self.changes.append((kid, str(step)))


# ---------------------------------------------------------------- every key, at deploy and on demand


@dataclass
class Reconciled:
    """What a reconciliation did (or, dry, would do): changes and failures by kid."""

    dry_run: bool = False
    checked: int = 0  # keys of the table compared with API Gateway
    changes: list[tuple[str, str]] = field(default_factory=list)  # (kid, what was, or would be, done)
    failed: list[tuple[str, str]] = field(default_factory=list)  # (kid, why)
    finished: bool = True  # False: out of time before every key and orphan was looked at

    def summary(self) -> str:
        done = "would change" if self.dry_run else "changed"
        text = f"API keys: {self.checked} keys checked, {len({k for k, _ in self.changes})} {done}"
        if self.failed:
            text += f", {len(self.failed)} failed ({', '.join(kid for kid, _ in self.failed[:10])})"
        if not self.finished:
            text += "; out of time before the rest: run `keysentry plans sync` to finish"
        return text

    def as_dict(self) -> dict[str, Any]:
        return {
            "dry_run": self.dry_run,
            "checked": self.checked,
            "finished": self.finished,
            "changes": [{"kid": kid, "change": change} for kid, change in self.changes],
            "failed": [{"kid": kid, "reason": reason} for kid, reason in self.failed],
        }


def reconcile(
    sync: KeySync,
    records: Iterable[KeyRecord],
    *,
    dry_run: bool = False,
    out_of_time: Callable[[], bool] = lambda: False,
) -> Reconciled:
    """Every key of ``records`` (the whole table) and every orphan brought in step with API Gateway.

    API Gateway's keysentry API keys and their usage plans are read in bulk (a page of 500 a call);
    a key found in step costs no other call. A key out of step goes through :meth:`KeySync.key`, as a
    stream record would: its record read again, consistently, and brought to what it holds now.
    An orphan is an API key named ``keysentry-usage-<kid>``, on one of this deployment's usage plans,
    whose kid the table holds no live key for; it is looked at only once the whole table was (before
    that, it may be a key not read yet).
    A key that fails is reported and the others go on. ``out_of_time`` is asked before each key.
    """
    result = Reconciled(dry_run=dry_run)
    keys = sync.gateway.api_keys(USAGE_ID_PREFIX)
    plans = sync.usage_plans()
    on: dict[str, set[str]] = {}
    for plan in plans.values():
        for key_id in sync.gateway.keys_on(plan.id):
            on.setdefault(key_id, set()).add(plan.name)
    seen: set[str] = set()
    for record in records:
        if out_of_time():
            result.finished = False
            return result
        result.checked += 1
        name = usage_identifier(record.kid)
        seen.add(name)
        key = keys.get(name)
        found = steps(
            wanted(record, sync.stage, sync.default_plan), key, on.get(key.id, set()) if key else set()
        )
        if found:
            _bring(sync, record.kid, found, result)
    # only API keys on this deployment's usage plans: another deployment's keys (a second stack in the
    # account) share the naming but not this table, and are not this one's to delete
    ours = {name for name, key in keys.items() if key.id in on}
    for name in sorted(ours - seen):
        kid = name.removeprefix(USAGE_ID_PREFIX)
        if not is_kid(kid):
            continue  # not keysentry's naming: not ours to delete
        if out_of_time():
            result.finished = False
            return result
        _bring(sync, kid, [Step("delete")], result)
    return result


def _bring(sync: KeySync, kid: str, found: list[Step], result: Reconciled) -> None:
    if result.dry_run:
        result.changes += [(kid, str(step)) for step in found]
        return
    before = len(sync.changes)
    try:
        sync.key(kid)
    except Exception as error:  # one key's failure (throttling, a missing usage plan) stops no other
        result.failed.append((kid, f"{type(error).__name__}: {str(error)[:200]}"))
    result.changes += sync.changes[before:]


def table_keys(store: KeyStore, page: int = 500) -> Iterator[KeyRecord]:
    """Every key of the table, a Scan page at a time (audit entries filtered out by DynamoDB)."""
    cursor: str | None = None
    while True:
        records, cursor = store.list_all(limit=page, start=cursor)
        yield from records
        if cursor is None:
            return
