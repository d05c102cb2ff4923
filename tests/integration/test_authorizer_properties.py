"""Property-based: arbitrary headers and tokens never crash the authorizer and never allow.

The table holds real keys, and the route table allows every route to any valid key: only the
checks on the token itself stand between a made-up token and an Allow. Tokens that pass every
offline check (a real kid, a valid checksum) with the wrong secret exercise the digest check.
"""

from __future__ import annotations

import json
import subprocess
import sys
from typing import Any

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from keysentry import keyformat
from keysentry.authorizer import Authorizer
from keysentry.routes import RouteTable

from functions.authorizer import handler
from tests.conftest import ROOT
from tests.integration.authz_helpers import event, iam_effect

header_names = st.sampled_from(
    ["X-Api-Key", "x-api-key", "X-API-KEY", "Authorization", "authorization", "Cookie"]
)
nasty_text = st.one_of(
    st.text(max_size=200),
    st.text(
        alphabet=st.characters(min_codepoint=0xD800, max_codepoint=0xDFFF), max_size=5
    ),  # lone surrogates
    st.just("x" * 10_240),
    st.builds(lambda t: f"Bearer {t}", st.text(max_size=80)),
    st.builds(lambda a, b: f"{a},{b}", st.text(max_size=60), st.text(max_size=60)),
    st.builds(lambda: keyformat.generate("test").token),  # well-formed, unknown
    st.builds(lambda: "ks_live_" + keyformat.random_base62(50)),  # right shape, wrong checksum
)


SHAPES = ["authorizer_rest_request_valid", "authorizer_http_v2_simple", "authorizer_http_v2_iam"]
ALL_SHAPES = [*SHAPES, "authorizer_rest_token"]
secrets_ = st.text(alphabet=keyformat.ALPHABET, min_size=keyformat.SECRET_LEN, max_size=keyformat.SECRET_LEN)


def allows(response: dict[str, Any], doc: dict[str, Any]) -> bool:
    """Whether API Gateway would let this request through on this response."""
    if "isAuthorized" in response:
        return response["isAuthorized"] is True
    arn = doc.get("methodArn") or doc.get("routeArn")
    return iam_effect(response["policyDocument"], str(arn)) == "Allow"


def answer(doc: dict[str, Any], lambda_context: Any) -> dict[str, Any] | None:
    """The handler's response; None for a 401."""
    try:
        return handler.lambda_handler(doc, lambda_context)
    except Exception as error:
        assert str(error) == "Unauthorized"
        return None


def forged(real: str, secret: str) -> str:
    """A token with ``real``'s prefix and kid, ``secret`` and a valid checksum: every offline check
    passes; only the digest tells it from the real one."""
    body = real[: -(keyformat.SECRET_LEN + keyformat.CHECKSUM_LEN)] + secret
    return body + keyformat.checksum(body)


@pytest.fixture
def real_tokens(service: Any, clock: Any, monkeypatch: pytest.MonkeyPatch, lambda_context: Any) -> list[str]:
    """Live and test keys in the table, an authorizer that allows any valid key on any route, and
    proof that it does: each real token is allowed in every shape."""
    tokens = [
        service.create("prop-owner", actor="test", env=env, scopes=["prices:read"]).token
        for env in ("live", "test", "live")
    ]
    monkeypatch.setattr(
        handler,
        "_authorizer",
        Authorizer(
            service.store,
            service.peppers,
            RouteTable.from_json('{"ANY /*": ""}'),  # the most permissive route table there is
            clock=clock,
        ),
    )
    for token in tokens:
        for shape in ALL_SHAPES:
            doc = event(shape, token)
            response = answer(doc, lambda_context)
            assert response is not None and allows(response, doc), shape
    return tokens


@pytest.fixture
def prop_authorizer(real_tokens: list[str]) -> None:
    """The same authorizer, over a table of real keys."""


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(index=st.integers(0, 2), secret=secrets_, shape=st.sampled_from(ALL_SHAPES))
def test_a_real_kid_with_a_valid_checksum_and_the_wrong_secret_never_allows(
    real_tokens: list[str], lambda_context: Any, index: int, secret: str, shape: str
) -> None:
    real = real_tokens[index]
    token = forged(real, secret)
    assume(token != real)
    doc = event(shape, token)

    response = answer(doc, lambda_context)

    assert response is None or not allows(response, doc)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    index=st.integers(0, 2),
    position=st.integers(0, keyformat.SECRET_LEN - 1),
    char=st.sampled_from(keyformat.ALPHABET),
)
def test_one_changed_character_of_a_real_secret_never_allows(
    real_tokens: list[str], lambda_context: Any, index: int, position: int, char: str
) -> None:
    real = real_tokens[index]
    start = len(real) - keyformat.SECRET_LEN - keyformat.CHECKSUM_LEN
    secret = real[start : start + keyformat.SECRET_LEN]
    token = forged(real, secret[:position] + char + secret[position + 1 :])
    assume(token != real)

    for shape in ALL_SHAPES:
        doc = event(shape, token)
        response = answer(doc, lambda_context)
        assert response is None or not allows(response, doc), shape


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    headers=st.lists(st.tuples(header_names, nasty_text), max_size=6),
    multi=st.lists(st.tuples(header_names, st.lists(nasty_text, max_size=3)), max_size=3),
    shape=st.sampled_from(SHAPES),
)
def test_arbitrary_headers_never_allow_and_only_ever_say_unauthorized(
    prop_authorizer: None, lambda_context: Any, headers: list[tuple[str, str]], multi: Any, shape: str
) -> None:
    doc = event(shape)
    doc["headers"] = dict(headers)
    if "multiValueHeaders" in doc:
        doc["multiValueHeaders"] = dict(multi)
    try:
        response = handler.lambda_handler(doc, lambda_context)
    except Exception as error:
        assert str(error) == "Unauthorized"
        return
    assert response.get("isAuthorized") is not True
    if "policyDocument" in response:
        assert all(s["Effect"] == "Deny" for s in response["policyDocument"]["Statement"])


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(token=nasty_text)
def test_arbitrary_token_authorizer_input_never_allows(
    prop_authorizer: None, lambda_context: Any, token: str
) -> None:
    doc = event("authorizer_rest_token")
    doc["authorizationToken"] = token
    with pytest.raises(Exception, match=r"^Unauthorized$"):
        handler.lambda_handler(doc, lambda_context)


def test_the_bearer_path_imports_nothing_heavy() -> None:
    code = (
        "import sys, json; import functions.authorizer.handler; "
        "print(json.dumps(sorted({m.split('.')[0] for m in sys.modules})))"
    )
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)  # noqa: S603
    loaded = set(json.loads(done.stdout))
    assert not loaded & {"pydantic", "cryptography", "aws_xray_sdk", "yaml", "moto", "boto3", "s3transfer"}
