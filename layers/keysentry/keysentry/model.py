"""A key's record and its lifecycle: pure Python, no I/O.

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

import ipaddress
import re
import zlib
from dataclasses import dataclass, field, replace
from enum import StrEnum
from typing import Any, Final

from keysentry.errors import ForbiddenError, TransitionError, ValidationError

DAY: Final = 86_400
MIN_ROTATION_DAYS: Final = 30
MAX_ROTATION_DAYS: Final = 90
DEFAULT_ROTATION_DAYS: Final = 90
DEFAULT_GRACE_DAYS: Final = 7
MAX_LIFETIME_DAYS: Final = 365
MIN_LIFETIME_S: Final = 60
ROTATE_SELF_SCOPE: Final = "keys:rotate-self"  # lets a key's holder mint its successor
REMINDER_LEADS: Final = (("7d", 7 * DAY), ("1d", 1 * DAY))
GRACE_REMINDER_LEAD: Final = 1 * DAY
DUE_SHARDS: Final = 8

MAX_SCOPES: Final = 50
MAX_CIDRS: Final = 100
MAX_METADATA: Final = 20
_SCOPE_RE: Final = re.compile(r"\A[A-Za-z0-9][A-Za-z0-9_.:/*-]{0,63}\Z")
_OWNER_RE: Final = re.compile(r"\A[A-Za-z0-9][A-Za-z0-9_.@:+-]{0,127}\Z")
_META_KEY_RE: Final = re.compile(r"\A[A-Za-z0-9_.:-]{1,64}\Z")


class Status(StrEnum):
    ACTIVE = "active"
    ROTATING = "rotating"
    SUSPENDED = "suspended"
    REVOKED = "revoked"
    EXPIRED = "expired"


LIVE: Final = frozenset({Status.ACTIVE, Status.ROTATING, Status.SUSPENDED})
TERMINAL: Final = frozenset({Status.REVOKED, Status.EXPIRED})


class IssuedBy(StrEnum):
    """Who minted a key. A holder's or the schedule's successor is in its predecessor's chain: a
    suspension, revocation or leak report of the predecessor reaches it. An owner's key starts a chain."""

    OWNER = "owner"  # create, owner rotation, replacement (IAM)
    HOLDER = "holder"  # POST /self/rotate with the key itself
    SCHEDULE = "schedule"  # scheduled rotation: collected once by the predecessor's holder


class Action(StrEnum):
    CREATE = "create"
    SUSPEND = "suspend"
    RESUME = "resume"
    REVOKE = "revoke"
    ROTATE = "rotate"
    EXPIRE = "expire"
    LEAK = "leak"
    REMIND = "remind"
    UPDATE = "update"
    REHASH = "rehash"


# Which statuses each action may start from.
ALLOWED_FROM: Final[dict[Action, frozenset[Status]]] = {
    Action.SUSPEND: frozenset({Status.ACTIVE, Status.ROTATING}),
    Action.LEAK: frozenset({Status.ACTIVE, Status.ROTATING, Status.SUSPENDED}),
    Action.RESUME: frozenset({Status.SUSPENDED}),
    Action.REVOKE: LIVE,
    Action.ROTATE: frozenset({Status.ACTIVE}),
    Action.EXPIRE: LIVE,
    Action.REMIND: frozenset({Status.ACTIVE, Status.ROTATING}),
    Action.UPDATE: LIVE,
    Action.REHASH: frozenset({Status.ACTIVE, Status.ROTATING}),
}


@dataclass(frozen=True)
class Change:
    """Who changed a key, when and why: the last one rides on the item, so the stream carries it."""

    action: str
    actor: str
    at: int
    reason: str = ""


@dataclass(frozen=True)
class Signing:
    mode: str = "bearer"  # bearer | hmac | ed25519 | rsa
    secret_ciphertext: str | None = field(default=None, repr=False)  # hmac: KMS ciphertext, base64
    public_key_pem: str | None = None  # ed25519 / rsa


@dataclass(frozen=True)
class KeyRecord:
    kid: str
    owner_id: str
    env: str
    status: Status
    digest: str = field(repr=False)
    pepper_version: str
    created_at: int
    rotation_days: int
    rotate_after: int
    name: str = ""
    scopes: tuple[str, ...] = ()
    allow_cidrs: tuple[str, ...] = ()
    deny_cidrs: tuple[str, ...] = ()
    expires_at: int | None = None
    grace_until: int | None = None
    predecessor: str | None = None
    successor: str | None = None
    signing: Signing = field(default_factory=Signing)
    last_used_at: int | None = None
    metadata: dict[str, str] = field(default_factory=dict)
    version: int = 1
    suspended_from: Status | None = None
    reminded: str | None = None
    leaked_at: int | None = None
    delivery_key: str | None = None  # X25519 public key (PEM) successors are sealed to
    sealed_successor: dict[str, str] | None = field(default=None, repr=False)
    last_change: Change | None = None
    issued_by: IssuedBy | None = IssuedBy.OWNER  # None: a record from before it was kept

    @property
    def is_live(self) -> bool:
        return self.status in LIVE

    def public_view(self) -> dict[str, Any]:
        """What an operator may see: everything but the digest and signing secrets."""
        return {
            "kid": self.kid,
            "owner_id": self.owner_id,
            "name": self.name,
            "env": self.env,
            "status": str(self.status),
            "scopes": list(self.scopes),
            "allow_cidrs": list(self.allow_cidrs),
            "deny_cidrs": list(self.deny_cidrs),
            "created_at": self.created_at,
            "expires_at": self.expires_at,
            "rotation_days": self.rotation_days,
            "rotate_after": self.rotate_after,
            "grace_until": self.grace_until,
            "predecessor": self.predecessor,
            "successor": self.successor,
            "signing_mode": self.signing.mode,
            "last_used_at": self.last_used_at,
            "metadata": dict(self.metadata),
            "version": self.version,
            "leaked_at": self.leaked_at,
            "delivery_key": self.delivery_key,
            "issued_by": str(self.issued_by) if self.issued_by else None,
        }


# ---------------------------------------------------------------- validation


def validate_owner(owner_id: str) -> str:
    if not isinstance(owner_id, str) or not _OWNER_RE.match(owner_id):
        raise ValidationError("owner must be 1-128 characters of letters, digits and _.@:+-")
    return owner_id


def validate_scopes(scopes: list[str] | tuple[str, ...]) -> tuple[str, ...]:
    if len(scopes) > MAX_SCOPES:
        raise ValidationError(f"at most {MAX_SCOPES} scopes")
    for scope in scopes:
        if not isinstance(scope, str) or not _SCOPE_RE.match(scope):
            raise ValidationError(f"invalid scope {scope!r}: use letters, digits and _.:/*- (max 64)")
    return tuple(dict.fromkeys(scopes))


def network(cidr: str) -> ipaddress.IPv4Network | ipaddress.IPv6Network:
    """A CIDR as the authorizer matches it: an IPv4-mapped IPv6 network (``::ffff:a.b.c.d/n``,
    n >= 96) is the IPv4 network it maps, as a mapped source address is matched as IPv4."""
    net = ipaddress.ip_network(cidr.strip(), strict=False)
    if isinstance(net, ipaddress.IPv6Network) and net.prefixlen >= 96:
        mapped = net.network_address.ipv4_mapped
        if mapped is not None:
            return ipaddress.IPv4Network((mapped, net.prefixlen - 96))
    return net


def validate_cidrs(cidrs: list[str] | tuple[str, ...], what: str) -> tuple[str, ...]:
    if len(cidrs) > MAX_CIDRS:
        raise ValidationError(f"at most {MAX_CIDRS} {what} entries")
    out = []
    for cidr in cidrs:
        try:
            out.append(str(network(str(cidr))))
        except ValueError:
            raise ValidationError(f"invalid {what} CIDR {cidr!r}") from None
    return tuple(dict.fromkeys(out))


def validate_rotation_days(days: int) -> int:
    if (
        isinstance(days, bool)
        or not isinstance(days, int)
        or not (MIN_ROTATION_DAYS <= days <= MAX_ROTATION_DAYS)
    ):
        raise ValidationError(f"rotation days must be between {MIN_ROTATION_DAYS} and {MAX_ROTATION_DAYS}")
    return days


def validate_lifetime_days(days: int | None, max_days: int = MAX_LIFETIME_DAYS) -> int | None:
    if days is None:
        return None
    if isinstance(days, bool) or not isinstance(days, int) or not (1 <= days <= max_days):
        raise ValidationError(f"expiry must be between 1 and {max_days} days")
    return days


_DURATION_RE: Final = re.compile(r"\A([0-9]{1,7})([smhd])\Z")
_ISO_DURATION_RE: Final = re.compile(
    r"\AP(?:([0-9]{1,5})W)?(?:([0-9]{1,5})D)?(?:T(?:([0-9]{1,7})H)?(?:([0-9]{1,7})M)?(?:([0-9]{1,9})S)?)?\Z"
)
_UNIT_S: Final = {"s": 1, "m": 60, "h": 3600, "d": DAY}


def parse_duration(value: int | str) -> int:
    """Seconds in ``value``: whole seconds, ``30m``/``2h``/``7d`` (also ``90s``), or an ISO 8601
    duration in weeks, days, hours, minutes and seconds (``PT2H``, ``P7D``, ``P1DT12H``)."""
    if isinstance(value, bool):
        raise ValidationError("expiry must be a number of seconds or a duration such as 2h or PT2H")
    if isinstance(value, int):
        return value
    text = str(value).strip()
    if re.fullmatch(r"[0-9]{1,12}", text):
        return int(text)
    short = _DURATION_RE.match(text.lower())
    if short:
        return int(short.group(1)) * _UNIT_S[short.group(2)]
    iso = _ISO_DURATION_RE.match(text.upper())
    if iso and text.upper() not in ("P", "PT") and not text.upper().endswith("T"):
        weeks, days, hours, minutes, seconds = (int(g) if g else 0 for g in iso.groups())
        return (weeks * 7 + days) * DAY + hours * 3600 + minutes * 60 + seconds
    raise ValidationError(  # without the input: whatever was pasted there is not echoed back
        "expiry is not a duration: use 30m, 2h, 7d, a number of seconds, or ISO 8601 such as PT2H or P7D"
    )


def validate_lifetime_seconds(seconds: int, max_days: int = MAX_LIFETIME_DAYS) -> int:
    if isinstance(seconds, bool) or not isinstance(seconds, int) or seconds < MIN_LIFETIME_S:
        raise ValidationError("expiry must be at least a minute")
    if seconds > max_days * DAY:
        raise ValidationError(f"expiry must be at most {max_days} days")
    return seconds


def validate_metadata(metadata: dict[str, str] | None) -> dict[str, str]:
    metadata = metadata or {}
    if not isinstance(metadata, dict) or len(metadata) > MAX_METADATA:
        raise ValidationError(f"metadata must be an object of at most {MAX_METADATA} entries")
    for key, value in metadata.items():
        if not isinstance(key, str) or not _META_KEY_RE.match(key):
            raise ValidationError(f"invalid metadata key {key!r}")
        if not isinstance(value, str) or len(value) > 256:
            raise ValidationError(f"metadata value for {key!r} must be a string of at most 256 characters")
    return dict(metadata)


def validate_name(name: str) -> str:
    if not isinstance(name, str) or len(name) > 128 or not name.isprintable():
        raise ValidationError("name must be printable and at most 128 characters")
    return name


def validate_reason(reason: str, required: bool = False) -> str:
    if not isinstance(reason, str) or len(reason) > 512 or not reason.isprintable():
        raise ValidationError("reason must be printable and at most 512 characters")
    if required and not reason.strip():
        raise ValidationError("a reason is required")
    return reason.strip()


# ---------------------------------------------------------------- lifecycle


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
) -> KeyRecord:
    """A new active key. ``expires_in`` (seconds or a duration, see :func:`parse_duration`) and
    ``expires_in_days`` are two ways to say the same thing: give at most one."""
    rotation_days = validate_rotation_days(rotation_days)
    if expires_in is not None and expires_in_days is not None:
        raise ValidationError("give the expiry once: expires_in or expires_in_days, not both")
    lifetime = validate_lifetime_days(expires_in_days, max_lifetime_days)
    lifetime_s = lifetime * DAY if lifetime else None
    if expires_in is not None:
        lifetime_s = validate_lifetime_seconds(parse_duration(expires_in), max_lifetime_days)
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
    )


def check_allowed(record: KeyRecord, action: Action) -> None:
    if record.status not in ALLOWED_FROM[action]:
        raise TransitionError(record.kid, str(action), str(record.status))


def transition(record: KeyRecord, action: Action, *, now: int, actor: str, reason: str = "") -> KeyRecord:
    """The record after ``action``; raises :class:`TransitionError` when the lifecycle forbids it."""
    check_allowed(record, action)
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
    if action is Action.RESUME:
        back = record.suspended_from or Status.ACTIVE
        if back is Status.ROTATING and record.grace_until is not None and record.grace_until <= now:
            raise TransitionError(record.kid, "resume", "past its rotation grace window")
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
    """(predecessor in ``rotating``, new active successor) with scopes, IP rules and policy copied.

    The successor keeps the predecessor's absolute expiry: rotating never extends a key's life. Only
    the owner may replace a suspended key: the successor is then the owner's, and the suspended key
    stays suspended, in a grace window it may be resumed in (a false alarm) until the schedule
    expires it.
    """
    replacing = record.status is Status.SUSPENDED and issued_by is IssuedBy.OWNER
    if not replacing:
        check_allowed(record, Action.ROTATE)
    if record.successor:
        raise TransitionError(record.kid, "rotate", f"already rotated (successor {record.successor})")
    if record.expires_at is not None and record.expires_at <= now:
        raise TransitionError(record.kid, "rotate", "past its expiry")
    if issued_by is IssuedBy.HOLDER:
        check_self_rotation(record)
    if not 0 <= grace_days <= 30:
        raise ValidationError("grace days must be between 0 and 30")
    grace_until = now + grace_days * DAY
    if record.expires_at is not None:
        grace_until = min(grace_until, record.expires_at)
    successor = new_record(
        kid=successor_kid,
        owner_id=record.owner_id,
        env=record.env,
        digest=successor_digest,
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
        signing=successor_signing or record.signing,
        predecessor=record.kid,
        reason=reason,
        issued_by=issued_by,
    )
    successor = replace(successor, expires_at=record.expires_at, delivery_key=record.delivery_key)
    status: dict[str, Any] = {"status": Status.ROTATING}
    if replacing:  # stays suspended; a resume within the grace window returns it to rotating
        status = {"suspended_from": Status.ROTATING}
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
    check_allowed(record, Action.REMIND)
    return replace(
        record,
        reminded=stage,
        version=record.version + 1,
        last_change=Change(Action.REMIND, actor, now, reason or f"rotation due soon ({stage})"),
    )


def update(record: KeyRecord, *, now: int, actor: str, **changes: Any) -> KeyRecord:
    """Policy change: name, scopes, IP rules, metadata, rotation policy. Only live keys."""
    check_allowed(record, Action.UPDATE)
    fields: dict[str, Any] = {}
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


# ---------------------------------------------------------------- scheduling


def due_shard(kid: str) -> str:
    return str(zlib.crc32(kid.encode()) % DUE_SHARDS)


def pending_reminder(record: KeyRecord) -> tuple[str, int] | None:
    """The next reminder not yet sent and when it falls due, if any."""
    if record.status is Status.ACTIVE:
        done = {stage for stage, _ in REMINDER_LEADS[: _stage_index(record.reminded) + 1]}
        for stage, lead in REMINDER_LEADS:
            if stage not in done:
                return stage, record.rotate_after - lead
    if record.status is Status.ROTATING and record.grace_until is not None and record.reminded != "grace":
        return "grace", record.grace_until - GRACE_REMINDER_LEAD
    return None


def _stage_index(stage: str | None) -> int:
    for i, (name, _) in enumerate(REMINDER_LEADS):
        if name == stage:
            return i
    return -1


def next_due(record: KeyRecord) -> int | None:
    """When the schedule next has something to do with this key; None when never (terminal)."""
    if not record.is_live:
        return None
    times: list[int] = []
    if record.expires_at is not None:
        times.append(record.expires_at)
    if record.status is Status.ACTIVE:
        times.append(record.rotate_after)
    rotating = record.status is Status.ROTATING or record.suspended_from is Status.ROTATING
    if rotating and record.grace_until is not None:
        times.append(record.grace_until)
    reminder = pending_reminder(record)
    if reminder is not None:
        times.append(reminder[1])
    return min(times) if times else None
