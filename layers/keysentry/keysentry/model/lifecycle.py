"""A key's life: each transition is a function from the record to the next record (pure, no I/O).

```
            create                      rotate
  (none) ---------> active ------------------------> rotating --grace ends--> expired
                      |  ^
             suspend  |  | resume
                      v  |
                   suspended            revoke (any live state) -------> revoked
                                        lifetime ends            -------> expired
```
revoked and expired are terminal. The store makes every transition a conditional write on
``status`` and ``version``, except revoke, which is conditioned on the status being live only,
so a revoke always wins a race.
"""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING, Any

from keysentry.errors import ForbiddenError, TransitionError, ValidationError
from keysentry.model.record import (
    ALLOWED_FROM,
    DAY,
    DEFAULT_ROTATION_DAYS,
    MAX_GRACE_DAYS,
    MAX_LIFETIME_DAYS,
    ROTATE_SELF_SCOPE,
    Action,
    Change,
    IssuedBy,
    KeyRecord,
    KeySpec,
    Lapse,
    Signing,
    Status,
)
from keysentry.model.validation import (
    lifetime_seconds,
    validate_cidrs,
    validate_flag,
    validate_metadata,
    validate_name,
    validate_owner,
    validate_plan,
    validate_rotation_days,
    validate_scopes,
)

if TYPE_CHECKING:
    from keysentry.plans import Plans


def _plans(plans: Plans | None) -> Plans:
    """The deployment's plans; without them (a caller that has no settings), the default plans."""
    if plans is not None:
        return plans
    from keysentry.plans import DEFAULT_PLAN, DEFAULT_PLANS, Plans

    return Plans.from_json(DEFAULT_PLANS, DEFAULT_PLAN)


def new_record(
    *,
    kid: str,
    owner_id: str,
    env: str,
    digest: str,
    pepper_version: str,
    now: int,
    actor: str,
    name: str = "",
    scopes: list[str] | tuple[str, ...] = (),
    allow_cidrs: list[str] | tuple[str, ...] = (),
    deny_cidrs: list[str] | tuple[str, ...] = (),
    rotation_days: int = DEFAULT_ROTATION_DAYS,
    expires_in_days: int | None = None,
    expires_in: int | str | None = None,
    max_lifetime_days: int = MAX_LIFETIME_DAYS,
    metadata: dict[str, str] | None = None,
    signing: Signing | None = None,
    predecessor: str | None = None,
    reason: str = "",
    issued_by: IssuedBy = IssuedBy.OWNER,
    suspend_on_anomaly: bool = False,
    plan: str = "",
) -> KeyRecord:
    """A new active key. ``expires_in`` (seconds or a duration, see :func:`parse_duration`) and
    ``expires_in_days`` are two ways to say the same thing: give at most one."""
    rotation_days = validate_rotation_days(rotation_days)
    lifetime_s = lifetime_seconds(expires_in_days, expires_in, max_lifetime_days)
    return KeyRecord(
        kid=kid,
        owner_id=validate_owner(owner_id),
        env=env,
        status=Status.ACTIVE,
        digest=digest,
        pepper_version=pepper_version,
        created_at=now,
        rotation_days=rotation_days,
        rotate_after=now + rotation_days * DAY,
        name=validate_name(name),
        scopes=validate_scopes(scopes),
        allow_cidrs=validate_cidrs(allow_cidrs, "allow"),
        deny_cidrs=validate_cidrs(deny_cidrs, "deny"),
        expires_at=now + lifetime_s if lifetime_s else None,
        metadata=validate_metadata(metadata),
        signing=signing or Signing(),
        predecessor=predecessor,
        version=1,
        last_change=Change(Action.CREATE, actor, now, reason),
        issued_by=issued_by,
        suspend_on_anomaly=validate_flag(suspend_on_anomaly, "suspend_on_anomaly"),
        plan=plan,
    )


def issue(
    spec: KeySpec,
    *,
    kid: str,
    digest: str,
    pepper_version: str,
    now: int,
    actor: str,
    signing: Signing,
    default_rotation_days: int = DEFAULT_ROTATION_DAYS,
    max_lifetime_days: int = MAX_LIFETIME_DAYS,
    delivery_key: str | None = None,
    plans: Plans | None = None,
) -> KeyRecord:
    """The owner's new key as ``spec`` asks for it (its PEMs already checked into ``signing`` and
    ``delivery_key``). Its plan is kept by name, the default's when ``spec`` names none: a later
    change of the default plan moves no existing key (docs/plans.md)."""
    plans = _plans(plans)
    plan = plans.default if spec.plan is None else validate_plan(spec.plan, plans)
    record = new_record(
        kid=kid,
        owner_id=spec.owner,
        env=spec.env,
        digest=digest,
        pepper_version=pepper_version,
        now=now,
        actor=actor,
        name=spec.name,
        scopes=spec.scopes,
        allow_cidrs=spec.allow_cidrs,
        deny_cidrs=spec.deny_cidrs,
        rotation_days=default_rotation_days if spec.rotation_days is None else spec.rotation_days,
        expires_in_days=spec.expires_in_days,
        expires_in=spec.expires_in,
        max_lifetime_days=max_lifetime_days,
        metadata=spec.metadata,
        signing=signing,
        suspend_on_anomaly=spec.suspend_on_anomaly,
        plan=plan,
    )
    return replace(record, delivery_key=delivery_key) if delivery_key else record


def check_allowed(record: KeyRecord, action: Action, now: int) -> None:
    """Refuse ``action`` unless the lifecycle allows it from the key's status as read at ``now``: a
    key whose time is up is expired to every action but the schedule's expiry, which writes it."""
    status = record.status if action is Action.EXPIRE else record.status_at(now)
    if status not in ALLOWED_FROM[action]:
        raise TransitionError(record.kid, str(action), _as_read(record, status, now))


def _as_read(record: KeyRecord, status: Status, now: int) -> str:
    """The status a refusal names: why, when the key's time is up but the schedule has not yet
    written its expiry."""
    if status is record.status:
        return str(status)
    lapse = record.lapsed(now)
    return f"{status} ({'past its expiry' if lapse is Lapse.LIFETIME else 'past its rotation grace window'})"


def transition(record: KeyRecord, action: Action, *, now: int, actor: str, reason: str = "") -> KeyRecord:
    """The record after ``action``; raises :class:`TransitionError` when the lifecycle forbids it."""
    check_allowed(record, action, now)
    change = Change(action, actor, now, reason)
    common: dict[str, Any] = {"version": record.version + 1, "last_change": change}
    if action is Action.SUSPEND:
        return replace(record, status=Status.SUSPENDED, suspended_from=record.status, **common)
    if action is Action.LEAK:
        if record.status is Status.SUSPENDED and record.leaked_at is not None:
            raise TransitionError(record.kid, "report a leak on", "suspended as leaked already")
        return replace(
            record,
            status=Status.SUSPENDED,
            suspended_from=record.suspended_from if record.status is Status.SUSPENDED else record.status,
            leaked_at=now,
            **common,
        )
    if action is Action.RESUME:  # a key suspended while rotating, past its grace, is expired already
        back = record.suspended_from or Status.ACTIVE
        return replace(record, status=back, suspended_from=None, **common)
    if action is Action.REVOKE:
        return replace(record, status=Status.REVOKED, suspended_from=None, sealed_successor=None, **common)
    if action is Action.EXPIRE:
        return replace(record, status=Status.EXPIRED, suspended_from=None, sealed_successor=None, **common)
    raise ValueError(f"use the dedicated function for {action}")


def rotate(
    record: KeyRecord,
    *,
    now: int,
    actor: str,
    grace_days: int,
    successor_kid: str,
    successor_digest: str,
    pepper_version: str,
    successor_signing: Signing | None = None,
    reason: str = "",
    max_lifetime_days: int = MAX_LIFETIME_DAYS,
    sealed_successor: dict[str, str] | None = None,
    issued_by: IssuedBy = IssuedBy.OWNER,
) -> tuple[KeyRecord, KeyRecord]:
    """(predecessor in ``rotating``, new active successor) with scopes, IP rules, policy and plan copied.

    The successor keeps the predecessor's absolute expiry: rotating never extends a key's life. Only
    the owner may replace a suspended key: the successor is then the owner's, and the suspended key
    stays suspended, in a grace window it may be resumed in (a false alarm) until the schedule expires it.
    """
    replacing = record.status is Status.SUSPENDED and issued_by is IssuedBy.OWNER
    _check_rotation(record, now=now, replacing=replacing, issued_by=issued_by, grace_days=grace_days)
    grace_until = _grace_until(record, now=now, grace_days=grace_days)
    successor = _successor(
        record,
        now=now,
        actor=actor,
        kid=successor_kid,
        digest=successor_digest,
        pepper_version=pepper_version,
        signing=successor_signing or record.signing,
        reason=reason,
        max_lifetime_days=max_lifetime_days,
        issued_by=issued_by,
    )
    # A replaced key stays suspended; a resume within the grace window returns it to rotating.
    status: dict[str, Any] = {"suspended_from" if replacing else "status": Status.ROTATING}
    predecessor = replace(
        record,
        **status,
        successor=successor_kid,
        grace_until=grace_until,
        sealed_successor=sealed_successor,
        reminded=None,
        version=record.version + 1,
        last_change=Change(Action.ROTATE, actor, now, reason),
    )
    return predecessor, successor


def _successor(
    record: KeyRecord,
    *,
    now: int,
    actor: str,
    kid: str,
    digest: str,
    pepper_version: str,
    signing: Signing,
    reason: str,
    max_lifetime_days: int,
    issued_by: IssuedBy,
) -> KeyRecord:
    """The successor of ``record``: its policy and plan, its absolute expiry, its delivery key."""
    successor = new_record(
        kid=kid,
        owner_id=record.owner_id,
        env=record.env,
        digest=digest,
        pepper_version=pepper_version,
        now=now,
        actor=actor,
        name=record.name,
        scopes=record.scopes,
        allow_cidrs=record.allow_cidrs,
        deny_cidrs=record.deny_cidrs,
        rotation_days=record.rotation_days,
        max_lifetime_days=max_lifetime_days,
        metadata=record.metadata,
        signing=signing,
        predecessor=record.kid,
        reason=reason,
        issued_by=issued_by,
        suspend_on_anomaly=record.suspend_on_anomaly,
        plan=record.plan,
    )
    # Rotating is no way out of a quota: the successor's requests count with its chain's (its
    # meter: the chain's first key), and a key refused for its quota hands the refusal on.
    return replace(
        successor,
        expires_at=record.expires_at,
        delivery_key=record.delivery_key,
        quota_exhausted_until=record.quota_exhausted_until if record.quota_refused(now) else None,
        meter=record.meter or record.kid,
    )


def _check_rotation(
    record: KeyRecord, *, now: int, replacing: bool, issued_by: IssuedBy, grace_days: int
) -> None:
    if replacing:
        if record.status_at(now) is Status.EXPIRED:
            raise TransitionError(record.kid, "replace", _as_read(record, Status.EXPIRED, now))
    else:
        check_allowed(record, Action.ROTATE, now)
    if record.successor:
        raise TransitionError(record.kid, "rotate", f"already rotated (successor {record.successor})")
    if issued_by is IssuedBy.HOLDER:
        check_self_rotation(record)
    if not 0 <= grace_days <= MAX_GRACE_DAYS:
        raise ValidationError(f"grace days must be between 0 and {MAX_GRACE_DAYS}")


def _grace_until(record: KeyRecord, *, now: int, grace_days: int) -> int:
    """When a rotated key stops working: after its grace, and never after its expiry."""
    grace_until = now + grace_days * DAY
    return grace_until if record.expires_at is None else min(grace_until, record.expires_at)


def check_self_rotation(record: KeyRecord) -> None:
    """Whether the key's holder may mint its successor: only with the scope, never under a leak report."""
    if ROTATE_SELF_SCOPE not in record.scopes:
        raise ForbiddenError(f"this key may not rotate itself: it needs the {ROTATE_SELF_SCOPE} scope")
    if record.leaked_at is not None:
        raise TransitionError(
            record.kid,
            "rotate",
            "under a leak report: it cannot rotate itself; its owner can issue a replacement",
        )


def in_chain(successor: KeyRecord) -> bool:
    """Whether ``successor`` shares its predecessor's fate (suspend, revoke, leak): a key the
    holder or the schedule minted does; one the owner issued starts anew."""
    return successor.issued_by is not IssuedBy.OWNER


def remind(record: KeyRecord, stage: str, *, now: int, actor: str, reason: str = "") -> KeyRecord:
    check_allowed(record, Action.REMIND, now)
    return replace(
        record,
        reminded=stage,
        version=record.version + 1,
        last_change=Change(Action.REMIND, actor, now, reason or f"rotation due soon ({stage})"),
    )


def update(
    record: KeyRecord, *, now: int, actor: str, plans: Plans | None = None, **changes: Any
) -> KeyRecord:
    """Policy change: name, scopes, IP rules, metadata, rotation policy, suspension on an anomaly,
    plan (one of ``plans``). Only live keys, their time not up."""
    check_allowed(record, Action.UPDATE, now)
    fields: dict[str, Any] = {}
    if "plan" in changes:
        plans = _plans(plans)
        plan = validate_plan(changes.pop("plan"), plans)
        # the plan it is on already (a key from before plans is on the default) is no change: a
        # quota refusal for that plan stays
        if plan != (record.plan or plans.default):
            fields["plan"] = plan
    if "name" in changes:
        fields["name"] = validate_name(changes.pop("name"))
    if "scopes" in changes:
        fields["scopes"] = validate_scopes(changes.pop("scopes"))
    if "allow_cidrs" in changes:
        fields["allow_cidrs"] = validate_cidrs(changes.pop("allow_cidrs"), "allow")
    if "deny_cidrs" in changes:
        fields["deny_cidrs"] = validate_cidrs(changes.pop("deny_cidrs"), "deny")
    if "metadata" in changes:
        fields["metadata"] = validate_metadata(changes.pop("metadata"))
    if "suspend_on_anomaly" in changes:
        fields["suspend_on_anomaly"] = validate_flag(changes.pop("suspend_on_anomaly"), "suspend_on_anomaly")
    if "signing" in changes:
        signing = changes.pop("signing")
        if not isinstance(signing, Signing):
            raise ValidationError("signing must be set through the public-key registration")
        fields["signing"] = signing
    if "delivery_key" in changes:
        fields["delivery_key"] = changes.pop("delivery_key")  # validated by the caller (needs cryptography)
    if "rotation_days" in changes:
        days = validate_rotation_days(changes.pop("rotation_days"))
        fields["rotation_days"] = days
        if record.status is not Status.ROTATING:
            fields["rotate_after"] = record.created_at + days * DAY
            fields["reminded"] = None
    if changes:
        raise ValidationError(f"cannot update {', '.join(sorted(changes))}")
    return replace(
        record,
        **fields,
        version=record.version + 1,
        last_change=Change(Action.UPDATE, actor, now, ", ".join(sorted(fields))),
    )
