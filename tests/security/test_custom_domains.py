"""Promises about requests that come through a custom domain instead of the API's execute-api host.

An HTTP API's named stage leads ``rawPath`` on its execute-api host (``/v1/admin/users`` on stage
``v1`` arrives as ``/v1/v1/admin/users``), and the authorizer takes it off. Through a custom domain
the API mapping names the stage and the path does not hold it: a first segment that spells the
stage is the caller's own path, decided as sent. A REST API's request path keeps a custom domain's
base path, its ARN does not: the Allow names the ARN asked about, which API Gateway matches.
"""

from __future__ import annotations

from typing import Any

import pytest
from keysentry.authorizer import Authorizer

from functions.authorizer import handler
from tests.conftest import FakeClock
from tests.integration.authz_helpers import event, iam_effect, install_authorizer

API = "a1b2c3d4e5"
STAGE = "v1"
PREFIX = f"arn:aws:execute-api:us-east-1:123456789012:{API}/{STAGE}"
ROUTES = '{"ANY /v1/admin/*": "admin", "ANY /*": ""}'
EXECUTE_API_HOSTS = [
    f"{API}.execute-api.us-east-1.amazonaws.com",
    f"{API}.execute-api.cn-north-1.amazonaws.com.cn",
]
CUSTOM_DOMAIN = "api.example.com"


@pytest.fixture
def authorizer(stack: Any, clock: FakeClock, monkeypatch: pytest.MonkeyPatch) -> Authorizer:
    return install_authorizer(stack, clock, ROUTES, monkeypatch)


def http_request(token: str, host: str, raw_path: str, route_path: str, name: str) -> dict[str, Any]:
    """An HTTP API request for ``route_path`` (the API's own route) on stage v1, through ``host``."""
    doc = event(name, token)
    doc["routeArn"] = f"{PREFIX}/GET{route_path}"
    doc["rawPath"] = doc["requestContext"]["http"]["path"] = raw_path
    doc["requestContext"]["stage"] = STAGE
    doc["requestContext"]["domainName"] = doc["headers"]["host"] = host
    doc["requestContext"]["domainPrefix"] = host.split(".")[0]
    return doc


def http_allowed(response: dict[str, Any], route_path: str) -> bool:
    if "isAuthorized" in response:
        return bool(response["isAuthorized"])
    return iam_effect(response["policyDocument"], f"{PREFIX}/GET{route_path}") == "Allow"


@pytest.mark.parametrize("name", ["authorizer_http_v2_simple", "authorizer_http_v2_iam"])
def test_a_path_behind_a_custom_domain_keeps_a_first_segment_that_spells_the_stage(
    service: Any, authorizer: Authorizer, lambda_context: Any, name: str
) -> None:
    """Stage v1 behind api.example.com: /v1/admin/users is the admin route, not /admin/users."""
    authorizer.http_response = "iam" if name.endswith("iam") else "simple"
    issued = service.create("acme", actor="ops", env="test", scopes=["prices:read"])
    admin = "/v1/admin/users"
    through_domain = http_request(issued.token, CUSTOM_DOMAIN, admin, admin, name)
    assert not http_allowed(handler.lambda_handler(through_domain, lambda_context), admin)
    public = "/v1/public/BTC"  # the catch-all still serves the rest of the domain's paths
    through_domain = http_request(issued.token, CUSTOM_DOMAIN, public, public, name)
    assert http_allowed(handler.lambda_handler(through_domain, lambda_context), public)


@pytest.mark.parametrize("host", EXECUTE_API_HOSTS)
def test_the_execute_api_host_still_has_its_stage_taken_off(
    service: Any, authorizer: Authorizer, lambda_context: Any, host: str
) -> None:
    issued = service.create("acme", actor="ops", env="test", scopes=["prices:read"])
    admin = "/v1/admin/users"
    doc = http_request(issued.token, host, f"/{STAGE}{admin}", admin, "authorizer_http_v2_simple")
    assert handler.lambda_handler(doc, lambda_context) == {"isAuthorized": False}
    admin_key = service.create("acme", actor="ops", env="test", scopes=["admin"])
    doc = http_request(admin_key.token, host, f"/{STAGE}{admin}", admin, "authorizer_http_v2_simple")
    assert handler.lambda_handler(doc, lambda_context)["isAuthorized"] is True


def rest_through_custom_domain(token: str, base_path: str, resource_path: str) -> dict[str, Any]:
    """A REST request through api.example.com, whose base path mapping ``base_path`` names stage v1:
    the event's path keeps the base path, the method ARN names the API's own resource path."""
    doc = event("authorizer_rest_request_valid", token)
    doc["methodArn"] = f"{PREFIX}/GET{resource_path}"
    doc["path"] = doc["requestContext"]["path"] = base_path + resource_path
    doc["requestContext"]["stage"] = STAGE
    doc["requestContext"]["domainName"] = CUSTOM_DOMAIN
    doc["headers"]["Host"] = doc["multiValueHeaders"]["Host"][0] = CUSTOM_DOMAIN
    return doc


def test_a_rest_allow_behind_a_base_path_mapping_is_the_one_the_execute_api_host_gets(
    service: Any, stack: Any, clock: FakeClock, monkeypatch: pytest.MonkeyPatch, lambda_context: Any
) -> None:
    """RouteScopes names the API's own resource paths, which the method ARN carries through any
    entry point: behind the base path /orders the same policy is answered as through execute-api,
    and API Gateway's cached copy decides every route as the authorizer would."""
    install_authorizer(stack, clock, '{"GET /v1/prices/*": "prices:read"}', monkeypatch)
    issued = service.create("acme", actor="ops", env="test", scopes=["prices:read"])
    mapped = handler.lambda_handler(
        rest_through_custom_domain(issued.token, "/orders", "/v1/prices/BTC"), lambda_context
    )
    direct = handler.lambda_handler(
        rest_through_custom_domain(issued.token, "", "/v1/prices/BTC"), lambda_context
    )
    assert mapped["policyDocument"] == direct["policyDocument"]
    assert iam_effect(mapped["policyDocument"], f"{PREFIX}/GET/v1/prices/ETH") == "Allow"
    assert iam_effect(mapped["policyDocument"], f"{PREFIX}/GET/v1/admin/users") == "Deny"


@pytest.mark.parametrize("base_path", ["", "/x", "/v1", "/orders"])
def test_a_rest_resource_is_decided_the_same_through_every_base_path(
    base_path: str, service: Any, authorizer: Authorizer, lambda_context: Any
) -> None:
    """The admin resource is the admin rule's whatever the URL it came through: a base path
    mapping cannot make it the catch-all's (nor /v1 + /admin/users the admin rule's)."""
    issued = service.create("acme", actor="ops", env="test", scopes=["prices:read"])
    admin = handler.lambda_handler(
        rest_through_custom_domain(issued.token, base_path, "/v1/admin/users"), lambda_context
    )
    assert iam_effect(admin["policyDocument"], f"{PREFIX}/GET/v1/admin/users") == "Deny"
    other = handler.lambda_handler(
        rest_through_custom_domain(issued.token, base_path, "/admin/users"), lambda_context
    )
    assert iam_effect(other["policyDocument"], f"{PREFIX}/GET/admin/users") == "Allow"
