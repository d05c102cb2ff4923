"""`keysentry local up --gateway`: the sample API and /self over HTTP, through the real authorizer,
backend and usage function named by template.yaml, with Python alone (no Docker)."""

from __future__ import annotations

import json
import os
import urllib.error
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest
from keysentry.service import KeyService

from tests.conftest import ROOT


def call(url: str, key: str | None = None, method: str = "GET") -> tuple[int, dict[str, Any]]:
    request = urllib.request.Request(url, method=method, headers={"X-Api-Key": key} if key else {})  # noqa: S310
    try:
        with urllib.request.urlopen(request, timeout=30) as answer:  # noqa: S310 - a local http URL
            return answer.status, json.loads(answer.read() or b"{}")
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read() or b"{}")


@pytest.fixture
def environ() -> Iterator[None]:
    """The gateway sets the functions' environment in the process, as Lambda would: put it back."""
    saved = dict(os.environ)
    yield
    os.environ.clear()
    os.environ.update(saved)


@pytest.fixture(params=["rest", "http"])
def gateway_url(request: pytest.FixtureRequest, stack: Any, environ: None) -> Iterator[str]:
    from keysentry_dev.gateway import LocalGateway, serve

    with serve(LocalGateway(stack, ROOT, request.param)) as url:
        yield url


def test_a_key_is_served_refused_and_counted(gateway_url: str, request: pytest.FixtureRequest) -> None:
    # Given a test key that may read prices
    service = KeyService.from_settings()
    issued = service.create("acme", actor="test", scopes=["prices:read"], env="test")

    # When it calls the gateway, in and out of its scope, and without a key
    status, body = call(f"{gateway_url}/v1/prices/ACME", issued.token)
    assert status == 200, body
    assert body["caller"]["key_id"] == issued.record.kid and body["caller"]["owner_id"] == "acme"
    assert call(f"{gateway_url}/v1/prices/ACME")[0] == 401
    mistyped = issued.token[:-1] + ("x" if issued.token[-1] != "x" else "y")
    assert call(f"{gateway_url}/v1/prices/ACME", mistyped)[0] == (401 if "rest" in request.node.name else 403)
    assert call(f"{gateway_url}/v1/orders", issued.token, "POST")[0] == 403
    assert call(f"{gateway_url}/nowhere", issued.token)[0] == (403 if "rest" in request.node.name else 404)
    status, me = call(f"{gateway_url}/self", issued.token)
    assert status == 200 and me["kid"] == issued.record.kid

    # Then the requests the backend answered are in the key's usage, as the access logs count them,
    # and its refusal as the authorizer's log counts it
    usage = service.usage(issued.record.kid)
    assert usage["requests"] == 1
    assert usage["by_status"] == {"2xx": 1}
    assert usage["refusals"] == {"scope_missing": 1}


def test_the_gateway_answers_as_api_gateway_does_for_its_kind(stack: Any, environ: None) -> None:
    from keysentry_dev.gateway import LocalGateway, serve

    issued = KeyService.from_settings().create("acme", actor="test", scopes=["prices:read"], env="test")
    for api, unknown, forbidden in (
        (
            "rest",
            (403, {"message": "Missing Authentication Token"}),
            "User is not authorized to access this resource",
        ),
        ("http", (404, {"message": "Not Found"}), "Forbidden"),
    ):
        with serve(LocalGateway(stack, ROOT, api)) as url:
            assert call(f"{url}/nowhere", issued.token) == unknown
            assert call(f"{url}/v1/orders", issued.token, "POST") == (403, {"message": forbidden})
