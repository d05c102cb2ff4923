"""Each event shape's reader, on the files in events/ and variations of them: no moto, no AWS."""

from __future__ import annotations

import json
from typing import Any

import pytest
from keysentry.authorizer import MAX_HEADER_VALUES, read_request
from keysentry.authorizer.events import (
    header_values,
    read_http_request,
    read_rest_request,
    read_rest_token,
    tokens_from_headers,
)

from tests.conftest import EVENTS

TOKEN = "ks_test_EXAMPLEKEY00000000000000000000000000000000001gKwCs"
OTHER = "ks_test_OTHERKEY0000000000000000000000000000000000001abcde"
ARN = "arn:aws:execute-api:us-east-1:123456789012:a1b2c3d4e5/prod/GET/v1/prices/BTC"


def load(name: str) -> dict[str, Any]:
    doc: dict[str, Any] = json.loads((EVENTS / f"{name}.json").read_text())
    return doc


# ---------------------------------------------------------------- REST REQUEST


def test_a_rest_request_event_gives_its_key_route_address_and_stage() -> None:
    request = read_rest_request(load("authorizer_rest_request_valid"))

    assert (request.shape, request.tokens, request.source_ip) == ("request", (TOKEN,), "203.0.113.10")
    assert (request.method, request.path, request.stage, request.refusal) == (
        "GET",
        "/v1/prices/BTC",
        "prod",
        None,
    )
    assert request.method_arn is not None and request.method_arn.arn() == ARN


def test_a_rest_request_reads_a_bearer_key_from_authorization() -> None:
    assert read_rest_request(load("authorizer_rest_request_bearer")).tokens == (TOKEN,)


def test_a_repeated_identical_key_is_one_key() -> None:
    assert read_rest_request(load("authorizer_rest_request_multivalue")).tokens == (TOKEN,)


def test_a_key_in_one_map_and_another_in_the_other_is_two_keys() -> None:
    doc = load("authorizer_rest_request_valid")
    doc["headers"]["x-api-key"] = OTHER

    assert set(read_rest_request(doc).tokens) == {TOKEN, OTHER}


def test_header_names_are_read_in_any_case() -> None:
    doc = load("authorizer_rest_request_valid")
    doc["headers"] = {"X-API-KEY": TOKEN}
    doc["multiValueHeaders"] = {"X-Api-Key": [TOKEN]}

    assert read_rest_request(doc).tokens == (TOKEN,)


def test_too_many_key_values_are_refused_never_read_in_part() -> None:
    doc = load("authorizer_rest_request_valid")
    doc["multiValueHeaders"] = {"x-api-key": [f"k{i}" for i in range(MAX_HEADER_VALUES + 1)]}

    request = read_rest_request(doc)

    assert (request.tokens, request.refusal) == ((), "too_many_key_values")


def test_a_rest_request_without_method_or_path_falls_back_to_its_arn() -> None:
    doc = load("authorizer_rest_request_valid")
    del doc["httpMethod"], doc["path"], doc["requestContext"]

    request = read_rest_request(doc)

    assert (request.method, request.path, request.source_ip) == ("GET", "/v1/prices/BTC", None)


def test_a_rest_request_with_an_unreadable_arn_has_no_arn_and_no_stage() -> None:
    doc = load("authorizer_rest_request_valid")
    doc["methodArn"] = 42

    request = read_rest_request(doc)

    assert (request.method_arn, request.stage, request.method) == (None, None, "GET")


def test_a_source_address_that_is_not_text_is_none() -> None:
    doc = load("authorizer_rest_request_valid")
    doc["requestContext"]["identity"]["sourceIp"] = ["203.0.113.10"]

    assert read_rest_request(doc).source_ip is None


# ---------------------------------------------------------------- REST TOKEN


def test_a_token_event_reads_a_bearer_credential() -> None:
    request = read_rest_token(load("authorizer_rest_token"))

    assert (request.shape, request.tokens, request.source_ip, request.event) == (
        "token",
        (TOKEN,),
        None,
        None,
    )
    assert (request.method, request.path, request.stage) == ("GET", "/v1/prices/BTC", "prod")


@pytest.mark.parametrize(
    ("raw", "tokens"),
    [
        (TOKEN, (TOKEN,)),
        (f"  {TOKEN}  ", (TOKEN,)),
        (f"bearer {TOKEN}", (TOKEN,)),
        ("", ()),
        ("   ", ()),
        (None, ()),
    ],
)
def test_a_token_event_reads_a_bare_key_or_nothing(raw: Any, tokens: tuple[str, ...]) -> None:
    doc = load("authorizer_rest_token")
    doc["authorizationToken"] = raw

    assert read_rest_token(doc).tokens == tokens


def test_a_token_event_without_an_arn_asks_about_nothing() -> None:
    request = read_rest_token({"type": "TOKEN", "authorizationToken": TOKEN})

    assert (request.method_arn, request.method, request.path, request.stage) == (None, "", "/", None)


# ---------------------------------------------------------------- HTTP API 2.0


def test_an_http_event_gives_its_key_route_address_and_stage() -> None:
    request = read_http_request(load("authorizer_http_v2_simple"))

    assert (request.shape, request.tokens, request.source_ip) == ("http", (TOKEN,), "203.0.113.10")
    assert (request.method, request.path, request.stage) == ("GET", "/v1/prices/BTC", "prod")


def test_an_http_event_splits_headers_joined_with_commas() -> None:
    doc = load("authorizer_http_v2_simple")
    doc["headers"]["x-api-key"] = f"{TOKEN},{OTHER}"

    assert read_http_request(doc).tokens == (TOKEN, OTHER)


def test_an_http_event_without_an_arn_takes_its_stage_from_the_context() -> None:
    doc = load("authorizer_http_v2_simple")
    doc["routeArn"] = "not an arn"

    request = read_http_request(doc)

    assert (request.method_arn, request.stage, request.path) == (None, "prod", "/v1/prices/BTC")


# ---------------------------------------------------------------- shape detection and headers


@pytest.mark.parametrize(
    ("name", "shape"),
    [
        ("authorizer_rest_request_valid", "request"),
        ("authorizer_rest_token", "token"),
        ("authorizer_http_v2_simple", "http"),
        ("authorizer_http_v2_iam", "http"),
    ],
)
def test_read_request_detects_each_shape(name: str, shape: str) -> None:
    request = read_request(load(name))

    assert request is not None and request.shape == shape


@pytest.mark.parametrize(
    "event",
    [None, [], "event", {}, {"type": "REQUEST"}, {"version": "2.0"}, {"type": "OTHER", "methodArn": ARN}],
)
def test_an_unknown_shape_is_none(event: Any) -> None:
    assert read_request(event) is None


def test_no_key_header_is_no_token_and_no_refusal() -> None:
    assert tokens_from_headers({"headers": {"Accept": "*/*"}, "multiValueHeaders": None}) == ((), None)


def test_a_non_bearer_authorization_is_no_token() -> None:
    assert tokens_from_headers({"headers": {"Authorization": f"Basic {TOKEN}"}}) == ((), None)


def test_header_values_come_from_both_maps_in_any_case() -> None:
    event = {"multiValueHeaders": {"X-Ks-Nonce": ["a", "b"]}, "headers": {"x-ks-nonce": "b", "Other": "c"}}

    assert header_values(event, "x-ks-nonce") == ["a", "b", "b"]


# ---------------------------------------------------------------- HTTP API stages


@pytest.mark.parametrize(
    ("stage", "raw_path", "path"),
    [
        ("prod", "/prod/v1/prices/BTC", "/v1/prices/BTC"),  # a named stage: its name leads the path
        ("prod", "/prod", "/"),
        ("$default", "/v1/prices/BTC", "/v1/prices/BTC"),  # the $default stage is the API's root
        ("v1", "/v1/v1/prices/BTC", "/v1/prices/BTC"),  # only the stage's own segment goes
        ("prod", "/production/v1", "/production/v1"),  # a segment that merely starts like it stays
    ],
)
def test_an_http_api_path_is_read_without_its_stage(stage: str, raw_path: str, path: str) -> None:
    """The routes (and RouteScopes, and a client's signature) name paths without the stage, which
    an HTTP API's named stage puts in front of rawPath and requestContext.http.path."""
    doc = load("authorizer_http_v2_simple")
    doc["rawPath"] = doc["requestContext"]["http"]["path"] = raw_path
    doc["requestContext"]["stage"] = stage
    doc["routeArn"] = f"arn:aws:execute-api:us-east-1:123456789012:a1b2c3d4e5/{stage}/GET{path}"
    assert read_http_request(doc).path == path
