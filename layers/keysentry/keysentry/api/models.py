"""Request bodies of the management API (pydantic, validated by the Powertools resolver).

Every limit is the domain's own (:mod:`keysentry.model`); the domain checks them again, for the CLI.
"""

from __future__ import annotations

from keysentry.keyformat import Env
from keysentry.model import (
    LONGEST_LIFETIME_DAYS,
    MAX_CIDRS,
    MAX_GRACE_DAYS,
    MAX_METADATA,
    MAX_NAME,
    MAX_OWNER,
    MAX_REASON,
    MAX_ROTATION_DAYS,
    MAX_SCOPES,
    MIN_ROTATION_DAYS,
    SigningMode,
)
from keysentry.plans import PLAN_NAME
from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictInt, StrictStr

MAX_PUBLIC_KEY_PEM = 8192
MAX_DELIVERY_KEY_PEM = 4096
SUSPEND_ON_ANOMALY = (
    "Suspend the key when its usage spikes, it is used from a new network or its refusals spike "
    "(docs/anomalies.md); false: only alert"
)
PLAN = (
    "One of the deployment's plans (the Plans parameter, docs/plans.md); at issue, absent: the default plan"
)
PLAN_PATTERN = f"^{PLAN_NAME.pattern}$"


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class CreateKey(_Body):  # a keysentry.model.KeySpec, field for field (a docstring would enter the OpenAPI)
    owner: str = Field(min_length=1, max_length=MAX_OWNER, description="The consumer the key belongs to")
    name: str = Field(default="", max_length=MAX_NAME)
    scopes: list[str] = Field(default_factory=list, max_length=MAX_SCOPES)
    allow_cidrs: list[str] = Field(default_factory=list, max_length=MAX_CIDRS)
    deny_cidrs: list[str] = Field(default_factory=list, max_length=MAX_CIDRS)
    rotation_days: int | None = Field(default=None, ge=MIN_ROTATION_DAYS, le=MAX_ROTATION_DAYS)
    expires_in_days: int | None = Field(default=None, ge=1, le=LONGEST_LIFETIME_DAYS)
    expires_in: StrictInt | StrictStr | None = Field(  # strict: `true` is not one second
        default=None,
        description=(
            "Lifetime: seconds, a short duration (30m, 2h, 7d) or an ISO 8601 duration (PT30M, PT2H, "
            "P7D); at least a minute, at most MaxLifetimeDays. Instead of expires_in_days."
        ),
        examples=[7200, "2h", "PT2H", "P7D"],
    )
    env: Env = "live"
    metadata: dict[str, str] = Field(default_factory=dict, max_length=MAX_METADATA)
    signing: SigningMode = "bearer"
    public_key: str | None = Field(
        default=None, max_length=MAX_PUBLIC_KEY_PEM, description="PEM, for ed25519/rsa"
    )
    delivery_key: str | None = Field(
        default=None, max_length=MAX_DELIVERY_KEY_PEM, description="X25519 PEM successors are sealed to"
    )
    suspend_on_anomaly: StrictBool = Field(default=False, description=SUSPEND_ON_ANOMALY)
    plan: str | None = Field(default=None, max_length=32, pattern=PLAN_PATTERN, description=PLAN)


class UpdateKey(_Body):
    name: str | None = Field(default=None, max_length=MAX_NAME)
    scopes: list[str] | None = Field(default=None, max_length=MAX_SCOPES)
    allow_cidrs: list[str] | None = Field(default=None, max_length=MAX_CIDRS)
    deny_cidrs: list[str] | None = Field(default=None, max_length=MAX_CIDRS)
    metadata: dict[str, str] | None = Field(default=None, max_length=MAX_METADATA)
    rotation_days: int | None = Field(default=None, ge=MIN_ROTATION_DAYS, le=MAX_ROTATION_DAYS)
    public_key: str | None = Field(default=None, max_length=MAX_PUBLIC_KEY_PEM)
    delivery_key: str | None = Field(default=None, max_length=MAX_DELIVERY_KEY_PEM)
    suspend_on_anomaly: StrictBool | None = Field(default=None, description=SUSPEND_ON_ANOMALY)
    plan: str | None = Field(default=None, max_length=32, pattern=PLAN_PATTERN, description=PLAN)


class Reason(_Body):
    reason: str = Field(default="", max_length=MAX_REASON)


class RequiredReason(_Body):
    reason: str = Field(min_length=1, max_length=MAX_REASON)


class Rotate(_Body):
    reason: str = Field(default="", max_length=MAX_REASON)
    grace_days: int | None = Field(default=None, ge=0, le=MAX_GRACE_DAYS)
