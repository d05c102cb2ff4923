"""examples/backend/app.py, the examples' own backend (it has no keysentry layer): a rotating caller
gets the notice keysentry's client follows, and a signed request's body must be the one signed."""

from __future__ import annotations

import base64
import importlib.util
import json
from types import ModuleType
from typing import Any

import pytest
from keysentry import keyformat
from keysentry.client import parse_notice, rotation_headers, sign

from tests.conftest import ROOT


def load_app() -> ModuleType:
    spec = importlib.util.spec_from_file_location(
        "example_backend_app", ROOT / "examples" / "backend" / "app.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


app = load_app()
KEY = keyformat.generate()
SUCCESSOR = keyformat.new_kid()
SECRET = "s" * 43


def invoke(context: dict[str, Any], shape: str, body: bytes | None = None, **headers: str) -> dict[str, Any]:
    """The handler's answer to a request API Gateway passed with the authorizer's ``context``."""
    text, is_base64 = (None, False) if body is None else (base64.b64encode(body).decode(), True)
    if shape == "rest":  # REST passes every context value as a string
        authorizer: dict[str, Any] = {k: str(v) for k, v in context.items()}
        request = {"httpMethod": "POST", "resource": "/v1/items"}
    else:
        authorizer, request = {"lambda": context}, {"routeKey": "POST /v1/items"}
    event = {**request, "headers": headers, "body": text, "isBase64Encoded": is_base64}
    result: dict[str, Any] = app.lambda_handler({**event, "requestContext": {"authorizer": authorizer}}, None)
    return result


def rotating(**extra: Any) -> dict[str, Any]:
    return {
        "key_id": KEY.kid,
        "status": "rotating",
        "successor": SUCCESSOR,
        "rotate_in_seconds": 3600,
        **extra,
    }


@pytest.mark.parametrize("shape", ["rest", "http"])
def test_a_rotating_caller_gets_the_notice_the_client_follows(shape: str) -> None:
    answer = invoke(rotating(), shape)

    notice = parse_notice(answer["headers"].get("Keysentry-Rotate"))
    assert answer["statusCode"] == 200
    assert notice is not None and (notice.key, notice.successor, notice.seconds) == (KEY.kid, SUCCESSOR, 3600)
    assert answer["headers"]["Keysentry-Rotate"] == rotation_headers(rotating())["Keysentry-Rotate"]
    assert KEY.token not in json.dumps(answer)


@pytest.mark.parametrize(
    "context",
    [
        {"key_id": KEY.kid, "status": "active"},
        rotating(successor=""),
        rotating(rotate_in_seconds="soon"),
        rotating(successor=KEY.kid),
    ],
)
def test_no_notice_unless_the_key_is_rotating_towards_a_successor(context: dict[str, Any]) -> None:
    assert "Keysentry-Rotate" not in invoke(context, "rest")["headers"]
    assert parse_notice(rotation_headers(context).get("Keysentry-Rotate")) is None  # as keysentry reads it


@pytest.mark.parametrize("shape", ["rest", "http"])
def test_a_signed_body_is_served_only_when_it_is_the_body_signed(shape: str) -> None:
    body = json.dumps({"name": "widget"}).encode()
    headers = sign(
        "POST", "/v1/items", None, body, key=KEY.token, secret=SECRET, content_type="application/json"
    )
    signed = {"key_id": KEY.kid, "status": "active", "signing": "hmac"}

    served = invoke(signed, shape, body, **headers)
    altered = invoke(signed, shape, body.replace(b"widget", b"gadget"), **headers)
    unsigned_digest = invoke(signed, shape, body)

    assert served["statusCode"] == 200
    assert altered["statusCode"] == unsigned_digest["statusCode"] == 400
    assert "X-Ks-Content-Sha256" in json.loads(altered["body"])["message"]


def test_a_signed_request_without_a_body_matches_the_empty_digest() -> None:
    headers = sign("GET", "/v1/items", None, None, key=KEY.token, secret=SECRET)
    assert invoke({"signing": "ed25519"}, "http", None, **headers)["statusCode"] == 200


def test_a_bearer_key_has_no_digest_to_check() -> None:
    assert invoke({"key_id": KEY.kid, "signing": "bearer"}, "rest", b"anything")["statusCode"] == 200
