"""Promises about paths that match one route rule but reach another route.

An HTTP API hands the authorizer the raw path; a backend or proxy may decode it, fold dot segments,
read a backslash as a slash or stop at a NUL. A path that the rules read as /v1/prices/* must not
reach /admin. The authorizer refuses such paths before matching any rule, in every event shape.
"""

from __future__ import annotations

import posixpath
import re
import unicodedata
from typing import Any
from urllib.parse import unquote

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from keysentry.authorizer import Authorizer, Unauthorized, path_is_canonical
from keysentry.peppers import PepperSource
from keysentry.routes import RouteTable
from keysentry.store import KeyStore

from functions.authorizer import handler
from tests.conftest import FakeClock
from tests.integration import authz_helpers

PREFIX = "arn:aws:execute-api:us-east-1:123456789012:a1b2c3d4e5/prod"
ROUTES = '{"GET /v1/prices/*": "prices:read", "ANY /v1/public/*": ""}'

ESCAPES = [
    "/v1/prices/../admin/users",
    "/v1/prices/./../admin",
    "/v1/prices/..",
    "/v1/prices/..%2Fadmin/users",
    "/v1/prices/..%2fadmin",
    "/v1/prices/%2e%2e/admin/users",
    "/v1/prices/%2E%2E%2Fadmin",
    "/v1/prices/.%2e/admin",
    "/v1/prices/%252e%252e/admin",  # decoded twice
    "/v1/prices/..\\admin",
    "/v1/prices/..%5Cadmin",
    "/v1/prices/BTC%00/../../admin",
    "/v1/prices/BTC\x00",
    "/v1/prices/..;/admin",  # some servers drop ";..." from a segment
    "/v1/prices/%C0%AE%C0%AE/admin",  # overlong UTF-8 dots
    "/v1/prices/\uff0e\uff0e/admin",  # fullwidth dots fold to ".." under NFKC
    "/v1/prices/x\uff0fadmin",  # fullwidth solidus
    "/v1/prices//admin",
    "/v1/prices/%61dmin",  # an encoded letter: a decoder sees another path than the rules did
    "/v1/prices/*",  # a wildcard in an execute-api ARN
    "/v1/prices/%u002e%u002e/admin",  # IIS and .NET decode %u
    "/v1/prices/BTC%+0",  # Java's URLDecoder parses "+0" as hex: NUL
    "/v1/prices/%%32%65%%32%65/admin",  # decoded twice
    "/v1/prices/%0",  # a lenient decoder reads one hex digit: a NUL
]
PLAIN = ["/v1/prices/BTC", "/v1/prices/BTC.json", "/v1/prices/a%20b", "/v1/prices/caf%C3%A9", "/v1/prices/"]
PLAIN += ["/v1/prices/%", "/v1/prices/%zz", "/v1/prices/%a.b", "/v1/prices/%2/"]  # a literal "%"


class Monotonic:
    now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def authorizer(stack: Any, clock: FakeClock, monkeypatch: pytest.MonkeyPatch) -> Authorizer:
    built = Authorizer(
        KeyStore(stack.refs["KeysTable"]),
        PepperSource(stack.refs["PepperSecret"]),
        RouteTable.from_json(ROUTES),
        clock=clock,
        monotonic=Monotonic(),
    )
    monkeypatch.setattr(handler, "_authorizer", built)
    return built


def shaped(shape: str, token: str, path: str) -> dict[str, Any]:
    arn = f"{PREFIX}/GET{path}"
    if shape in ("http-simple", "http-iam"):
        doc = authz_helpers.event(
            "authorizer_http_v2_simple" if shape == "http-simple" else "authorizer_http_v2_iam", token
        )
        doc["routeArn"], doc["rawPath"] = arn, path
        doc["requestContext"]["http"]["path"] = path
        return doc
    if shape == "rest":
        doc = authz_helpers.event("authorizer_rest_request_valid", token)
        doc["path"], doc["methodArn"] = path, arn
        return doc
    doc = authz_helpers.event("authorizer_rest_token", token)
    doc["methodArn"] = arn
    return doc


def allowed(response: dict[str, Any], shape: str, path: str) -> bool:
    if shape == "http-simple":
        return response["isAuthorized"] is True
    return authz_helpers.iam_effect(response["policyDocument"], f"{PREFIX}/GET{path}") == "Allow"


SHAPES = ["http-simple", "http-iam", "rest", "token"]


@pytest.mark.parametrize("shape", SHAPES)
def test_a_path_that_could_reach_another_route_is_refused_before_matching(
    service: Any, authorizer: Authorizer, lambda_context: Any, capfd: pytest.CaptureFixture[str], shape: str
) -> None:
    if shape == "http-iam":
        authorizer.http_response = "iam"
    issued = service.create("acme", actor="ops", env="test", scopes=["prices:read"])
    opened = []
    for path in ESCAPES:
        try:
            response = handler.lambda_handler(shaped(shape, issued.token, path), lambda_context)
        except Unauthorized:
            pytest.fail(f"{path!r}: a refused path is a 403 with its reason, not a 401")
        if allowed(response, shape, path):
            opened.append(path)
    assert opened == []
    out = capfd.readouterr().out
    assert out.count('"reason":"path_not_canonical"') == len(ESCAPES)


@pytest.mark.parametrize("shape", SHAPES)
def test_plain_paths_are_still_allowed(
    service: Any, authorizer: Authorizer, lambda_context: Any, shape: str
) -> None:
    if shape == "http-iam":
        authorizer.http_response = "iam"
    issued = service.create("acme", actor="ops", env="test", scopes=["prices:read"])
    for path in PLAIN:
        response = handler.lambda_handler(shaped(shape, issued.token, path), lambda_context)
        assert allowed(response, shape, path), path


def readings(path: str) -> set[str]:
    """What a backend or proxy may make of a path: decode (once, twice, %u as IIS does), fold
    Unicode, read a backslash as a slash, stop at a NUL, drop ";params", collapse dot segments and
    empty ones."""
    seen = set()
    iis = re.sub(r"%[uU]([0-9A-Fa-f]{4})", lambda m: chr(int(m.group(1), 16)), path)
    for text in (path, unquote(path), unquote(unquote(path)), unquote(iis)):
        for form in (text, unicodedata.normalize("NFKC", text)):
            form = form.replace("\\", "/").split("\x00")[0]
            form = "/".join(segment.split(";")[0] for segment in form.split("/"))
            normal = posixpath.normpath(form) if form else form
            seen.add(normal.replace("//", "/"))
    return seen


alphabet = st.sampled_from(
    [
        "a",
        "b",
        ".",
        "/",
        "%",
        "2",
        "e",
        "E",
        "f",
        "F",
        "5",
        "c",
        "C",
        "0",
        "\\",
        ";",
        "\x00",
        "\uff0e",
        "\uff0f",
        "é",
        "u",
    ]
)


@settings(max_examples=1500, deadline=None)
@given(st.lists(alphabet, max_size=14).map(lambda cs: "/v1/prices/" + "".join(cs)))
def test_a_path_the_authorizer_accepts_reads_the_same_to_every_decoder(path: str) -> None:
    if not path_is_canonical(path):
        return
    # every reading stays under the prefix the rule matched
    for reading in readings(path):
        assert reading == "/v1/prices" or reading.startswith("/v1/prices/"), (path, reading)
