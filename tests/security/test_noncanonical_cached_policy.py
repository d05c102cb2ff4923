"""Promise: the Allow document API Gateway caches never opens a path the authorizer itself refuses
as non-canonical. ``GET/v1/prices/*`` also matches ``/v1/prices/..%2Fadmin%2Fusers``: while the
stage's cache holds the Allow, that request would reach the backend, which may read it as
``/v1/admin/users``. Every Allow document carries a Deny for those spellings, and for nothing the
authorizer accepts: the cached copy decides each path as the authorizer would, in both directions."""

from __future__ import annotations

from typing import Any
from urllib.parse import unquote_to_bytes

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st
from keysentry.authorizer import Authorizer, Decision, Outcome, Request, path_is_canonical, respond
from keysentry.model import KeyRecord, Status
from keysentry.peppers import PepperSource
from keysentry.routes import MethodArn, RouteTable
from keysentry.store import KeyStore

from tests.integration.authz_helpers import iam_effect

PREFIX = "arn:aws:execute-api:us-east-1:123456789012:a1b2c3d4e5/prod"
ROUTES = RouteTable.from_json(
    '{"GET /v1/prices": "prices:read", "GET /v1/prices/*": "prices:read", "GET /v1/admin/*": "admin",'
    ' "ANY /v1/orders/*": "orders:write", "GET /v1/prices/secret/*": "admin"}'
)
SCOPES = ("prices:read", "orders:write")
RECORD = KeyRecord(
    kid="k" * 12,
    owner_id="acme",
    env="live",
    status=Status.ACTIVE,
    digest="d",
    pepper_version="1",
    created_at=1_790_000_000,
    rotation_days=90,
    rotate_after=1_797_776_000,
    scopes=SCOPES,
)


def cached_document(method: str = "GET", path: str = "/v1/prices/BTC") -> dict[str, Any]:
    """What API Gateway caches after one allowed request by this key."""
    authorizer = Authorizer(KeyStore("unused"), PepperSource("unused"), ROUTES, clock=lambda: 1_790_000_000)
    request = Request("request", ("token",), "203.0.113.7", method, path, MethodArn(PREFIX, method, path))
    response = respond(authorizer, request, Decision(Outcome.ALLOW, "ok", RECORD.kid, RECORD))
    return response["policyDocument"]  # type: ignore[no-any-return]


def served(method: str, path: str) -> str:
    return iam_effect(cached_document(), f"{PREFIX}/{method}{path}")


ATTACKS = [
    "/v1/prices/..%2Fadmin%2Fusers",
    "/v1/prices/..%2fadmin%2fusers",
    "/v1/prices/%2e%2e/admin",
    "/v1/prices/%2E%2E/admin",
    "/v1/prices/..;/admin",
    "/v1/prices/.;/x",
    "/v1/prices/..\\admin",
    "/v1/prices/..%5Cadmin",
    "/v1/prices/..%5cadmin",
    "/v1/prices/../admin/users",
    "/v1/prices/./BTC",
    "/v1/prices/BTC/..",
    "/v1/prices/BTC/.",
    "/v1/prices/BTC%00.json",
    "/v1/prices//admin",
    "/v1/prices/%73ecret/x",  # an encoded letter: /v1/prices/secret/x, which the key may not call
    "/v1/prices/%25%32%65",
    "/v1/prices/a%0a",
    "/v1/prices/a%0",  # a lenient decoder reads one hex digit: a NUL
    "/v1/prices/%u002e%u002e/admin",  # IIS and .NET decode %u
    "/v1/prices/%U002E%U002E/admin",
    "/v1/prices/%u",
    "/v1/prices/%%2e%%2e/admin",
    "/v1/prices/%%32%65%%32%65/admin",  # decoded twice: "%2e%2e", then ".."
    "/v1/prices/%2%65%2%65/admin",
    "/v1/prices/%C0%AE%C0%AE/admin",  # overlong UTF-8 dots
    "/v1/prices/%c0%ae%c0%ae/admin",
    "/v1/prices/..%C0%AFadmin",
    "/v1/prices/..%c1%9cadmin",
    "/v1/prices/%E0%80%AE%E0%80%AE/admin",
    "/v1/prices/%F0%80%80%AE%F0%80%80%AE/admin",
]


@pytest.mark.parametrize("path", ATTACKS)
def test_the_cached_allow_denies_what_the_authorizer_refuses_as_non_canonical(path: str) -> None:
    assert not path_is_canonical(path)
    assert served("GET", path) == "Deny"


# A "%" that no decoder reads as anything but itself (or refuses outright) is a literal character.
LITERAL_PERCENT = [
    "/v1/prices/a%",
    "/v1/prices/a%2",
    "/v1/prices/%a.b",
    "/v1/prices/%g",
    "/v1/prices/%g1",
    "/v1/prices/%2/",
    "/v1/prices/%zz",
    "/v1/prices/100%",
    "/v1/prices/%/x",
    "/v1/prices/%.;x",
    "/v1/prices/%E2%82%AC",
    "/v1/prices/%E0%A4%85",  # a valid E0 lead byte
    "/v1/prices/%F0%9F%98%80",
]


@pytest.mark.parametrize(
    "path",
    [
        "/v1/prices",
        "/v1/prices/BTC",
        "/v1/prices/BTC-USD",
        "/v1/prices/a.b",
        "/v1/prices/a%40b",
        *LITERAL_PERCENT,
    ],
)
def test_the_cached_allow_still_allows_ordinary_paths(path: str) -> None:
    assert path_is_canonical(path)
    assert served("GET", path) == "Allow"


RISKY = (
    "v1", "prices", "admin", "orders", "secret", "BTC", "a.b", "..", ".", "...", ";", "..;", ".;",
    "%2F", "%2f", "%2E", "%2e", "%5C", "%5c", "\\", "%00", "%0a", "%25", "%", "%2", "%41", "%61",
    "%3A", "%40", "%C3%A9", "x;y", "~", "-", "_", "", "%2e%2e", "..%2f", ".%2e", "%2e.", "%u", "%U",
    "u002e", "%a", "%g", "g", "1", "%1", "%0", "%C0", "%c1", "%AE", "%E0", "%80", "%9f", "%F0",
    "%+", "+0", "%+0", "%-1",
)  # fmt: skip
paths = st.lists(st.sampled_from(RISKY), min_size=1, max_size=6).map(lambda s: "/" + "/".join(s))
joined = st.lists(st.sampled_from(RISKY), min_size=1, max_size=6).map(lambda s: "/v1/prices/" + "".join(s))
chars = st.lists(st.sampled_from("%./;\\2aAeEfFgu01cC9+"), max_size=10).map(
    lambda s: "/v1/prices/" + "".join(s)
)


def inexpressible(path: str) -> bool:
    """What globs cannot say (ADR 0008), left to the authorizer: bytes that are not UTF-8 other than
    the overlong forms of ASCII (``%80``, ``%C3`` alone), which no decoder reads as ASCII, and
    decoded non-ASCII characters that are not printable (``%C2%85``; ASCII controls have globs)."""
    try:
        text = unquote_to_bytes(path).decode("utf-8")
    except UnicodeDecodeError:
        return True
    return any(ord(c) > 0x7F and not c.isprintable() for c in text)


def authorizer_allows(method: str, path: str) -> bool:
    required = ROUTES.required_scope(method, path)
    return path_is_canonical(path) and required is not None and (required == "" or required in SCOPES)


@settings(max_examples=1000, deadline=None)
@given(method=st.sampled_from(("GET", "POST", "PUT")), path=st.one_of(paths, joined, chars))
@example(method="GET", path="/v1/prices/%a.b")
@example(method="GET", path="/v1/prices/%u002e%u002e")
@example(method="GET", path="/v1/prices/%u002e%u002e/admin")
@example(method="GET", path="/v1/prices/%g")
@example(method="GET", path="/v1/prices/%")
@example(method="GET", path="/v1/prices/%2")
@example(method="GET", path="/v1/prices/%2/")
@example(method="GET", path="/v1/prices/%%2e")
@example(method="GET", path="/v1/prices/%2%65%2%65/admin")
@example(method="GET", path="/v1/prices/%C0%AE%C0%AE/admin")
@example(method="GET", path="/v1/prices/BTC%+0")  # Java's URLDecoder reads "%+0" as NUL
def test_a_cached_allow_decides_every_path_as_the_authorizer_does(method: str, path: str) -> None:
    served_allow = served(method, path) == "Allow"
    if authorizer_allows(method, path):
        assert served_allow, f"the cached Allow refuses {path!r}, which the authorizer allows"
    elif not inexpressible(path):
        assert not served_allow, f"the cached Allow opens {path!r}, which the authorizer refuses"
