"""Every integration test is watched for plaintext keys: none may reach a table or a log line."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from keysentry import keyformat

from tests.conftest import all_items


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

    secrets_issued = [
        t[-(keyformat.SECRET_LEN + keyformat.CHECKSUM_LEN) : -keyformat.CHECKSUM_LEN] for t in minted
    ]
    tables = [
        stack.refs[name] for name, res in stack.template["Resources"].items() if res["Type"].endswith("Table")
    ]
    stored = json.dumps([all_items(t) for t in tables])
    out, err = capfd.readouterr()
    log_lines = (
        [r.getMessage() for r in caplog.records]
        + [line for line in (out + err).splitlines() if line.startswith("{") and '"level"' in line]
        + err.splitlines()
    )
    logs = "\n".join(log_lines)
    for secret in secrets_issued:
        assert secret not in stored, "a plaintext key reached a table"
        assert secret not in logs, "a plaintext key reached a log line"
