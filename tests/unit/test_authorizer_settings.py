"""AuthorizerSettings: defaults written once, every variable validated, errors naming it."""

from __future__ import annotations

import subprocess
import sys

import pytest
from keysentry.errors import ConfigurationError
from keysentry.settings import AuthorizerSettings

from tests.conftest import ROOT

VARIABLES = (
    "KEYS_TABLE",
    "NONCE_TABLE",
    "PEPPER_SECRET_ID",
    "KMS_KEY_ID",
    "AUDIT_RETENTION_DAYS",
    "ROUTE_SCOPES",
    "AUTH_CACHE_TTL",
    "GATEWAY_CACHE_TTL",
    "SIGNATURE_MAX_AGE_MS",
    "SIGNATURE_MAX_SKEW_MS",
    "AUTHORIZER_HTTP_RESPONSE",
    "USAGE_IDENTIFIER",
    "TEST_STAGES",
)


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in VARIABLES:
        monkeypatch.delenv(name, raising=False)


def test_an_empty_environment_gives_the_defaults() -> None:
    assert AuthorizerSettings.from_env() == AuthorizerSettings()


def test_every_variable_is_read(monkeypatch: pytest.MonkeyPatch) -> None:
    values = {
        "KEYS_TABLE": "keys",
        "NONCE_TABLE": "nonces",
        "PEPPER_SECRET_ID": "pepper",
        "KMS_KEY_ID": "alias/k",
        "AUDIT_RETENTION_DAYS": "30",
        "ROUTE_SCOPES": '{"GET /v1/*": "read"}',
        "AUTH_CACHE_TTL": "12.5",
        "GATEWAY_CACHE_TTL": "60",
        "SIGNATURE_MAX_AGE_MS": "2000",
        "SIGNATURE_MAX_SKEW_MS": "0",
        "AUTHORIZER_HTTP_RESPONSE": "iam",
        "USAGE_IDENTIFIER": "True",
        "TEST_STAGES": "dev, test,,",
    }
    for name, value in values.items():
        monkeypatch.setenv(name, value)

    assert AuthorizerSettings.from_env() == AuthorizerSettings(
        keys_table="keys",
        nonce_table="nonces",
        pepper_secret_id="pepper",
        kms_key_id="alias/k",
        audit_retention_days=30,
        route_scopes='{"GET /v1/*": "read"}',
        cache_ttl=12.5,
        gateway_cache_ttl=60.0,
        signature_max_age_ms=2000,
        signature_max_skew_ms=0,
        http_response="iam",
        usage_identifier=True,
        test_stages=frozenset({"dev", "test"}),
    )


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("AUTH_CACHE_TTL", "thirty"),
        ("AUTH_CACHE_TTL", "-1"),
        ("AUTH_CACHE_TTL", "301"),
        ("AUTH_CACHE_TTL", "nan"),
        ("GATEWAY_CACHE_TTL", "3601"),
        ("SIGNATURE_MAX_AGE_MS", "5000.5"),
        ("SIGNATURE_MAX_AGE_MS", "999"),
        ("SIGNATURE_MAX_SKEW_MS", "60001"),
        ("AUDIT_RETENTION_DAYS", "0"),
        ("AUTHORIZER_HTTP_RESPONSE", "simpel"),
        ("USAGE_IDENTIFIER", "yes"),
        ("ROUTE_SCOPES", "{not json"),
        ("ROUTE_SCOPES", '{"FETCH /x": ""}'),
    ],
)
def test_a_wrong_value_is_a_configuration_error_naming_its_variable(
    monkeypatch: pytest.MonkeyPatch, name: str, value: str
) -> None:
    monkeypatch.setenv(name, value)

    with pytest.raises(ConfigurationError, match=name):
        AuthorizerSettings.from_env()


def test_the_settings_module_imports_nothing_but_the_standard_library_and_keysentry() -> None:
    code = "import sys, keysentry.settings; print(' '.join(sorted({m.split('.')[0] for m in sys.modules})))"
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)  # noqa: S603

    assert not set(done.stdout.split()) & {
        "boto3",
        "botocore",
        "pydantic",
        "cryptography",
        "aws_lambda_powertools",
    }
