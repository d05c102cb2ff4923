"""Configuration: one typed settings object per function, from the environment template.yaml sets.

Every variable is declared once below, as a :class:`Var`: its name, its default and its check. A
function's settings class picks the variables it reads; classes share them by naming the same
``Var`` (and :class:`Settings`, the key service's, by composition). A value that fails its check
raises :class:`ConfigurationError` naming the variable, when the settings are first loaded.

``Cls.load()`` parses and checks once per container: Lambda's environment never changes, so later
calls compare the raw strings and hand back the same object (a test that changes a variable gets
fresh settings). Standard library only: the authorizer imports this module on its cold path.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, ClassVar, Generic, Self, TypeVar

from keysentry.errors import ConfigurationError, ValidationError
from keysentry.model import (
    DEFAULT_GRACE_DAYS,
    DEFAULT_ROTATION_DAYS,
    LONGEST_LIFETIME_DAYS,
    MAX_GRACE_DAYS,
    MAX_LIFETIME_DAYS,
    MAX_ROTATION_DAYS,
    MIN_ROTATION_DAYS,
)
from keysentry.plans import DEFAULT_PLAN, DEFAULT_PLANS, Plans

T = TypeVar("T")
Parse = Callable[[str, str], T]  # (variable name, raw value) -> value, or ConfigurationError


# ---------------------------------------------------------------- checks


def text(name: str, raw: str) -> str:
    return raw


def integer(low: int, high: int) -> Parse[int]:
    def parse(name: str, raw: str) -> int:
        try:
            value = int(raw)
        except ValueError:
            raise ConfigurationError(f"{name} must be an integer") from None
        if not low <= value <= high:
            raise ConfigurationError(f"{name} must be between {low} and {high}")
        return value

    return parse


def number(low: float, high: float) -> Parse[float]:
    def parse(name: str, raw: str) -> float:
        try:
            value = float(raw)
        except ValueError:
            raise ConfigurationError(f"{name} must be a number") from None
        if not low <= value <= high:  # also refuses nan
            raise ConfigurationError(f"{name} must be between {low:g} and {high:g}")
        return value

    return parse


def matching(pattern: str, what: str) -> Parse[str]:
    compiled = re.compile(pattern)

    def parse(name: str, raw: str) -> str:
        if not compiled.fullmatch(raw):
            raise ConfigurationError(f"{name} must be {what}")
        return raw

    return parse


def choice(*options: str) -> Parse[str]:
    def parse(name: str, raw: str) -> str:
        value = raw.strip().lower()
        if value not in options:
            raise ConfigurationError(f"{name} must be one of: {', '.join(options)}")
        return value

    return parse


def boolean(name: str, raw: str) -> bool:
    return choice("true", "false")(name, raw) == "true"


def names(name: str, raw: str) -> frozenset[str]:
    """A comma-separated list of names (blanks ignored)."""
    return frozenset(part.strip() for part in raw.split(",") if part.strip())


def test_stages(name: str, raw: str) -> frozenset[str]:
    """Stage names and ``apiId/stage`` entries, comma-separated (blanks ignored)."""
    entries = names(name, raw)
    if bad := [e for e in entries if not re.fullmatch(r"(?:[a-z0-9]{10}/)?[A-Za-z0-9_$-]{1,128}", e)]:
        raise ConfigurationError(f"{name}: {bad[0]!r} is neither a stage name nor apiId/stage")
    return entries


def plans_json(name: str, raw: str) -> str:
    """The plans' JSON, checked whole here against its own default (its parser says what is wrong)."""
    try:
        document = json.loads(raw)
    except ValueError:
        raise ConfigurationError(f"{name} must be a JSON object of plan name to plan") from None
    if not isinstance(document, dict) or not document:
        raise ConfigurationError(f"{name} must be a JSON object of plan name to plan")
    try:
        Plans.from_json(raw, next(iter(document)))
    except ValidationError as error:
        raise ConfigurationError(f"{name}: {error}") from None
    return raw


def route_scopes(name: str, raw: str) -> str:
    """The route table's JSON, checked whole here (its parser says what is wrong)."""
    from keysentry.routes import RouteTable

    RouteTable.from_json(raw)
    return raw


@dataclass(frozen=True)
class Var(Generic[T]):
    """One environment variable: its name, the value when it is unset or empty, and its check."""

    name: str
    default: T
    parse: Parse[T]
    required: bool = False  # unset or empty is a ConfigurationError, not the default

    def read(self, environ: Mapping[str, str] | None = None) -> T:
        raw = (os.environ if environ is None else environ).get(self.name, "")
        if not raw:
            if self.required:
                raise ConfigurationError(f"{self.name} is not set")
            return self.default
        return self.parse(self.name, raw)

    def field(self) -> T:
        """A settings class's field that reads this variable (its default is the variable's)."""
        value: T = dataclasses.field(default=self.default, metadata={"var": self})
        return value


# ---------------------------------------------------------------- the variables

KEYS_TABLE = Var("KEYS_TABLE", "keysentry-keys", text)
NONCE_TABLE = Var("NONCE_TABLE", "keysentry-nonces", text)
IDEMPOTENCY_TABLE = Var("IDEMPOTENCY_TABLE", "keysentry-idempotency", text)
USAGE_TABLE = Var("USAGE_TABLE", "keysentry-usage", text)
PLANS = Var("PLANS", DEFAULT_PLANS, plans_json)
# The authorizer's log group: the only one whose lines are read as its decisions (others: access logs).
# Empty: every subscribed group's lines are told apart by their shape (a hand-run function, tests).
AUTHORIZER_LOG_GROUP = Var("AUTHORIZER_LOG_GROUP", "", text)
DEFAULT_PLAN_VAR = Var("DEFAULT_PLAN", DEFAULT_PLAN, matching(r"[a-z0-9][a-z0-9_-]{0,31}", "a plan name"))
PEPPER_SECRET_ID = Var("PEPPER_SECRET_ID", "keysentry/pepper", text)
PEPPER_MAX_AGE_SECONDS = Var("PEPPER_MAX_AGE_SECONDS", 300, integer(1, 3600))
KMS_KEY_ID = Var("KMS_KEY_ID", "", text)
GRACE_DAYS = Var("GRACE_DAYS", DEFAULT_GRACE_DAYS, integer(0, MAX_GRACE_DAYS))
DEFAULT_ROTATION_DAYS_VAR = Var(
    "DEFAULT_ROTATION_DAYS", DEFAULT_ROTATION_DAYS, integer(MIN_ROTATION_DAYS, MAX_ROTATION_DAYS)
)
MAX_LIFETIME_DAYS_VAR = Var("MAX_LIFETIME_DAYS", MAX_LIFETIME_DAYS, integer(1, LONGEST_LIFETIME_DAYS))
AUDIT_RETENTION_DAYS = Var("AUDIT_RETENTION_DAYS", 400, integer(1, 3650))
ALERTS_TOPIC_ARN = Var(
    "ALERTS_TOPIC_ARN", "", matching(r"arn:[\w-]+:sns:[\w-]+:\d{12}:[\w-]+", "an SNS topic ARN")
)
EVENT_BUS_NAME = Var("EVENT_BUS_NAME", "", matching(r"[\w.\-/:]{1,1600}", "an EventBridge bus name or ARN"))
# "restApiId/stage" (the template's AllowedPattern); empty: no flush
FLUSH_AUTHORIZER_CACHE = Var(
    "FLUSH_AUTHORIZER_CACHE", "", matching(r"[a-z0-9]{10}/[A-Za-z0-9_-]{1,128}", "restApiId/stage")
)
AUTH_CACHE_TTL = Var("AUTH_CACHE_TTL", 30.0, number(0, 300))
AUTHORIZER_CACHE_FLUSH_QUEUE_URL = Var(
    "AUTHORIZER_CACHE_FLUSH_QUEUE_URL", "", matching(r"https?://\S+", "an SQS queue URL")
)
ROUTE_SCOPES = Var("ROUTE_SCOPES", "{}", route_scopes)  # {"METHOD /path": "scope"}; unmapped: denied
GATEWAY_CACHE_TTL = Var("GATEWAY_CACHE_TTL", 0.0, number(0, 3600))
SIGNATURE_MAX_AGE_MS = Var("SIGNATURE_MAX_AGE_MS", 5_000, integer(1_000, 60_000))
SIGNATURE_MAX_SKEW_MS = Var("SIGNATURE_MAX_SKEW_MS", 1_000, integer(0, 60_000))
AUTHORIZER_HTTP_RESPONSE = Var("AUTHORIZER_HTTP_RESPONSE", "simple", choice("simple", "iam"))
USAGE_IDENTIFIER = Var("USAGE_IDENTIFIER", False, boolean)
TEST_STAGES = Var("TEST_STAGES", frozenset[str](), test_stages)
# The SSM parameter holding the management API's id (empty: no API is the management API)
MANAGEMENT_API_PARAMETER = Var("MANAGEMENT_API_PARAMETER", "", text)
GITHUB_SCANNING_KEYS_PARAMETER = Var("GITHUB_SCANNING_KEYS_PARAMETER", "", text)
GITHUB_SCANNING_KEYS_URL = Var(
    "GITHUB_SCANNING_KEYS_URL",
    "https://api.github.com/meta/public_keys/secret_scanning",
    matching(r"https?://[^\s/]+/\S*", "an http(s) URL"),
)
STAGE = Var("STAGE", "dev", matching(r"[a-z0-9-]{1,16}", "a stage name"))
USAGE_PLAN_STAGES = Var(
    "USAGE_PLAN_STAGES",
    "",
    matching(
        r"([a-z0-9]{10}:[A-Za-z0-9_-]{1,128}(,[a-z0-9]{10}:[A-Za-z0-9_-]{1,128})*)?", "restApiId:stage pairs"
    ),
)


# ---------------------------------------------------------------- settings objects


class EnvSettings:
    """A frozen dataclass whose fields are :class:`Var` fields, or other settings classes composed
    with ``dataclasses.field(default_factory=OtherSettings)``."""

    _loaded: ClassVar[dict[type, tuple[tuple[str, ...], Any]]] = {}

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Self:
        """Read and check every variable now (ConfigurationError names the first that fails)."""
        values: dict[str, Any] = {}
        for f in dataclasses.fields(cls):  # type: ignore[arg-type]
            if "var" in f.metadata:
                values[f.name] = f.metadata["var"].read(environ)
            else:  # composed: another settings object, read with its owner
                values[f.name] = _composed(f).from_env(environ)
        return cls(**values)

    @classmethod
    def load(cls) -> Self:
        """The settings, parsed and checked once per container (again only if a variable changed)."""
        raw = tuple(os.environ.get(name, "") for name in sorted(cls.variables()))
        hit = EnvSettings._loaded.get(cls)
        if hit is not None and hit[0] == raw:
            settings: Self = hit[1]
            return settings
        settings = cls.from_env()
        EnvSettings._loaded[cls] = (raw, settings)
        return settings

    @classmethod
    def variables(cls) -> frozenset[str]:
        """Every environment variable these settings read."""
        names: set[str] = set()
        for f in dataclasses.fields(cls):  # type: ignore[arg-type]
            if "var" in f.metadata:
                names.add(f.metadata["var"].name)
            else:
                names |= _composed(f).variables()
        return frozenset(names)


def _composed(f: dataclasses.Field[Any]) -> type[EnvSettings]:
    factory = f.default_factory
    if not (isinstance(factory, type) and issubclass(factory, EnvSettings)):
        raise TypeError(f"{f.name}: a settings field is a Var's field() or another settings class")
    return factory


class WithPlans:
    """Settings that read the deployment's plans: checked whole when the settings load (the default
    must be one of them), so a wrong ``PLANS`` is a ConfigurationError at a container's start."""

    plans_json: str
    default_plan: str

    def __post_init__(self) -> None:
        self.plans()

    def plans(self) -> Plans:
        return _plans(self.plans_json, self.default_plan)


@dataclass(frozen=True)
class Settings(WithPlans, EnvSettings):
    """The key service's: tables, pepper, KMS key, lifecycle defaults (API, rotation, CLI, demo)."""

    keys_table: str = KEYS_TABLE.field()
    nonce_table: str = NONCE_TABLE.field()
    idempotency_table: str = IDEMPOTENCY_TABLE.field()
    usage_table: str = USAGE_TABLE.field()  # per-key counters (read; the usage function writes)
    plans_json: str = PLANS.field()  # the plans a key may be on (plans.Plans)
    default_plan: str = DEFAULT_PLAN_VAR.field()  # a key without a plan is on it
    pepper_secret_id: str = PEPPER_SECRET_ID.field()
    pepper_max_age_seconds: int = PEPPER_MAX_AGE_SECONDS.field()
    kms_key_id: str = KMS_KEY_ID.field()
    grace_days: int = GRACE_DAYS.field()
    default_rotation_days: int = DEFAULT_ROTATION_DAYS_VAR.field()
    max_lifetime_days: int = MAX_LIFETIME_DAYS_VAR.field()
    audit_retention_days: int = AUDIT_RETENTION_DAYS.field()


@dataclass(frozen=True)
class ApiSettings(EnvSettings):
    """The management API: the key service, and where GitHub's scanning keys are kept (SSM)."""

    service: Settings = dataclasses.field(default_factory=Settings)
    github_scanning_keys_parameter: str = GITHUB_SCANNING_KEYS_PARAMETER.field()  # empty: reports refused


@dataclass(frozen=True)
class RotationSettings(EnvSettings):
    """The scheduled rotation run: the key service."""

    service: Settings = dataclasses.field(default_factory=Settings)


@dataclass(frozen=True)
class CacheFlushSettings(EnvSettings):
    """The second flush of the REST stage's authorizer cache (and the alerts function's first)."""

    flush_authorizer_cache: str = FLUSH_AUTHORIZER_CACHE.field()  # "restApiId/stage"; empty: none


@dataclass(frozen=True)
class AlertsSettings(EnvSettings):
    """The keys table's stream -> SNS and EventBridge, de-duplicated, with the stage's cache flushes."""

    alerts_topic_arn: str = ALERTS_TOPIC_ARN.field()
    event_bus_name: str = EVENT_BUS_NAME.field()
    idempotency_table: str = IDEMPOTENCY_TABLE.field()
    flush: CacheFlushSettings = dataclasses.field(default_factory=CacheFlushSettings)
    auth_cache_ttl: float = AUTH_CACHE_TTL.field()  # the authorizer containers' TTL: the reflush delay
    reflush_queue_url: str = AUTHORIZER_CACHE_FLUSH_QUEUE_URL.field()  # empty: no second flush


@dataclass(frozen=True)
class UsageSettings(EnvSettings):
    """Access and decision log lines -> the usage table; anomalies -> SNS and EventBridge, and the
    key service for the keys that opted in to suspension."""

    service: Settings = dataclasses.field(default_factory=Settings)
    alerts_topic_arn: str = ALERTS_TOPIC_ARN.field()
    event_bus_name: str = EVENT_BUS_NAME.field()
    authorizer_log_group: str = AUTHORIZER_LOG_GROUP.field()


@dataclass(frozen=True)
class ScanningKeysSettings(EnvSettings):
    """The refresh of GitHub's secret scanning public keys into SSM."""

    parameter: str = dataclasses.field(
        default="", metadata={"var": dataclasses.replace(GITHUB_SCANNING_KEYS_PARAMETER, required=True)}
    )
    url: str = GITHUB_SCANNING_KEYS_URL.field()


@dataclass(frozen=True)
class AuthorizerSettings(WithPlans, EnvSettings):
    """The authorizer: the tables it reads, its caches, the signature window, how it answers."""

    keys_table: str = KEYS_TABLE.field()
    nonce_table: str = NONCE_TABLE.field()  # only keys that sign requests claim nonces
    pepper_secret_id: str = PEPPER_SECRET_ID.field()
    pepper_max_age_seconds: int = PEPPER_MAX_AGE_SECONDS.field()
    kms_key_id: str = KMS_KEY_ID.field()
    audit_retention_days: int = AUDIT_RETENTION_DAYS.field()  # the re-hash under a new pepper is audited
    route_scopes: str = ROUTE_SCOPES.field()
    cache_ttl: float = AUTH_CACHE_TTL.field()  # seconds a container keeps a record: the revocation bound
    gateway_cache_ttl: float = GATEWAY_CACHE_TTL.field()  # API Gateway's own cache; > 0 refuses signed keys
    signature_max_age_ms: int = SIGNATURE_MAX_AGE_MS.field()
    signature_max_skew_ms: int = SIGNATURE_MAX_SKEW_MS.field()
    http_response: str = AUTHORIZER_HTTP_RESPONSE.field()  # HTTP APIs: "simple" or "iam" responses
    usage_identifier: bool = USAGE_IDENTIFIER.field()  # REST: return plans.usage_identifier(kid)
    test_stages: frozenset[str] = TEST_STAGES.field()  # the stages ks_test_ keys may call
    management_api_parameter: str = MANAGEMENT_API_PARAMETER.field()  # read once, when first needed
    default_plan: str = DEFAULT_PLAN_VAR.field()  # the context's plan for a key without one
    plans_json: str = PLANS.field()  # which plans have a quota (their keys' context names their chain)


@dataclass(frozen=True)
class PlansSyncSettings(WithPlans, EnvSettings):
    """REST usage plans from the plans (at deploy), and each key's API key from the keys table's stream."""

    keys_table: str = KEYS_TABLE.field()  # each record is brought to the key's state there
    plans_json: str = PLANS.field()
    default_plan: str = DEFAULT_PLAN_VAR.field()
    stage: str = STAGE.field()  # usage plans are named keysentry-<stage>-<plan>
    usage_plan_stages: str = USAGE_PLAN_STAGES.field()  # "restApiId:stage,...": the metered REST stages


def authorizer_http_response() -> str:
    """How the authorizer answers HTTP APIs, read on its own only where the rest of its settings
    could not be: to answer a request in the right shape when its configuration is wrong."""
    return AUTHORIZER_HTTP_RESPONSE.read()


@functools.lru_cache(maxsize=8)
def _plans(raw: str, default: str) -> Plans:
    """The plans, parsed once per document; PLANS was checked alone when read, so what can still be
    wrong is the default: not one of them."""
    try:
        return Plans.from_json(raw, default)
    except ValidationError as error:
        raise ConfigurationError(f"DEFAULT_PLAN: {error}") from None
