"""A remembered decision answers only the request it was made for: the same token, method and path
are not enough when the ARN API Gateway asks about differs (its path is checked for canonical form)."""

from __future__ import annotations

from typing import Any

import pytest

from functions.authorizer import handler
from tests.conftest import FakeClock
from tests.integration import authz_helpers
from tests.integration.authz_helpers import iam_effect, install_authorizer

PREFIX = "arn:aws:execute-api:us-east-1:123456789012:a1b2c3d4e5/prod"


def http_event(token: str, path: str, arn_path: str) -> dict[str, Any]:
    doc = authz_helpers.event("authorizer_http_v2_simple", token)
    doc["routeArn"] = f"{PREFIX}/GET{arn_path}"
    doc["rawPath"] = path
    doc["requestContext"]["http"]["path"] = path
    doc["requestContext"]["http"]["method"] = "GET"
    return doc


def rest_event(token: str, path: str, arn_path: str) -> dict[str, Any]:
    doc = authz_helpers.event("authorizer_rest_request_valid", token)
    doc["methodArn"] = f"{PREFIX}/GET{arn_path}"
    doc["path"] = path
    doc["httpMethod"] = "GET"
    return doc


def test_a_warm_container_refuses_a_non_canonical_route_arn_as_a_cold_one_does(
    service: Any, stack: Any, clock: FakeClock, lambda_context: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    install_authorizer(
        stack, clock, '{"GET /v1/prices/*": "prices:read"}', monkeypatch, monotonic=lambda: 1000.0
    )
    token = service.create("acme", actor="ops", env="test", scopes=["prices:read"]).token
    odd = "/v1/prices/..%2Fadmin"
    assert handler.lambda_handler(http_event(token, "/v1/prices/BTC", odd), lambda_context) == {
        "isAuthorized": False
    }
    assert handler.lambda_handler(http_event(token, "/v1/prices/BTC", "/v1/prices/BTC"), lambda_context)[
        "isAuthorized"
    ]
    assert handler.lambda_handler(http_event(token, "/v1/prices/BTC", odd), lambda_context) == {
        "isAuthorized": False
    }


def test_a_remembered_allow_never_names_an_arn_the_authorizer_refuses(
    service: Any, stack: Any, clock: FakeClock, lambda_context: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    # No Allow/Deny list is exact for this table: the Allow names the one ARN asked about.
    routes = '{"GET /v1/*/public": "", "GET /v1/admin/*": "admin", "GET /v1/*": "prices:read"}'
    authorizer = install_authorizer(stack, clock, routes, monkeypatch, monotonic=lambda: 1000.0)
    assert not authorizer.routes.policy_for(("prices:read",)).exact
    token = service.create("acme", actor="ops", env="test", scopes=["prices:read"]).token
    odd = "/v1/prices/..%2Fadmin%2Fusers"
    for _ in range(2):  # cold, then after the ordinary request warmed the memo
        answer = handler.lambda_handler(rest_event(token, "/v1/prices", odd), lambda_context)
        assert iam_effect(answer["policyDocument"], f"{PREFIX}/GET{odd}") == "Deny"
        ordinary = handler.lambda_handler(rest_event(token, "/v1/prices", "/v1/prices"), lambda_context)
        assert iam_effect(ordinary["policyDocument"], f"{PREFIX}/GET/v1/prices") == "Allow"
