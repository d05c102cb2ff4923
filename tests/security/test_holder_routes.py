"""Promise: a key refused for its quota still reaches its own routes on keysentry's management API
(read itself, revoke itself, rotate, collect its successor), and on no other API whose route table
maps the same paths: there the backend behind ``GET /self`` is the API owner's, and the quota holds.

The authorizer learns which API is the management API from the SSM parameter the template fills
with ``!Ref ManagementApi`` (by name: a ``!Ref`` in its own environment would be a cycle)."""

from __future__ import annotations

from typing import Any

import pytest
from keysentry.authorizer import Authorizer, ManagementApi
from keysentry.settings import AuthorizerSettings

from functions.authorizer import handler
from tests.conftest import T0, FakeClock
from tests.integration.authz_helpers import effect, event, install_authorizer
from tests.integration.usage_helpers import mark_exhausted

DAY = 86_400
PERIOD_END = T0 - T0 % DAY + DAY
OTHER_API = "a1b2c3d4e5"
HOLDER_ROUTES = [
    ("GET", "/self"),
    ("GET", "/self/usage"),
    ("POST", "/self/rotate"),
    ("POST", "/self/successor"),
    ("POST", "/self/revoke"),
]


def request_to(token: str, api: str, method: str, path: str) -> dict[str, Any]:
    doc = event("authorizer_rest_request_valid", token)
    doc["methodArn"] = f"arn:aws:execute-api:us-east-1:123456789012:{api}/dev/{method}{path}"
    doc["resource"] = doc["path"] = doc["requestContext"]["resourcePath"] = path
    doc["httpMethod"] = doc["requestContext"]["httpMethod"] = method
    doc["requestContext"].update(path=f"/dev{path}", stage="dev", apiId=api)
    return doc


def arn(api: str, method: str, path: str) -> str:
    return f"arn:aws:execute-api:us-east-1:123456789012:{api}/dev/{method}{path}"


def test_a_quota_refused_key_reaches_its_own_routes_only_on_the_management_api(
    service: Any,
    stack: Any,
    clock: FakeClock,
    authorizer_env: dict[str, str],
    lambda_context: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The template's routes (both APIs map /self) and parameter, the test's clock."""
    settings = AuthorizerSettings.from_env()
    install_authorizer(
        stack,
        clock,
        settings.route_scopes,
        monkeypatch,
        management_api=ManagementApi(settings.management_api_parameter),
    )
    management = stack.refs["ManagementApi"]
    assert management != OTHER_API
    issued = service.create(
        "acme", actor="ops", env="test", plan="free", scopes=["prices:read", "keys:rotate-self"]
    )
    mark_exhausted(stack, issued.record.kid, PERIOD_END)
    for method, path in HOLDER_ROUTES:
        response = handler.lambda_handler(request_to(issued.token, management, method, path), lambda_context)
        assert effect(response, arn(management, method, path)) == "Allow", path
        response = handler.lambda_handler(request_to(issued.token, OTHER_API, method, path), lambda_context)
        assert effect(response, arn(OTHER_API, method, path)) == "Deny", path


def test_the_template_names_the_management_api_by_a_parameter_the_authorizer_may_read(
    stack: Any, authorizer_env: dict[str, str]
) -> None:
    resources = stack.template["Resources"]
    parameter = resources["ManagementApiId"]["Properties"]
    assert parameter["Value"] == {"Ref": "ManagementApi"}
    assert authorizer_env["MANAGEMENT_API_PARAMETER"] == stack.resolve(parameter["Name"])
    statements = resources["AuthorizerFunction"]["Properties"]["Policies"][0]["Statement"]
    (grant,) = [s for s in statements if s["Action"] == "ssm:GetParameter"]
    assert stack.resolve(grant["Resource"]).endswith(
        ":parameter" + authorizer_env["MANAGEMENT_API_PARAMETER"]
    )
    assert Authorizer.from_env().management_api.api_id() == stack.refs["ManagementApi"]


def test_without_a_management_api_no_api_exempts_a_quota_refused_key() -> None:
    assert ManagementApi().api_id() == ""
    unreadable = ManagementApi("/keysentry/missing/management-api-id")
    assert not unreadable.serves(None)
