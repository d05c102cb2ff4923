"""Promises about the access log line a caller's path is written into.

API Gateway writes ``$context.path`` into the JSON access log line. A path that could break the
line if written decoded and unescaped (a quote, a backslash, a control character, in any spelling)
is refused by the authorizer. A line that breaks anyway still counts: the path is the format's last
field, so the key, its chain's meter, its source network and its status before it are read, and a
successor cannot escape its chain's quota, nor a thief the watch on new source networks.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from keysentry.authorizer import Authorizer
from keysentry.usage import DAY, HOUR, Batch

from functions.authorizer import handler
from tests.conftest import FakeClock
from tests.integration.authz_helpers import event, iam_effect, install_authorizer
from tests.integration.test_quota_chain import PLANS, SCOPES, gateway
from tests.integration.usage_helpers import access_line

__all__ = ["gateway"]  # the chain's gateway: its authorizer, access lines and usage function

PREFIX = "arn:aws:execute-api:us-east-1:123456789012:a1b2c3d4e5/prod"
BREAKING = ["%22", "%5C", "%5c", "%00", "%0A", "%0d", "%1F", "%7F", "%7f"]
assert "tiny" in PLANS


@pytest.fixture
def authorizer(stack: Any, clock: FakeClock, monkeypatch: pytest.MonkeyPatch) -> Authorizer:
    return install_authorizer(stack, clock, '{"GET /v1/prices/*": "prices:read"}', monkeypatch)


def request(shape: str, token: str, path: str) -> dict[str, Any]:
    if shape == "rest":
        doc = event("authorizer_rest_request_valid", token)
        doc["path"], doc["methodArn"] = path, f"{PREFIX}/GET{path}"
        return doc
    doc = event("authorizer_http_v2_simple", token)
    doc["rawPath"] = doc["requestContext"]["http"]["path"] = path
    doc["routeArn"] = f"{PREFIX}/GET{path}"
    return doc


@pytest.mark.parametrize("shape", ["rest", "http"])
@pytest.mark.parametrize("escape", BREAKING)
def test_a_path_whose_escape_could_break_the_log_line_is_refused(
    service: Any,
    authorizer: Authorizer,
    lambda_context: Any,
    capfd: pytest.CaptureFixture[str],
    shape: str,
    escape: str,
) -> None:
    issued = service.create("acme", actor="ops", env="test", scopes=["prices:read"])
    path = f"/v1/prices/A{escape}B"
    response = handler.lambda_handler(request(shape, issued.token, path), lambda_context)
    if shape == "http":
        assert response == {"isAuthorized": False}
    else:
        assert iam_effect(response["policyDocument"], f"{PREFIX}/GET{path}") == "Deny"
    assert '"reason":"path_not_canonical"' in capfd.readouterr().out


def test_a_cached_allow_denies_the_escapes_too(
    service: Any, authorizer: Authorizer, lambda_context: Any
) -> None:
    issued = service.create("acme", actor="ops", env="test", scopes=["prices:read"])
    document = handler.lambda_handler(request("rest", issued.token, "/v1/prices/BTC"), lambda_context)[
        "policyDocument"
    ]
    for escape in BREAKING:
        assert iam_effect(document, f"{PREFIX}/GET/v1/prices/A{escape}B") == "Deny", escape


def broken(line: str) -> str:
    """The line as a gateway that writes the path unescaped would: a quote in it breaks the JSON."""
    doc = json.loads(line)
    doc["path"] = '/dev/v1/prices/A":"B'
    text = json.dumps(doc, separators=(",", ":")).replace('A\\":\\"B', 'A":"B')
    with pytest.raises(ValueError):
        json.loads(text)
    return text


def test_a_broken_line_still_counts_toward_its_chain_network_and_status() -> None:
    at_ms = 1_795_824_000_000
    batch = Batch()
    line = access_line("successor012", at_ms, ip="198.51.100.9", status=200, meter="firstkey0001")
    batch.add_access_line(broken(line), at_ms)
    assert batch.unreadable == 1
    hour = batch.keys[("successor012", at_ms // 1000 // HOUR * HOUR)]
    assert hour.requests == 1
    assert dict(hour.networks) == {"198.51.100.0/24": 1}  # a new network is seen, and watched
    assert dict(hour.by_status) == {"2xx": 1}
    assert batch.chained == {("firstkey0001", at_ms // 1000 // DAY * DAY): 1}  # the chain's quota


def test_a_successor_cannot_escape_its_chains_quota_with_lines_that_break(
    gateway: Any, service: Any, clock: FakeClock
) -> None:
    first = service.create("acme", actor="ops", plan="tiny", scopes=SCOPES)  # 10 a day
    assert [gateway(first.token, n) for n in range(6)] == [None] * 6
    gateway.deliver()
    second = service.rotate_self(first.record.kid)
    assert [gateway(second.token, 100 + n) for n in range(6)] == [None] * 6
    gateway.pending[:] = [(t, broken(text)) for t, text in gateway.pending]  # every line breaks
    gateway.deliver()
    assert gateway(second.token, 200) == "quota_exceeded"
    assert gateway(first.token, 201) == "quota_exceeded"


@pytest.mark.parametrize("blank", [" ", "\t", "  ", "\n", " \r\n"])
def test_a_path_that_names_fields_again_with_blanks_before_their_colons_forges_nothing(blank: str) -> None:
    """JSON allows blanks between a name and its colon, and keeps the last of a name given twice:
    a refused request whose unescaped path appends ``"keyId" : "<another key>"`` (and a meter, an
    address and a status) must not count as that key's request, nor spend its chain's quota."""
    at_ms = 1_795_824_000_000
    forged = "".join(
        f'", "{name}"{blank}:{blank}"{value}'
        for name, value in (
            ("keyId", "victimkey001"),
            ("meter", "victimkey001"),
            ("sourceIp", "203.0.113.9"),
            ("status", "200"),
        )
    )
    doc = json.loads(access_line(None, at_ms, ip="198.51.100.7", status=403, meter="-"))
    doc["path"] = "@PATH@"
    line = json.dumps(doc, separators=(",", ":")).replace("@PATH@", f"/dev/v1/x{forged}")
    assert json.loads(line)["keyId"] == "victimkey001"  # valid JSON, the forged names win
    batch = Batch()
    batch.add_access_line(line, at_ms)
    assert batch.unreadable == 1
    assert not any(kid == "victimkey001" for kid, _ in batch.keys)
    assert not batch.chained
