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


# ---------------------------------------------------------------- the authorizer's settings
# Self-contained (its own readers, its own defaults): the authorizer's cold path imports this module.


def _env_number(name: str, default: float, low: float, high: float) -> float:
    raw = os.environ.get(name, "").strip()
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError:
        raise ConfigurationError(f"{name} must be a number") from None
    if not low <= value <= high:  # also refuses nan
        raise ConfigurationError(f"{name} must be between {low:g} and {high:g}")
    return value


def _env_whole(name: str, default: int, low: int, high: int) -> int:
    raw = os.environ.get(name, "").strip()
    if not raw:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ConfigurationError(f"{name} must be a whole number") from None
    if not low <= value <= high:
        raise ConfigurationError(f"{name} must be between {low} and {high}")
    return value


def _env_choice(name: str, default: str, choices: tuple[str, ...]) -> str:
    value = os.environ.get(name, "").strip().lower() or default
    if value not in choices:
        raise ConfigurationError(f"{name} must be one of: {', '.join(choices)}")
    return value


def _env_text(name: str, default: str) -> str:
    return os.environ.get(name, "").strip() or default


def _route_scopes(name: str, default: str) -> str:
    """The route table's JSON, checked whole here (its parser names the variable in its errors)."""
    from keysentry.routes import RouteTable

    text = _env_text(name, default)
    RouteTable.from_json(text)
    return text


def authorizer_http_response() -> str:
    """``AUTHORIZER_HTTP_RESPONSE``: how the authorizer answers HTTP APIs, ``simple`` or ``iam``.
    Read on its own only where the rest could not be: to answer for a failed configuration."""
    return _env_choice("AUTHORIZER_HTTP_RESPONSE", AuthorizerSettings.http_response, ("simple", "iam"))


@dataclass(frozen=True)
class AuthorizerSettings:
    """The authorizer function's configuration (the template's authorizer parameters and the
    tables it reads), validated as a whole, read once per container. Stdlib only."""

    keys_table: str = "keysentry-keys"
    nonce_table: str = ""  # only keys that sign requests claim nonces
    pepper_secret_id: str = "keysentry/pepper"  # noqa: S105 - a secret name, not a secret
    kms_key_id: str = ""
    audit_retention_days: int = 400
    route_scopes: str = "{}"  # JSON {"METHOD /path": "scope"}; an unmapped route is denied
    cache_ttl: float = 30.0  # seconds a container keeps a record: the revocation bound
    gateway_cache_ttl: float = 0.0  # API Gateway's own cache of the answers; > 0 refuses signed keys
    signature_max_age_ms: int = 5_000
    signature_max_skew_ms: int = 1_000
    http_response: str = "simple"  # HTTP APIs: "simple" or "iam" responses
    usage_identifier: bool = False  # REST: return the key as usageIdentifierKey
    test_stages: frozenset[str] = frozenset()  # the stages ks_test_ keys may call

    @classmethod
    def from_env(cls) -> AuthorizerSettings:
        """Every value from its variable (the template's bounds), or a ConfigurationError naming it."""
        return cls(
            keys_table=_env_text("KEYS_TABLE", cls.keys_table),
            nonce_table=_env_text("NONCE_TABLE", cls.nonce_table),
            pepper_secret_id=_env_text("PEPPER_SECRET_ID", cls.pepper_secret_id),
            kms_key_id=_env_text("KMS_KEY_ID", cls.kms_key_id),
            audit_retention_days=_env_whole("AUDIT_RETENTION_DAYS", cls.audit_retention_days, 1, 3650),
            route_scopes=_route_scopes("ROUTE_SCOPES", cls.route_scopes),
            cache_ttl=_env_number("AUTH_CACHE_TTL", cls.cache_ttl, 0, 300),
            gateway_cache_ttl=_env_number("GATEWAY_CACHE_TTL", cls.gateway_cache_ttl, 0, 3600),
            signature_max_age_ms=_env_whole("SIGNATURE_MAX_AGE_MS", cls.signature_max_age_ms, 1000, 60_000),
            signature_max_skew_ms=_env_whole("SIGNATURE_MAX_SKEW_MS", cls.signature_max_skew_ms, 0, 60_000),
            http_response=authorizer_http_response(),
            usage_identifier=_env_choice("USAGE_IDENTIFIER", "false", ("true", "false")) == "true",
            test_stages=frozenset(
                s.strip() for s in os.environ.get("TEST_STAGES", "").split(",") if s.strip()
            ),
        )
