"""A rule that holds a character literally (``:`` in ``/v1/keys/*:revoke``, ``@`` in ``/users/@me``)
cannot be reached through that character's escape: a backend decodes ``%3A`` to ``:``, the rules see
the raw path. Such paths are refused, by the authorizer and by the policy API Gateway caches."""

from __future__ import annotations

from typing import Any

import pytest
from keysentry.routes import RouteTable

from functions.authorizer import handler
from tests.conftest import FakeClock
from tests.integration import authz_helpers
from tests.integration.authz_helpers import iam_effect, install_authorizer

PREFIX = "arn:aws:execute-api:us-east-1:123456789012:a1b2c3d4e5/prod"
CUSTOM = (
    '{"POST /v1/keys/*:revoke": "keys:admin", "POST /v1/keys/*": "keys:write",'
    ' "GET /v1/users/@me": "users:self", "GET /v1/users/*": "users:read"}'
)


def rest(token: str, method: str, path: str, context: Any) -> dict[str, Any]:
    doc = authz_helpers.event("authorizer_rest_request_valid", token)
    doc.update(methodArn=f"{PREFIX}/{method}{path}", path=path, httpMethod=method)
    return dict(handler.lambda_handler(doc, context))


def http_allowed(token: str, method: str, path: str, context: Any) -> bool:
    doc = authz_helpers.event("authorizer_http_v2_simple", token)
    doc["routeArn"] = f"{PREFIX}/{method}{path}"
    doc["rawPath"] = path
    doc["requestContext"]["http"].update(path=path, method=method)
    return bool(handler.lambda_handler(doc, context)["isAuthorized"])


@pytest.mark.parametrize(
    ("method", "ordinary", "escaped", "scopes"),
    [
        ("POST", "/v1/keys/k1", "/v1/keys/k1%3Arevoke", ["keys:write"]),
        ("POST", "/v1/keys/k1", "/v1/keys/k1%3arevoke", ["keys:write"]),
        ("GET", "/v1/users/u1", "/v1/users/%40me", ["users:read"]),
    ],
)
def test_an_escaped_literal_never_reaches_the_narrower_route(
    method: str,
    ordinary: str,
    escaped: str,
    scopes: list[str],
    service: Any,
    stack: Any,
    clock: FakeClock,
    lambda_context: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    install_authorizer(stack, clock, CUSTOM, monkeypatch)
    token = service.create("acme", actor="ops", env="test", scopes=scopes).token
    assert not http_allowed(token, method, escaped, lambda_context)
    assert (
        iam_effect(
            rest(token, method, escaped, lambda_context)["policyDocument"], f"{PREFIX}/{method}{escaped}"
        )
        != "Allow"
    )
    cached = rest(token, method, ordinary, lambda_context)["policyDocument"]  # what the gateway keeps
    assert iam_effect(cached, f"{PREFIX}/{method}{ordinary}") == "Allow"
    assert iam_effect(cached, f"{PREFIX}/{method}{escaped}") == "Deny"


def test_the_literal_route_itself_still_needs_its_own_scope(
    service: Any, stack: Any, clock: FakeClock, lambda_context: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    install_authorizer(stack, clock, CUSTOM, monkeypatch)
    writer = service.create("acme", actor="ops", env="test", scopes=["keys:write"]).token
    admin = service.create("acme", actor="ops", env="test", scopes=["keys:admin"]).token
    assert not http_allowed(writer, "POST", "/v1/keys/k1:revoke", lambda_context)
    assert http_allowed(admin, "POST", "/v1/keys/k1:revoke", lambda_context)


def test_a_table_without_the_literal_keeps_its_escape_usable(
    service: Any, stack: Any, clock: FakeClock, lambda_context: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    install_authorizer(stack, clock, '{"GET /v1/prices/*": "prices:read"}', monkeypatch)
    token = service.create("acme", actor="ops", env="test", scopes=["prices:read"]).token
    assert http_allowed(token, "GET", "/v1/prices/BTC%3AUSD", lambda_context)
    cached = rest(token, "GET", "/v1/prices/BTC", lambda_context)["policyDocument"]
    assert iam_effect(cached, f"{PREFIX}/GET/v1/prices/BTC%3AUSD") == "Allow"


def test_the_escapes_come_from_the_rules_literals_only() -> None:
    assert RouteTable.from_json(CUSTOM).escapes == ("%3A", "%40")
    assert RouteTable.from_json('{"GET /v1/prices/*": "p", "ANY /self": ""}').escapes == ()
    assert set(RouteTable.from_json(CUSTOM).escape_globs()) == {"%3A*", "%3a*", "%40*"}
