"""Settings: the defaults, every check, and template.yaml setting exactly what the functions read."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest
from keysentry import settings
from keysentry.authorizer import Authorizer
from keysentry.errors import ConfigurationError
from keysentry.settings import (
    AlertsSettings,
    ApiSettings,
    CacheFlushSettings,
    EnvSettings,
    PlansSyncSettings,
    RotationSettings,
    ScanningKeysSettings,
    Settings,
    UsageSettings,
)
from keysentry_dev.template import load_template

ROOT = Path(__file__).resolve().parents[2]

# What each function's handler reads its configuration through.
FUNCTIONS: dict[str, Any] = {
    "ApiFunction": ApiSettings,
    "RotationFunction": RotationSettings,
    "AlertsFunction": AlertsSettings,
    "AuthorizerCacheFlushFunction": CacheFlushSettings,
    "ScanningKeysFunction": ScanningKeysSettings,
    "AuthorizerFunction": getattr(settings, "AuthorizerSettings", Authorizer),
    "SampleBackendFunction": None,  # reads nothing of keysentry's
    "UsageFunction": UsageSettings,
    "PlansSyncFunction": PlansSyncSettings,
}
# Read by the libraries, not by keysentry: Powertools' logger and metrics, botocore's endpoint.
LIBRARY_VARIABLES = {
    "POWERTOOLS_SERVICE_NAME",
    "POWERTOOLS_METRICS_NAMESPACE",
    "POWERTOOLS_LOG_LEVEL",
    "AWS_ENDPOINT_URL",
}


class _Recorder(dict[str, str]):
    """An empty environment that notes every name asked for."""

    def __init__(self) -> None:
        super().__init__()
        self.asked: set[str] = set()

    def get(self, name: str, default: Any = None) -> Any:
        self.asked.add(name)
        return default

    def __getitem__(self, name: str) -> str:
        self.asked.add(name)
        raise KeyError(name)

    def __contains__(self, name: object) -> bool:
        self.asked.add(str(name))
        return False


def reads(cls: Any) -> set[str]:
    if isinstance(cls, type) and issubclass(cls, EnvSettings):
        return set(cls.variables())
    recorder = _Recorder()  # one that reads os.environ itself: note what it asks for
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(os, "environ", recorder)
        cls.from_env()
    return recorder.asked


@pytest.fixture
def template() -> dict[str, Any]:
    return load_template(ROOT / "template.yaml")


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    for cls in (ApiSettings, AlertsSettings, ScanningKeysSettings):
        for name in cls.variables():
            monkeypatch.delenv(name, raising=False)
    return monkeypatch


def _variables(props: dict[str, Any]) -> set[str]:
    return set(((props.get("Environment") or {}).get("Variables") or {}).keys())


# ---------------------------------------------------------------- defaults


def test_unset_variables_take_the_defaults(clean_env: pytest.MonkeyPatch) -> None:
    assert ApiSettings.from_env() == ApiSettings() == ApiSettings(service=Settings())
    service = Settings.from_env()
    assert (service.keys_table, service.nonce_table, service.idempotency_table) == (
        "keysentry-keys",
        "keysentry-nonces",
        "keysentry-idempotency",
    )
    assert (service.grace_days, service.default_rotation_days, service.max_lifetime_days) == (7, 90, 365)
    assert (service.audit_retention_days, service.pepper_max_age_seconds) == (400, 300)
    alerts = AlertsSettings.from_env()
    assert (alerts.auth_cache_ttl, alerts.flush.flush_authorizer_cache, alerts.reflush_queue_url) == (
        30,
        "",
        "",
    )
    assert CacheFlushSettings.from_env().flush_authorizer_cache == ""


def test_an_empty_variable_is_an_unset_one(clean_env: pytest.MonkeyPatch) -> None:
    clean_env.setenv("GRACE_DAYS", "")
    clean_env.setenv("AUTH_CACHE_TTL", "")
    assert Settings.from_env().grace_days == 7
    assert AlertsSettings.from_env().auth_cache_ttl == 30


def test_values_are_read_and_typed(clean_env: pytest.MonkeyPatch) -> None:
    clean_env.setenv("KEYS_TABLE", "k")
    clean_env.setenv("GRACE_DAYS", "0")
    clean_env.setenv("AUTH_CACHE_TTL", "12.5")
    clean_env.setenv("FLUSH_AUTHORIZER_CACHE", "a1b2c3d4e5/prod")
    clean_env.setenv("GITHUB_SCANNING_KEYS_PARAMETER", "/ks/github")
    assert ApiSettings.from_env().service.keys_table == "k"
    assert ApiSettings.from_env().github_scanning_keys_parameter == "/ks/github"
    assert Settings.from_env().grace_days == 0
    alerts = AlertsSettings.from_env()
    assert (alerts.auth_cache_ttl, alerts.flush.flush_authorizer_cache) == (12.5, "a1b2c3d4e5/prod")
    scanning = ScanningKeysSettings.from_env()
    assert (scanning.parameter, scanning.url) == (
        "/ks/github",
        "https://api.github.com/meta/public_keys/secret_scanning",
    )


def test_load_reads_once_per_container_and_again_only_after_a_change(clean_env: pytest.MonkeyPatch) -> None:
    first = AlertsSettings.load()
    assert AlertsSettings.load() is first
    clean_env.setenv("AUTH_CACHE_TTL", "5")
    assert AlertsSettings.load().auth_cache_ttl == 5
    assert CacheFlushSettings.load() is CacheFlushSettings.load()


# ---------------------------------------------------------------- checks

INVALID = [
    ("GRACE_DAYS", "seven", "GRACE_DAYS must be an integer"),
    ("GRACE_DAYS", "31", "GRACE_DAYS must be between 0 and 30"),
    ("DEFAULT_ROTATION_DAYS", "29", "DEFAULT_ROTATION_DAYS must be between 30 and 90"),
    ("MAX_LIFETIME_DAYS", "0", "MAX_LIFETIME_DAYS must be between 1 and 3650"),
    ("AUDIT_RETENTION_DAYS", "1.5", "AUDIT_RETENTION_DAYS must be an integer"),
    ("PEPPER_MAX_AGE_SECONDS", "3601", "PEPPER_MAX_AGE_SECONDS must be between 1 and 3600"),
    ("AUTH_CACHE_TTL", "soon", "AUTH_CACHE_TTL must be a number"),
    ("AUTH_CACHE_TTL", "301", "AUTH_CACHE_TTL must be between 0 and 300"),
    ("AUTH_CACHE_TTL", "nan", "AUTH_CACHE_TTL must be between 0 and 300"),
    ("FLUSH_AUTHORIZER_CACHE", "prod", "FLUSH_AUTHORIZER_CACHE must be restApiId/stage"),
    ("ALERTS_TOPIC_ARN", "alerts", "ALERTS_TOPIC_ARN must be an SNS topic ARN"),
    ("EVENT_BUS_NAME", "a bus", "EVENT_BUS_NAME must be an EventBridge bus name or ARN"),
    (
        "AUTHORIZER_CACHE_FLUSH_QUEUE_URL",
        "queue",
        "AUTHORIZER_CACHE_FLUSH_QUEUE_URL must be an SQS queue URL",
    ),
    ("GITHUB_SCANNING_KEYS_URL", "ftp://x/y", "GITHUB_SCANNING_KEYS_URL must be an http(s) URL"),
]


@pytest.mark.parametrize(("name", "raw", "message"), INVALID, ids=[f"{n}={r}" for n, r, _ in INVALID])
def test_a_bad_value_is_a_configuration_error_naming_the_variable(
    clean_env: pytest.MonkeyPatch, name: str, raw: str, message: str
) -> None:
    clean_env.setenv(name, raw)
    clean_env.setenv("GITHUB_SCANNING_KEYS_PARAMETER", "/ks/github")  # required by the refresh
    owner = next(c for c in (ApiSettings, AlertsSettings, ScanningKeysSettings) if name in c.variables())
    with pytest.raises(ConfigurationError) as raised:
        owner.load()
    assert str(raised.value) == message


def test_the_refresh_needs_its_parameter(clean_env: pytest.MonkeyPatch) -> None:
    with pytest.raises(ConfigurationError, match=r"^GITHUB_SCANNING_KEYS_PARAMETER is not set$"):
        ScanningKeysSettings.from_env()


# ---------------------------------------------------------------- template.yaml


def test_every_function_has_its_settings(template: dict[str, Any]) -> None:
    functions = {
        name for name, r in template["Resources"].items() if r["Type"] == "AWS::Serverless::Function"
    }
    assert functions == set(FUNCTIONS)


def test_every_variable_the_template_sets_is_read(template: dict[str, Any]) -> None:
    read_somewhere: set[str] = set(LIBRARY_VARIABLES)
    for logical, cls in FUNCTIONS.items():
        own = _variables(template["Resources"][logical]["Properties"])
        if cls is None:
            assert not own, f"{logical} sets {own} but reads no settings"
            continue
        read = reads(cls)
        assert own <= read, f"{logical} sets {sorted(own - read)}, which nothing in it reads"
        read_somewhere |= read
    globals_ = _variables(template["Globals"]["Function"])
    assert globals_ <= read_somewhere, f"Globals set {sorted(globals_ - read_somewhere)}, read by nobody"


def test_every_variable_a_function_reads_is_set_by_the_template(template: dict[str, Any]) -> None:
    globals_ = _variables(template["Globals"]["Function"])
    for logical, cls in FUNCTIONS.items():
        if cls is None:
            continue
        given = globals_ | _variables(template["Resources"][logical]["Properties"])
        missing = reads(cls) - given
        assert not missing, f"{logical} reads {sorted(missing)}, which the template never sets"
