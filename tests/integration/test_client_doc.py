"""docs/client.md's example runs as written: against the local stack, with a key that
the schedule has just rotated, it succeeds and leaves the successor in its key file."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest
import requests
from keysentry import keyformat

from tests.conftest import ROOT, FakeClock
from tests.integration.client_helpers import API, MANAGE, GatewayAdapter, LocalGateway, install_authorizer


def documented_snippet() -> str:
    text = (ROOT / "docs" / "client.md").read_text()
    section = text[: text.index("\n## ")]
    return section[section.index("```python\n") + len("```python\n") : section.index("```\n\n")]


def test_the_documented_consumer_code_follows_a_rotation(
    service: Any,
    api_service: Any,
    stack: Any,
    clock: FakeClock,
    lambda_context: Any,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    # The snippet signs with the real time: so does the stack here.
    clock.now = int(time.time())
    install_authorizer(stack, time.time, monkeypatch)
    gateway = LocalGateway("rest", lambda_context)
    monkeypatch.setattr(
        requests.adapters.HTTPAdapter,
        "send",
        lambda adapter, request, **kw: GatewayAdapter(gateway).send(request),
    )
    issued = service.create("acme", actor="ops", scopes=["prices:read", "orders:write"], signing="hmac")
    successor = service.rotate_record(service.get(issued.record.kid), actor="schedule", deliver=True)
    key_file = tmp_path / "key.json"
    key_file.write_text(json.dumps({"key": issued.token, "signing_secret": issued.signing_secret}))
    monkeypatch.setenv("KEYSENTRY_KEY_FILE", str(key_file))
    monkeypatch.setenv("KEYSENTRY_MANAGEMENT_URL", MANAGE)
    monkeypatch.setenv("PRICES_API_URL", API)

    exec(compile(documented_snippet(), "docs/client.md", "exec"), {"__name__": "client_doc"})  # noqa: S102

    saved = json.loads(key_file.read_text())
    assert keyformat.parse(saved["key"]).kid == successor.record.kid
    assert saved["signing_secret"] and saved["signing_secret"] != issued.signing_secret
    assert [(call.path, call.kid, call.status) for call in gateway.calls] == [
        ("/v1/prices/BTC", issued.record.kid, 200),
        ("/self/successor", issued.record.kid, 200),
        ("/v1/orders", successor.record.kid, 200),
    ]
    assert key_file.stat().st_mode & 0o077 == 0
