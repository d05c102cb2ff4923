"""Request bodies of the management API (pydantic, validated by the Powertools resolver)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, StrictInt, StrictStr


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class CreateKey(_Body):
    owner: str = Field(min_length=1, max_length=128, description="The consumer the key belongs to")
    name: str = Field(default="", max_length=128)
    scopes: list[str] = Field(default_factory=list, max_length=50)
    allow_cidrs: list[str] = Field(default_factory=list, max_length=100)
    deny_cidrs: list[str] = Field(default_factory=list, max_length=100)
    rotation_days: int | None = Field(default=None, ge=30, le=90)
    expires_in_days: int | None = Field(default=None, ge=1, le=3650)
    expires_in: StrictInt | StrictStr | None = Field(  # strict: `true` is not one second
        default=None,
        description=(
            "Lifetime: seconds, a short duration (30m, 2h, 7d) or an ISO 8601 duration (PT30M, PT2H, "
            "P7D); at least a minute, at most MaxLifetimeDays. Instead of expires_in_days."
        ),
        examples=[7200, "2h", "PT2H", "P7D"],
    )
    env: Literal["live", "test"] = "live"
    metadata: dict[str, str] = Field(default_factory=dict, max_length=20)
    signing: Literal["bearer", "hmac", "ed25519", "rsa"] = "bearer"
    public_key: str | None = Field(default=None, max_length=8192, description="PEM, for ed25519/rsa")
    delivery_key: str | None = Field(
        default=None, max_length=4096, description="X25519 PEM successors are sealed to"
    )


class UpdateKey(_Body):
    name: str | None = Field(default=None, max_length=128)
    scopes: list[str] | None = Field(default=None, max_length=50)
    allow_cidrs: list[str] | None = Field(default=None, max_length=100)
    deny_cidrs: list[str] | None = Field(default=None, max_length=100)
    metadata: dict[str, str] | None = Field(default=None, max_length=20)
    rotation_days: int | None = Field(default=None, ge=30, le=90)
    public_key: str | None = Field(default=None, max_length=8192)
    delivery_key: str | None = Field(default=None, max_length=4096)


class Reason(_Body):
    reason: str = Field(default="", max_length=512)


class RequiredReason(_Body):
    reason: str = Field(min_length=1, max_length=512)


class Rotate(_Body):
    reason: str = Field(default="", max_length=512)
    grace_days: int | None = Field(default=None, ge=0, le=30)
