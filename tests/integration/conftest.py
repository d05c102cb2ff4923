"""Every integration test is watched for plaintext keys: none may reach a table or a log line."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from keysentry import keyformat

from tests.conftest import all_items


def plaintext_found(tokens: list[str], stack: Any, log_lines: list[str]) -> list[str]:
    """Where the secret part of any of ``tokens`` appears: each table's items, and the log lines."""
    secrets_issued = [
        t[-(keyformat.SECRET_LEN + keyformat.CHECKSUM_LEN) : -keyformat.CHECKSUM_LEN] for t in tokens
    ]
    tables = [
        stack.refs[name] for name, res in stack.template["Resources"].items() if res["Type"].endswith("Table")
    ]
    stored = {table: json.dumps(all_items(table)) for table in tables}
    logs = "\n".join(log_lines)
    found = [table for secret in secrets_issued for table, text in stored.items() if secret in text]
    return found + ["logs" for secret in secrets_issued if secret in logs]


@pytest.fixture(autouse=True)
def leak_guard(
    stack: Any,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    capfd: pytest.CaptureFixture[str],
) -> Iterator[list[str]]:
    """Record every token minted during the test; afterwards scan every table and log for it."""
    minted: list[str] = []
    real_generate = keyformat.generate

    def recording_generate(env: str = "live", kid: str | None = None) -> keyformat.ParsedKey:
        parsed = real_generate(env, kid)
        minted.append(parsed.token)
        return parsed

    monkeypatch.setattr(keyformat, "generate", recording_generate)
    yield minted

    out, err = capfd.readouterr()
    log_lines = (
        [r.getMessage() for r in caplog.records]
        + [line for line in (out + err).splitlines() if line.startswith("{") and '"level"' in line]
        + err.splitlines()
    )
    leaks = plaintext_found(minted, stack, log_lines)
    assert not leaks, f"plaintext keys found in: {', '.join(sorted(set(leaks)))}"


@pytest.fixture
def api_service(service: Any, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """The management API uses the test's service (and its clock); its idempotency layer is per test."""
    from keysentry.api import context

    context.persistence.cache_clear()
    monkeypatch.setattr(context, "service", lambda: service)
    yield service
    context.persistence.cache_clear()
