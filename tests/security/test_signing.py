"""Signed requests: every part of a request the backend can see is covered by the signature, or is
documented (docs/signing.md, "What the signature covers") as invisible to the backend too.

Two kinds of promise: distinct requests get distinct strings to sign, and each tampering of a signed
request is denied by the authorizer, end to end through its handler.
"""

from __future__ import annotations

import copy
from typing import Any
from urllib.parse import parse_qsl, quote

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519, rsa
from hypothesis import given
from hypothesis import strategies as st
from keysentry.authorizer import Authorizer, read_request
from keysentry.client import query_string, sign
from keysentry.errors import ValidationError
from keysentry.peppers import PepperSource
from keysentry.routes import RouteTable
from keysentry.signing import (
    ALGORITHMS,
    SignatureError,
    Verifier,
    canonical_query,
    read_signed,
    string_to_sign,
)
from keysentry.store import KeyStore

from functions.authorizer import handler
from tests.conftest import FakeClock
from tests.integration.api_helpers import call
from tests.integration.authz_helpers import effect, event
from tests.integration.test_aws_generated_events import generate

ROUTES = '{"ANY /v1/orders": "orders:write", "ANY /v1/prices/*": "orders:write"}'
BODY = b'{"symbol": "BTC", "side": "buy", "qty": "0.5"}'
JSON = "application/json"


class MsClock(FakeClock):
    def precise(self) -> float:
        return float(self.now)


@pytest.fixture
def clock() -> MsClock:
    return MsClock()


@pytest.fixture
def authorizer(stack: Any, clock: MsClock, monkeypatch: pytest.MonkeyPatch) -> Authorizer:
    built = Authorizer(
        KeyStore(stack.refs["KeysTable"]),
        PepperSource(stack.refs["PepperSecret"]),
        RouteTable.from_json(ROUTES),
        clock=clock.precise,
        kms_key_id=stack.refs["SigningSecretsKey"],
        nonce_table=stack.refs["NonceTable"],
    )
    monkeypatch.setattr(handler, "_authorizer", built)
    return built


@pytest.fixture
def issued(service: Any) -> Any:
    return service.create("acme", actor="ops", scopes=["orders:write"], signing="hmac")


def headers_for(issued: Any, clock: MsClock, query: Any, content_type: str | None = JSON) -> dict[str, str]:
    return sign(
        "POST",
        "/v1/orders",
        query,
        BODY,
        key=issued.token,
        secret=issued.signing_secret,
        content_type=content_type,
        timestamp_ms=clock.now * 1000,
    )


def rest_event(headers: dict[str, str], query: dict[str, list[str]] | None = None) -> dict[str, Any]:
    """A REST REQUEST event for POST /v1/orders, as API Gateway builds it: both header maps, and the
    query already decoded (``+`` and ``%20`` both arrive as a space; repeated values in order)."""
    doc = event("authorizer_rest_request_wrong_scope")
    doc["headers"] = dict(headers)
    doc["multiValueHeaders"] = {k: [v] for k, v in headers.items()}
    doc["multiValueQueryStringParameters"] = copy.deepcopy(query) if query else None
    doc["queryStringParameters"] = {k: v[-1] for k, v in query.items()} if query else None
    return doc


def http_event(headers: dict[str, str], raw_query: str) -> dict[str, Any]:
    """An HTTP API (payload 2.0) event for POST /v1/orders: lower-case headers, the raw query."""
    doc = event("authorizer_http_v2_simple")
    doc["routeArn"] = doc["routeArn"].replace("/GET/v1/prices/BTC", "/POST/v1/orders")
    doc["routeKey"] = doc["requestContext"]["routeKey"] = "POST /v1/orders"
    doc["rawPath"] = doc["requestContext"]["http"]["path"] = "/v1/orders"
    doc["requestContext"]["http"]["method"] = "POST"
    doc["headers"] = {k.lower(): v for k, v in headers.items()}
    doc["rawQueryString"] = raw_query
    return doc


def outcome(doc: dict[str, Any], lambda_context: Any) -> str:
    """The handler's answer: Allow, Deny, or Unauthorized."""
    try:
        response = handler.lambda_handler(doc, lambda_context)
    except Exception as error:
        return str(error)
    if "isAuthorized" in response:
        return "Allow" if response["isAuthorized"] else "Deny"
    return effect(response)


def reason(authorizer: Authorizer, doc: dict[str, Any]) -> str:
    request = read_request(doc)
    assert request is not None
    return authorizer.decide(request).reason


def message(query: Any, content_type: str = JSON) -> str:
    return string_to_sign(
        ALGORITHMS["hmac"], 1, "n" * 16, "POST", "/v1/orders", canonical_query(query), content_type, "0" * 64
    )


# ---------------------------------------------------------------- distinct requests, distinct strings


@pytest.mark.parametrize(
    "first, second",
    [
        pytest.param({"tag": ["a", "b"]}, {"tag": ["b", "a"]}, id="order-of-repeated-values"),
        pytest.param("tag=a&tag=b", "tag=b&tag=a", id="order-of-repeated-values-raw"),
        pytest.param({"q": ["a+b"]}, {"q": ["a b"]}, id="plus-sign-versus-space"),
        pytest.param("q=a%2Bb", "q=a%20b", id="encoded-plus-versus-space-raw"),
        pytest.param({"a=b": ["c"]}, {"a": ["b=c"]}, id="equals-in-name-versus-value"),
        pytest.param({"a": ["b&c=d"]}, {"a": ["b"], "c": ["d"]}, id="ampersand-in-value"),
        pytest.param({"a": ["1"]}, {"a": ["1", ""]}, id="an-extra-empty-value"),
        pytest.param({"a": ["1"]}, {"a": ["1"], "b": [""]}, id="an-extra-empty-parameter"),
        pytest.param({"q": ["é"]}, {"q": ["e"]}, id="non-ascii"),
        pytest.param({}, {"": [""]}, id="an-empty-name"),
    ],
)
def test_distinct_queries_get_distinct_strings_to_sign(first: Any, second: Any) -> None:
    assert message(first) != message(second)


@pytest.mark.parametrize(
    "first, second",
    [
        pytest.param(JSON, "application/x-www-form-urlencoded", id="another-type"),
        pytest.param(JSON, "application/json; charset=utf-16", id="a-parameter-added"),
        pytest.param(JSON, "", id="present-versus-absent"),
        pytest.param(JSON, "Application/JSON", id="case"),
    ],
)
def test_distinct_content_types_get_distinct_strings_to_sign(first: str, second: str) -> None:
    assert message("a=1", first) != message("a=1", second)


@pytest.mark.parametrize(
    "rest_same",
    [
        pytest.param(("q=a+b", "q=a%20b"), id="plus-and-%20-both-arrive-as-a-space"),
        pytest.param(("flag", "flag="), id="flag-and-flag=-both-arrive-empty"),
        pytest.param(("a=1&b=2&a=3", "b=2&a=1&a=3"), id="order-across-names-is-not-kept"),
        pytest.param(("q=%41", "q=A"), id="encoding-of-unreserved-characters"),
    ],
)
def test_what_a_rest_event_cannot_tell_apart_signs_alike(rest_same: tuple[str, str]) -> None:
    """What a REST API collapses, its backend cannot see either: one string to sign, as documented."""
    assert canonical_query(rest_same[0]) == canonical_query(rest_same[1])


def test_a_rest_event_keeps_the_order_of_repeated_values() -> None:
    doc = rest_event({}, {"tag": ["b", "a"], "account": ["main"]})
    request = read_request(doc)
    assert request is not None
    assert request.canonical_query() == "account=main&tag=b&tag=a"


# ---------------------------------------------------------------- end to end, REST


def test_a_signed_rest_request_with_its_content_type_is_allowed(
    issued: Any, authorizer: Authorizer, clock: MsClock, lambda_context: Any
) -> None:
    query = {"tag": ["b", "a b"], "account": ["main"]}
    headers = headers_for(issued, clock, query)
    assert headers["Content-Type"] == JSON
    assert outcome(rest_event(headers, query), lambda_context) == "Allow"


@pytest.mark.parametrize(
    "tamper, expected_reason",
    [
        ("reorder_repeated_values", "bad_signature"),
        ("plus_for_encoded_plus", "bad_signature"),
        ("change_content_type", "bad_signature"),
        ("drop_content_type", "bad_signature"),
        ("repeat_content_type", "repeated_content_type"),
        ("empty_content_type", "malformed_content_type"),
        ("add_empty_parameter", "bad_signature"),
    ],
)
def test_each_tampering_of_a_signed_rest_request_is_denied(
    issued: Any,
    authorizer: Authorizer,
    clock: MsClock,
    lambda_context: Any,
    tamper: str,
    expected_reason: str,
) -> None:
    query = {"tag": ["b", "a"], "q": ["x+y"]}
    headers = headers_for(issued, clock, query)
    doc = rest_event(headers, query)
    if tamper == "reorder_repeated_values":
        doc["multiValueQueryStringParameters"]["tag"] = ["a", "b"]
    elif tamper == "plus_for_encoded_plus":  # the client sent q=x%2By; an attacker sends q=x+y
        doc["multiValueQueryStringParameters"]["q"] = ["x y"]
        doc["queryStringParameters"]["q"] = "x y"
    elif tamper == "change_content_type":
        doc["headers"]["Content-Type"] = doc["multiValueHeaders"]["Content-Type"] = "text/plain"
        doc["multiValueHeaders"]["Content-Type"] = ["text/plain"]
    elif tamper == "drop_content_type":
        del doc["headers"]["Content-Type"], doc["multiValueHeaders"]["Content-Type"]
    elif tamper == "repeat_content_type":
        doc["multiValueHeaders"]["Content-Type"] = [JSON, "text/plain"]
        doc["headers"]["Content-Type"] = "text/plain"
    elif tamper == "empty_content_type":
        doc["headers"]["Content-Type"] = ""
        doc["multiValueHeaders"]["Content-Type"] = [""]
    elif tamper == "add_empty_parameter":
        doc["multiValueQueryStringParameters"]["debug"] = [""]
        doc["queryStringParameters"]["debug"] = ""
    assert outcome(copy.deepcopy(doc), lambda_context) == "Deny"
    assert reason(authorizer, doc) == expected_reason


def test_a_content_type_header_in_any_case_is_the_one_signed(
    issued: Any, authorizer: Authorizer, clock: MsClock, lambda_context: Any
) -> None:
    headers = headers_for(issued, clock, None, content_type="text/csv")
    headers["content-TYPE"] = headers.pop("Content-Type")
    assert outcome(rest_event(headers), lambda_context) == "Allow"
    swapped = headers_for(issued, clock, None, content_type="text/csv")
    swapped["CONTENT-type"] = JSON
    del swapped["Content-Type"]
    assert outcome(rest_event(swapped), lambda_context) == "Deny"


def test_a_request_without_a_content_type_signs_its_absence(
    issued: Any, authorizer: Authorizer, clock: MsClock, lambda_context: Any
) -> None:
    headers = headers_for(issued, clock, None, content_type=None)
    assert "Content-Type" not in headers
    assert outcome(rest_event(headers), lambda_context) == "Allow"
    added = headers_for(issued, clock, None, content_type=None)
    added["Content-Type"] = JSON
    assert outcome(rest_event(added), lambda_context) == "Deny"


def test_a_signature_of_the_retired_ks1_scheme_is_denied(
    issued: Any, authorizer: Authorizer, clock: MsClock, lambda_context: Any
) -> None:
    headers = headers_for(issued, clock, None)
    headers["X-Ks-Algorithm"] = "KS1-HMAC-SHA256"
    doc = rest_event(headers)
    assert outcome(copy.deepcopy(doc), lambda_context) == "Deny"
    assert reason(authorizer, doc) == "unknown_algorithm"


def test_a_line_break_in_the_path_cannot_forge_the_lines_after_it(
    issued: Any, authorizer: Authorizer, clock: MsClock, lambda_context: Any
) -> None:
    """The lines of the string to sign stay lines: a decoded %0A in the path is denied, not signed."""
    headers = headers_for(issued, clock, None)
    doc = rest_event(headers)
    doc["path"] = "/v1/prices/BTC\nPOST"
    assert outcome(doc, lambda_context) == "Deny"
    verifier = Verifier("hmac", secret=issued.signing_secret)
    signed = read_signed({k.lower(): [v] for k, v in headers.items()})
    with pytest.raises(SignatureError, match="malformed_request"):
        verifier.verify(signed, "POST", "/v1/orders\n", "", JSON)
    with pytest.raises(SignatureError):
        string_to_sign(ALGORITHMS["hmac"], 1, "n" * 16, "POST", "/a\nb", "", "", "0" * 64)
    with pytest.raises(SignatureError):
        string_to_sign(ALGORITHMS["hmac"], 1, "n" * 16, "POST", "/a", "", "text/plain\r\nX: y", "0" * 64)


def test_a_rest_event_without_the_multi_value_query_is_denied_not_guessed(
    issued: Any, authorizer: Authorizer, clock: MsClock, lambda_context: Any
) -> None:
    """queryStringParameters keeps one value per name: from it alone, an added repeat is invisible."""
    headers = headers_for(issued, clock, {"tag": ["b"]})
    doc = rest_event(headers, {"tag": ["b"]})
    doc["multiValueQueryStringParameters"] = None
    assert outcome(copy.deepcopy(doc), lambda_context) == "Deny"
    assert reason(authorizer, doc) == "incomplete_query"


def test_the_generated_rest_request_authorizer_event_signed(
    issued: Any, authorizer: Authorizer, clock: MsClock, lambda_context: Any
) -> None:
    """`sam local generate-event apigateway request-authorizer`: its query in queryStringParameters
    only, as the older AWS example shows; API Gateway also sends the multi-value map."""
    doc = generate("apigateway", "request-authorizer")
    assert doc["queryStringParameters"] == {"QueryString1": "queryValue1"}
    doc["methodArn"] = doc["methodArn"].replace("/GET/request", "/POST/v1/orders")
    doc.update(httpMethod="POST", path="/v1/orders")
    headers = sign(
        "POST",
        "/v1/orders",
        {"QueryString1": ["queryValue1"]},
        key=issued.token,
        secret=issued.signing_secret,
        content_type="application/x-www-form-urlencoded",
        timestamp_ms=clock.now * 1000,
    )
    doc["headers"].update(headers)
    assert reason(authorizer, copy.deepcopy(doc)) == "incomplete_query"
    doc["multiValueQueryStringParameters"] = {"QueryString1": ["queryValue1"]}
    assert outcome(copy.deepcopy(doc), lambda_context) == "Allow"


def test_the_generated_http_api_event_signed_over_its_raw_query(
    issued: Any, authorizer: Authorizer, clock: MsClock, lambda_context: Any
) -> None:
    """`sam local generate-event apigateway http-api-proxy`: queryStringParameters joins repeated
    values with commas (value1,value2), rawQueryString keeps them apart; the raw one is signed."""
    doc = generate("apigateway", "http-api-proxy")
    raw = doc["rawQueryString"]
    assert raw == "parameter1=value1&parameter1=value2&parameter2=value"
    assert doc["queryStringParameters"]["parameter1"] == "value1,value2"
    doc.update(
        type="REQUEST",
        routeArn="arn:aws:execute-api:us-east-1:123456789012:api-id/$default/POST/v1/orders",
        rawPath="/v1/orders",
    )
    doc["requestContext"]["http"].update(method="POST", path="/v1/orders")
    params = [("parameter1", "value1"), ("parameter1", "value2"), ("parameter2", "value")]
    assert query_string(params) == raw
    headers = headers_for(issued, clock, params)
    doc["headers"].update({k.lower(): v for k, v in headers.items()})
    assert outcome(copy.deepcopy(doc), lambda_context) == "Allow"
    joined = headers_for(issued, clock, [("parameter1", "value1,value2"), ("parameter2", "value")])
    doc["headers"].update({k.lower(): v for k, v in joined.items()})
    assert outcome(doc, lambda_context) == "Deny"


# ---------------------------------------------------------------- end to end, HTTP API


def test_a_signed_http_api_request_sent_in_canonical_form_is_allowed(
    issued: Any, authorizer: Authorizer, clock: MsClock, lambda_context: Any
) -> None:
    query = [("tag", "b"), ("account", "main"), ("tag", "a b"), ("flag", "")]
    raw = query_string(query)
    assert raw == "account=main&flag=&tag=b&tag=a%20b"
    headers = headers_for(issued, clock, query)
    assert outcome(http_event(headers, raw), lambda_context) == "Allow"


@pytest.mark.parametrize(
    "sent",
    [
        pytest.param("account=main&flag=&tag=b&tag=a+b", id="plus-for-%20"),
        pytest.param("account=main&flag&tag=b&tag=a%20b", id="flag-without-equals"),
        pytest.param("flag=&account=main&tag=b&tag=a%20b", id="names-out-of-order"),
        pytest.param("account=main&flag=&tag=a%20b&tag=b", id="repeated-values-swapped"),
        pytest.param("account=ma%69n&flag=&tag=b&tag=a%20b", id="needless-escape"),
        pytest.param("account=main&flag=&tag=b&tag=a%20b&", id="trailing-ampersand"),
        pytest.param("account=main&&flag=&tag=b&tag=a%20b", id="empty-component"),
        pytest.param("account=main&flag=&tag=b&tag=a%2fb", id="lower-case-escape"),
    ],
)
def test_an_http_api_query_in_any_other_form_is_denied(
    issued: Any, authorizer: Authorizer, clock: MsClock, lambda_context: Any, sent: str
) -> None:
    """The backend of an HTTP API reads rawQueryString: two spellings must never share a signature,
    so only the canonical spelling of the signed query is accepted."""
    headers = headers_for(issued, clock, [("tag", "b"), ("account", "main"), ("tag", "a b"), ("flag", "")])
    doc = http_event(headers, sent)
    assert outcome(copy.deepcopy(doc), lambda_context) == "Deny"
    assert reason(authorizer, doc) in ("noncanonical_query", "bad_signature")


def test_an_http_api_content_type_is_signed(
    issued: Any, authorizer: Authorizer, clock: MsClock, lambda_context: Any
) -> None:
    headers = headers_for(issued, clock, None)
    doc = http_event(headers, "")
    assert doc["headers"]["content-type"] == JSON
    doc["headers"]["content-type"] = "text/plain"
    assert outcome(doc, lambda_context) == "Deny"
    assert outcome(http_event(headers_for(issued, clock, None), ""), lambda_context) == "Allow"


# ---------------------------------------------------------------- public keys


def _pem(public_key: Any) -> str:
    return public_key.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    ).decode()


def _rsa_with_exponent(e: int) -> str:
    modulus = rsa.generate_private_key(public_exponent=65537, key_size=2048).public_key().public_numbers().n
    return _pem(rsa.RSAPublicNumbers(e, modulus).public_key())


@pytest.mark.parametrize("exponent", [3, 17, 257])
def test_an_rsa_key_with_a_small_public_exponent_is_refused(service: Any, exponent: int) -> None:
    with pytest.raises(ValidationError, match="65537"):
        service.create("acme", actor="ops", signing="rsa", public_key=_rsa_with_exponent(exponent))
    kid = service.create("acme", actor="ops").record.kid
    with pytest.raises(ValidationError, match="65537"):
        service.set_public_key(kid, _rsa_with_exponent(exponent), actor="ops")
    assert service.get(kid).signing.mode == "bearer"


def test_an_rsa_key_with_exponent_3_gets_a_clear_400_from_the_api(
    api_service: Any, lambda_context: Any
) -> None:
    status, body = call(
        "api_create_key",
        lambda_context,
        body={"owner": "acme", "signing": "rsa", "public_key": _rsa_with_exponent(3)},
    )
    assert status == 400
    assert "65537" in str(body)


def test_rsa_keys_with_exponent_65537_and_ed25519_keys_are_still_accepted(service: Any) -> None:
    good_rsa = _pem(rsa.generate_private_key(public_exponent=65537, key_size=2048).public_key())
    assert (
        service.create("acme", actor="ops", signing="rsa", public_key=good_rsa).record.signing.mode == "rsa"
    )
    good_ed = _pem(ed25519.Ed25519PrivateKey.generate().public_key())
    created = service.create("acme", actor="ops", signing="ed25519", public_key=good_ed)
    assert created.record.signing.mode == "ed25519"


# ---------------------------------------------------------------- the canonical form, for any input

_texts = st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=12)


@given(st.lists(st.tuples(_texts, _texts), max_size=8))
def test_the_canonical_query_decodes_back_to_exactly_the_signed_parameters(
    pairs: list[tuple[str, str]],
) -> None:
    """Decoding the canonical string gives back every pair, in the signed order (sorted by encoded
    name, a name's values as sent): two parameter lists that differ there never share a string."""
    canonical = canonical_query(pairs)
    expected = sorted(pairs, key=lambda pair: quote(pair[0], safe="-._~"))
    assert parse_qsl(canonical, keep_blank_values=True) == expected
    assert canonical_query(canonical) == canonical  # the string to send is itself canonical


# ---------------------------------------------------------------- signed headers, and flag / flag=


def with_account(issued: Any, clock: MsClock, account: str | None) -> dict[str, str]:
    """A request signed over X-Account (when ``account`` is given), which it sends too."""
    signed = sign(
        "POST",
        "/v1/orders",
        None,
        BODY,
        key=issued.token,
        secret=issued.signing_secret,
        content_type=JSON,
        timestamp_ms=clock.now * 1000,
        headers={"X-Account": account} if account is not None else None,
    )
    return {**signed, **({"X-Account": account} if account is not None else {})}


def shaped(shape: str, headers: dict[str, str]) -> dict[str, Any]:
    return rest_event(headers) if shape == "rest" else http_event(headers, "")


@pytest.mark.parametrize("shape", ["rest", "http"])
def test_a_header_the_holder_signed_cannot_be_changed_dropped_or_repeated(
    issued: Any, authorizer: Authorizer, clock: MsClock, shape: str
) -> None:
    assert reason(authorizer, shaped(shape, with_account(issued, clock, "acme"))) == "ok"
    changed = with_account(issued, clock, "acme") | {"X-Account": "other"}
    assert reason(authorizer, shaped(shape, changed)) == "bad_signature"
    dropped = with_account(issued, clock, "acme")
    del dropped["X-Account"]
    assert reason(authorizer, shaped(shape, dropped)) == "missing_signed_header"
    unlisted = with_account(issued, clock, "acme")  # the list taken off: no longer what was signed
    del unlisted["X-Ks-Signed-Headers"]
    assert reason(authorizer, shaped(shape, unlisted)) == "bad_signature"
    repeated = shaped(shape, with_account(issued, clock, "acme"))
    if shape == "rest":
        repeated["multiValueHeaders"]["X-Account"] = ["other", "acme"]
    else:
        repeated["headers"]["x-account"] = "other,acme"  # as an HTTP API joins a repeated header
    assert reason(authorizer, repeated) == "repeated_signed_header"


@pytest.mark.parametrize("shape", ["rest", "http"])
@pytest.mark.parametrize("twin", ["X_Account", "x_account", "X_ACCOUNT"])
def test_a_signed_header_has_no_underscore_twin(
    issued: Any, authorizer: Authorizer, clock: MsClock, shape: str, twin: str
) -> None:
    """WSGI and CGI backends read X_Account and X-Account as one header (HTTP_X_ACCOUNT): beside a
    signed X-Account, an unsigned twin would choose the value the backend sees."""
    headers = with_account(issued, clock, "acme") | {twin: "other"}
    assert reason(authorizer, shaped(shape, headers)) == "ambiguous_signed_header"
    unrelated = with_account(issued, clock, "acme") | {"X_Tenant": "other"}  # not a listed name
    assert reason(authorizer, shaped(shape, unrelated)) == "ok"


def test_a_signature_made_without_a_list_still_verifies_and_covers_no_other_header(
    issued: Any, authorizer: Authorizer, clock: MsClock
) -> None:
    """Backward compatible: KS2 signatures from before the list; an unlisted header is not signed,
    which is what the list is for (docs/signing.md)."""
    assert reason(authorizer, rest_event(with_account(issued, clock, None))) == "ok"
    unsigned = with_account(issued, clock, None) | {"X-Account": "other"}
    assert reason(authorizer, rest_event(unsigned)) == "ok"


def test_a_list_cannot_be_spelled_two_ways() -> None:
    from keysentry.signing import signed_header_names

    assert signed_header_names("x-account;x-tenant") == ("x-account", "x-tenant")
    for wrong in ("x-tenant;x-account", "x-account;x-account", "X-Account", "", "x-api-key", "content-type"):
        with pytest.raises(SignatureError):
            signed_header_names(wrong)


def test_the_client_signs_the_headers_it_is_told_to_and_sends_them_once() -> None:
    from keysentry.client.prepare import Signer, UnsignableRequestError, prepare

    signer = Signer("ks_test_" + "A" * 56, "s" * 43, None, ("x-account",))
    url = "https://api.example.test/v1/orders"
    sent = prepare(signer, "POST", url, [("X-Account", "acme")], BODY, clock=lambda: 1.0)
    assert sent.headers["X-Ks-Signed-Headers"] == "x-account"
    with pytest.raises(UnsignableRequestError):
        prepare(signer, "POST", url, [], BODY)  # nothing to sign: refused before it leaves
    with pytest.raises(UnsignableRequestError):
        prepare(signer, "POST", url, [("X-Account", "a"), ("x-account", "b")], BODY)


@pytest.mark.parametrize("spelling", ["flag", "flag="])
def test_flag_and_flag_equals_are_one_parameter_signed_as_flag_equals_on_both_shapes(
    issued: Any, authorizer: Authorizer, clock: MsClock, spelling: str
) -> None:
    """Every decoder (API Gateway's maps, parse_qsl, a backend's) reads both as flag with an empty
    value: the canonical form is flag=. A REST event cannot tell them apart (both "" in its maps,
    and so in its backend's); an HTTP API hands its backend the raw query, so it takes flag= only.
    The client sends flag= for either, which verifies on both shapes."""
    from keysentry.client.prepare import canonical_url

    sent_url, _, query = canonical_url(f"https://api.example.test/v1/orders?{spelling}", "")
    assert (sent_url.endswith("?flag="), query) == (True, "flag=")
    headers = headers_for(issued, clock, spelling)
    assert reason(authorizer, rest_event(headers, {"flag": [""]})) == "ok"
    assert reason(authorizer, http_event(headers_for(issued, clock, spelling), "flag=")) == "ok"
    raw = http_event(headers_for(issued, clock, spelling), spelling)
    assert reason(authorizer, raw) == ("ok" if spelling == "flag=" else "noncanonical_query")
