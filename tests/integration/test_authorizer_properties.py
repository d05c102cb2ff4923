"""Property-based: arbitrary headers and tokens never crash the authorizer and never allow."""

from __future__ import annotations

import json
import subprocess
import sys
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from keysentry import keyformat
from keysentry.authorizer import Authorizer
from keysentry.peppers import PepperSource
from keysentry.routes import RouteTable
from keysentry.store import KeyStore

from functions.authorizer import handler
from tests.conftest import ROOT
from tests.integration.authz_helpers import event

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


@pytest.fixture
def prop_authorizer(stack: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(
        handler,
        "_authorizer",
        Authorizer(
            KeyStore(stack.refs["KeysTable"]),
            PepperSource(stack.refs["PepperSecret"]),
            RouteTable.from_json('{"ANY /*": ""}'),  # the most permissive route table there is
        ),
    )


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    headers=st.lists(st.tuples(header_names, nasty_text), max_size=6),
    multi=st.lists(st.tuples(header_names, st.lists(nasty_text, max_size=3)), max_size=3),
    shape=st.sampled_from(
        ["authorizer_rest_request_valid", "authorizer_http_v2_simple", "authorizer_http_v2_iam"]
    ),
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
