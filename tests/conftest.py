"""Shared fixtures: dummy credentials, moto, template.yaml's resources, a controllable clock."""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import pytest

# What the template sets for every function, before any handler module is imported.
os.environ.setdefault("POWERTOOLS_SERVICE_NAME", "keysentry")
os.environ.setdefault("POWERTOOLS_METRICS_NAMESPACE", "keysentry")
os.environ.setdefault("POWERTOOLS_TRACE_DISABLED", "true")

ROOT = Path(__file__).resolve().parents[1]
EVENTS = ROOT / "events"
T0 = 1_790_000_000  # a fixed "now" for tests: 2026-09-21T12:53:20Z


@cache
def template() -> dict[str, Any]:
    from keysentry_dev.local import load_template

    return load_template(ROOT / "template.yaml")


@pytest.fixture(autouse=True)
def aws_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """moto's advice: dummy credentials, a region, and nothing that points at a real account."""
    for name in ("AWS_PROFILE", "AWS_ENDPOINT_URL", "AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    # botocore routes ARN-addressed calls (DynamoDB Streams) to account-id endpoints moto does not serve
    monkeypatch.setenv("AWS_ACCOUNT_ID_ENDPOINT_MODE", "disabled")
    monkeypatch.setenv("POWERTOOLS_TRACE_DISABLED", "true")
    monkeypatch.setenv("POWERTOOLS_DEV", "false")


@dataclass
class FakeClock:
    now: int = T0

    def __call__(self) -> int:
        return self.now

    def advance(self, seconds: int = 0, *, days: float = 0) -> None:
        self.now += seconds + int(days * 86_400)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def moto() -> Iterator[None]:
    from keysentry import aws
    from moto import mock_aws

    with mock_aws():
        aws.reset()
        yield
    aws.reset()


@pytest.fixture
def stack(moto: None, monkeypatch: pytest.MonkeyPatch) -> Any:
    """template.yaml's stateful resources in moto, and the functions' environment pointing at them."""
    from keysentry_dev.local import provision

    created = provision(template())
    for name, value in created.function_environment().items():
        monkeypatch.setenv(name, value)
    return created


@pytest.fixture
def service(stack: Any, clock: FakeClock) -> Any:
    from keysentry.service import KeyService
    from keysentry.settings import Settings

    return KeyService.from_settings(Settings.from_env(), clock=clock)


def all_items(table: str) -> list[dict[str, Any]]:
    from keysentry import aws

    pages = aws.client("dynamodb").get_paginator("scan").paginate(TableName=table)
    return [item for page in pages for item in page["Items"]]


@pytest.fixture
def lambda_context() -> Any:
    @dataclass
    class Context:
        function_name: str = "keysentry-test"
        memory_limit_in_mb: int = 512
        invoked_function_arn: str = "arn:aws:lambda:us-east-1:123456789012:function:keysentry-test"
        aws_request_id: str = "52fdfc07-2182-154f-163f-5f0f9a621d72"

        def get_remaining_time_in_millis(self) -> int:
            return 30_000

    return Context()


__all__ = ["EVENTS", "ROOT", "T0", "FakeClock", "all_items", "os"]
