"""Promises: the authorizer reads every key a request carries, or refuses it; the two header maps
of a REST event can never disagree silently."""

from __future__ import annotations

from typing import Any

import pytest
from keysentry.authorizer import MAX_HEADER_VALUES, Authorizer, Outcome, read_request
from keysentry.peppers import PepperSource
from keysentry.routes import RouteTable
from keysentry.store import KeyStore

from tests.integration.authz_helpers import event

ROUTES = '{"GET /v1/prices/*": "prices:read"}'


@pytest.fixture
def authorizer(stack: Any) -> Authorizer:
    return Authorizer(
        KeyStore(stack.refs["KeysTable"]),
        PepperSource(stack.refs["PepperSecret"]),
        RouteTable.from_json(ROUTES),
    )


def rest(multi: list[str], single: str | None) -> dict[str, Any]:
    doc = event("authorizer_rest_request_valid")
    del doc["headers"]["x-api-key"]
    del doc["multiValueHeaders"]["x-api-key"]
    if multi:
        doc["multiValueHeaders"]["X-Api-Key"] = multi
    if single is not None:
        doc["headers"]["X-Api-Key"] = single
    return doc


def decide(authorizer: Authorizer, doc: dict[str, Any]) -> tuple[Outcome, str]:
    request = read_request(doc)
    assert request is not None
    decision = authorizer.decide(request)
    return decision.outcome, decision.reason


def test_more_key_values_than_are_read_is_refused_not_truncated(service: Any, authorizer: Authorizer) -> None:
    a = service.create("acme", actor="ops", scopes=["prices:read"])
    b = service.create("globex", actor="ops", scopes=["prices:read"])
    # 8 x A then B: API Gateway's single-value map (what the backend reads) holds B
    doc = rest([a.token] * MAX_HEADER_VALUES + [b.token], b.token)
    assert decide(authorizer, doc) == (Outcome.UNAUTHORIZED, "too_many_key_values")
    # the same key repeated past the limit is refused too: nothing is left unread
    doc = rest([a.token] * (MAX_HEADER_VALUES + 1), a.token)
    assert decide(authorizer, doc) == (Outcome.UNAUTHORIZED, "too_many_key_values")
    # up to the limit, every value is read: one B among the As is a second key
    doc = rest([a.token] * (MAX_HEADER_VALUES - 1) + [b.token], b.token)
    assert decide(authorizer, doc) == (Outcome.UNAUTHORIZED, "several_keys")


def test_http_api_comma_joined_values_count_against_the_limit(service: Any, authorizer: Authorizer) -> None:
    a = service.create("acme", actor="ops", scopes=["prices:read"])
    b = service.create("globex", actor="ops", scopes=["prices:read"])
    doc = event("authorizer_http_v2_simple")
    doc["headers"]["x-api-key"] = ",".join([a.token] * MAX_HEADER_VALUES + [b.token])
    assert decide(authorizer, doc) == (Outcome.UNAUTHORIZED, "too_many_key_values")
    doc["headers"]["x-api-key"] = ",".join([a.token] * MAX_HEADER_VALUES)
    assert decide(authorizer, doc)[0] is Outcome.ALLOW


def test_bearer_values_count_against_the_limit(service: Any, authorizer: Authorizer) -> None:
    a = service.create("acme", actor="ops", scopes=["prices:read"])
    doc = rest([a.token], a.token)
    doc["multiValueHeaders"]["Authorization"] = [f"Bearer {a.token}"] * MAX_HEADER_VALUES
    assert decide(authorizer, doc) == (Outcome.UNAUTHORIZED, "too_many_key_values")


@pytest.mark.parametrize("where", ["only in headers", "only in multiValueHeaders"])
def test_a_key_in_one_header_map_and_not_the_other_is_a_second_key(
    service: Any, authorizer: Authorizer, where: str
) -> None:
    a = service.create("acme", actor="ops", scopes=["prices:read"])
    b = service.create("globex", actor="ops", scopes=["prices:read"])
    # only in headers: the backend would read B where the authorizer saw A
    doc = rest([a.token], b.token) if where == "only in headers" else rest([a.token, b.token], a.token)
    assert decide(authorizer, doc) == (Outcome.UNAUTHORIZED, "several_keys")


def test_a_bearer_in_one_map_disagreeing_with_the_other_is_a_second_key(
    service: Any, authorizer: Authorizer
) -> None:
    a = service.create("acme", actor="ops", scopes=["prices:read"])
    b = service.create("globex", actor="ops", scopes=["prices:read"])
    doc = rest([], None)
    doc["multiValueHeaders"]["authorization"] = [f"Bearer {a.token}"]
    doc["headers"]["Authorization"] = f"Bearer {b.token}"
    assert decide(authorizer, doc) == (Outcome.UNAUTHORIZED, "several_keys")


def test_agreeing_maps_and_repeats_of_one_key_are_one_key(service: Any, authorizer: Authorizer) -> None:
    a = service.create("acme", actor="ops", scopes=["prices:read"])
    assert decide(authorizer, rest([a.token], a.token))[0] is Outcome.ALLOW
    assert decide(authorizer, rest([a.token], None))[0] is Outcome.ALLOW
    assert decide(authorizer, rest([], a.token))[0] is Outcome.ALLOW
    assert decide(authorizer, rest([a.token] * MAX_HEADER_VALUES, a.token))[0] is Outcome.ALLOW
    doc = rest([a.token], a.token)
    doc["headers"]["x-API-key"] = a.token  # another spelling of the same header, same key
    assert decide(authorizer, doc)[0] is Outcome.ALLOW


def test_the_refusal_is_a_401_with_its_reason_logged(
    service: Any, stack: Any, lambda_context: Any, monkeypatch: pytest.MonkeyPatch, caplog: Any
) -> None:
    from functions.authorizer import handler

    a = service.create("acme", actor="ops", scopes=["prices:read"])
    monkeypatch.setattr(handler, "_authorizer", None)
    with pytest.raises(Exception, match=r"^Unauthorized$"):
        handler.lambda_handler(rest([a.token] * (MAX_HEADER_VALUES + 1), a.token), lambda_context)
    reasons = [getattr(r, "reason", None) for r in caplog.records if r.getMessage() == "decision"]
    assert reasons == ["too_many_key_values"]
