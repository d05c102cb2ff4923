"""Configuration from the environment the template (or ``keysentry local up``) sets."""

from __future__ import annotations

import os
from dataclasses import dataclass

from keysentry.errors import ConfigurationError
from keysentry.model import (
    DEFAULT_GRACE_DAYS,
    DEFAULT_ROTATION_DAYS,
    MAX_LIFETIME_DAYS,
    MAX_ROTATION_DAYS,
    MIN_ROTATION_DAYS,
)


def _int(name: str, default: int, low: int, high: int) -> int:
    raw = os.environ.get(name, "")
    if not raw:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ConfigurationError(f"{name} must be an integer") from None
    if not low <= value <= high:
        raise ConfigurationError(f"{name} must be between {low} and {high}")
    return value


@dataclass(frozen=True)
class Settings:
    keys_table: str = "keysentry-keys"
    nonce_table: str = "keysentry-nonces"
    idempotency_table: str = "keysentry-idempotency"
    pepper_secret_id: str = "keysentry/pepper"  # noqa: S105 - a secret name, not a secret
    kms_key_id: str = ""
    alerts_topic_arn: str = ""
    event_bus_name: str = ""
    grace_days: int = DEFAULT_GRACE_DAYS
    default_rotation_days: int = DEFAULT_ROTATION_DAYS
    max_lifetime_days: int = MAX_LIFETIME_DAYS
    audit_retention_days: int = 400

    @classmethod
    def from_env(cls) -> Settings:
        env = os.environ.get
        return cls(
            keys_table=env("KEYS_TABLE", cls.keys_table),
            nonce_table=env("NONCE_TABLE", cls.nonce_table),
            idempotency_table=env("IDEMPOTENCY_TABLE", cls.idempotency_table),
            pepper_secret_id=env("PEPPER_SECRET_ID", cls.pepper_secret_id),
            kms_key_id=env("KMS_KEY_ID", ""),
            alerts_topic_arn=env("ALERTS_TOPIC_ARN", ""),
            event_bus_name=env("EVENT_BUS_NAME", ""),
            grace_days=_int("GRACE_DAYS", DEFAULT_GRACE_DAYS, 0, 30),
            default_rotation_days=_int(
                "DEFAULT_ROTATION_DAYS", DEFAULT_ROTATION_DAYS, MIN_ROTATION_DAYS, MAX_ROTATION_DAYS
            ),
            max_lifetime_days=_int("MAX_LIFETIME_DAYS", MAX_LIFETIME_DAYS, 1, 3650),
            audit_retention_days=_int("AUDIT_RETENTION_DAYS", 400, 1, 3650),
        )
