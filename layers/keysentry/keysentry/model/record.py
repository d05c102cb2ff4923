"""A key's record, its statuses and actions, and every limit on what it may hold: pure Python, no I/O.

Each limit is defined here once; the management API's request models, the CLI and the validators
read them from here.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from enum import StrEnum
from typing import Any, Final, Literal, get_args

DAY: Final = 86_400
MIN_ROTATION_DAYS: Final = 30
MAX_ROTATION_DAYS: Final = 90
DEFAULT_ROTATION_DAYS: Final = 90
DEFAULT_GRACE_DAYS: Final = 7
MAX_GRACE_DAYS: Final = 30
MAX_LIFETIME_DAYS: Final = 365
LONGEST_LIFETIME_DAYS: Final = 3650  # the most MaxLifetimeDays may be set to
MIN_LIFETIME_S: Final = 60
ROTATE_SELF_SCOPE: Final = "keys:rotate-self"  # lets a key's holder mint its successor
REMINDER_LEADS: Final = (("7d", 7 * DAY), ("1d", 1 * DAY))
GRACE_REMINDER_LEAD: Final = 1 * DAY
DUE_SHARDS: Final = 8

MAX_OWNER: Final = 128
MAX_NAME: Final = 128
MAX_REASON: Final = 512
MAX_SCOPES: Final = 50
MAX_SCOPE: Final = 64
MAX_CIDRS: Final = 100
MAX_METADATA: Final = 20
MAX_METADATA_KEY: Final = 64
MAX_METADATA_VALUE: Final = 256
MAX_PAGE: Final = 1000  # the most keys or audit entries one page may hold
# Metadata entries whose key starts with this go to the authorizer's context, as they are named:
# keysentry's own context keys never start with it. At most MAX_CONTEXT_METADATA of them.
CONTEXT_METADATA_PREFIX: Final = "ctx_"
MAX_CONTEXT_METADATA: Final = 10
MAX_CONTEXT_METADATA_KEY: Final = 40  # "ctx_" and up to 36 letters, digits or "_"

SigningMode = Literal["bearer", "hmac", "ed25519", "rsa"]
SIGNING_MODES: Final[tuple[SigningMode, ...]] = get_args(SigningMode)


class Status(StrEnum):
    ACTIVE = "active"
    ROTATING = "rotating"
    SUSPENDED = "suspended"
    REVOKED = "revoked"
    EXPIRED = "expired"


_ROTATING: Final = Status.ROTATING  # a module constant: read on the authorizer's path
LIVE: Final = frozenset({Status.ACTIVE, Status.ROTATING, Status.SUSPENDED})
TERMINAL: Final = frozenset({Status.REVOKED, Status.EXPIRED})
STATUS_PATTERN: Final = f"^({'|'.join(Status)})$"  # a status as a query parameter


class Lapse(StrEnum):
    """Why a live key's time is up: the authorizer's refusal reason, the schedule's expiry. The
    stored status says so only once the schedule has written ``expired``; every reading says so at once
    (:meth:`KeyRecord.status_at`)."""

    LIFETIME = "expired"  # past expires_at: an absolute limit, whatever the status
    GRACE = "grace_ended"  # a rotated key (or one suspended while rotating) past grace_until


_LIFETIME: Final = Lapse.LIFETIME
_GRACE: Final = Lapse.GRACE


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
    mode: str = "bearer"  # one of SIGNING_MODES
    secret_ciphertext: str | None = field(default=None, repr=False)  # hmac: KMS ciphertext, base64
    public_key_pem: str | None = None  # ed25519 / rsa


@dataclass(frozen=True)
class KeySpec:
    """What an owner asks for when issuing a key: the one list of a new key's fields, from the API
    body or the command line to the service. ``rotation_days`` None: the deployment's default.
    ``expires_in`` (seconds or a duration) and ``expires_in_days`` are two ways to say the same
    thing: give at most one. ``public_key`` and ``delivery_key`` are PEM texts."""

    owner: str
    name: str = ""
    scopes: tuple[str, ...] | list[str] = ()
    allow_cidrs: tuple[str, ...] | list[str] = ()
    deny_cidrs: tuple[str, ...] | list[str] = ()
    rotation_days: int | None = None
    expires_in_days: int | None = None
    expires_in: int | str | None = None
    env: str = "live"
    metadata: dict[str, str] | None = None
    signing: str = "bearer"  # one of SIGNING_MODES
    public_key: str | None = None
    delivery_key: str | None = None
    suspend_on_anomaly: bool = False  # the usage watcher suspends the key on an anomaly
    plan: str | None = None  # a plan of the deployment's (plans.Plans); None: its default plan


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
    # opted in: the usage watcher suspends the key when its usage looks stolen ("disable it first")
    suspend_on_anomaly: bool = False
    plan: str = ""  # its plan's name (plans.Plans); "": the deployment's default plan
    # set by the usage pipeline when the key used its plan's quota: refused until then (not a lifecycle change)
    quota_exhausted_until: int | None = None
    # the first key of its rotation chain, on every successor: a quota counts the chain's requests
    # together, so rotating is no way to a fresh count (docs/plans.md); None: the key starts a chain
    meter: str | None = None

    @property
    def is_live(self) -> bool:
        return self.status in LIVE

    def lapsed(self, now: float) -> Lapse | None:
        """Whether the key's time is up at ``now``, and why: the one rule the authorizer refuses
        by, the schedule expires by and a reading shows ``expired`` by. Only for a live key."""
        expires_at = self.expires_at
        if expires_at is not None and expires_at <= now:
            return _LIFETIME
        if self.status is _ROTATING or self.suspended_from is _ROTATING:
            grace_until = self.grace_until
            if grace_until is None or grace_until <= now:
                return _GRACE
        return None

    def status_at(self, now: float) -> Status:
        """The status as read at ``now``: a live key whose time is up is ``expired`` at once, although
        its stored status changes only when the schedule writes it (the writer of record, whose
        write the stream and the alerts see)."""
        if self.status in LIVE and self.lapsed(now) is not None:
            return Status.EXPIRED
        return self.status

    def read_at(self, now: float) -> KeyRecord:
        """The record as a reading shows it at ``now`` (:meth:`status_at`); never written back."""
        status = self.status_at(now)
        return self if status is self.status else replace(self, status=status)

    def quota_refused(self, now: float) -> bool:
        """Whether the usage pipeline's quota mark refuses the key at ``now``."""
        return self.quota_exhausted_until is not None and self.quota_exhausted_until > now

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
            "suspend_on_anomaly": self.suspend_on_anomaly,
            "plan": self.plan or None,
            "quota_exhausted_until": self.quota_exhausted_until,
        }
