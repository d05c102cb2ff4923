"""Property-based run from the committed OpenAPI document: generated requests never get a 5xx."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.conftest import ROOT
from tests.integration.api_helpers import call

OPENAPI = json.loads((ROOT / "docs" / "openapi.json").read_text())
EVENT_FOR = {
    ("/keys", "post"): "api_create_key",
    ("/keys/{kid}", "patch"): "api_update_key",
    ("/keys/{kid}/rotate", "post"): "api_rotate_key",
    ("/keys/{kid}/suspend", "post"): "api_suspend_key",
    ("/keys/{kid}/resume", "post"): "api_resume_key",
    ("/keys/{kid}/revoke", "post"): "api_revoke_key",
    ("/self/revoke", "post"): "api_self_revoke",
}


def _resolve(schema: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in schema:
        schema = OPENAPI["components"]["schemas"][schema["$ref"].rsplit("/", 1)[1]]
    return schema


def from_openapi(schema: dict[str, Any]) -> st.SearchStrategy[Any]:
    """Values for an OpenAPI (JSON Schema) fragment: edges of each bound, and just past them."""
    schema = _resolve(schema)
    if "anyOf" in schema:
        return st.one_of([from_openapi(s) for s in schema["anyOf"]])
    if "enum" in schema:
        return st.sampled_from(schema["enum"]) | st.text(max_size=8)
    if "const" in schema:
        return st.just(schema["const"])
    kind = schema.get("type")
    if kind == "string":
        top = schema.get("maxLength", 64)
        return (
            st.text(min_size=0, max_size=min(top + 2, 600))
            | st.just("x" * (top + 1))
            | st.from_regex(
                r"\A(10\.0\.0\.0/8|2001:db8::/32|[a-z]{1,8}:[a-z]{1,8}|-----BEGIN PUBLIC KEY-----)\Z"
            )
        )
    if kind == "integer":
        low, high = schema.get("minimum", -(2**31)), schema.get("maximum", 2**31)
        return st.integers(low - 1, high + 1) | st.sampled_from([low, high])
    if kind == "boolean":
        return st.booleans()
    if kind == "null":
        return st.none()
    if kind == "array":
        return st.lists(from_openapi(schema.get("items", {})), max_size=min(schema.get("maxItems", 5) + 1, 8))
    if kind == "object" and "properties" in schema:
        properties = {name: from_openapi(sub) for name, sub in schema["properties"].items()}
        return st.fixed_dictionaries(
            {k: v for k, v in properties.items() if k in schema.get("required", [])},
            optional={k: v for k, v in properties.items() if k not in schema.get("required", [])},
        )
    if kind == "object":
        extra = schema.get("additionalProperties", {})
        return st.dictionaries(
            st.text(max_size=70), from_openapi(extra if isinstance(extra, dict) else {}), max_size=22
        )
    return st.none() | st.text(max_size=10) | st.integers()


def body_schema(path: str, method: str) -> dict[str, Any]:
    body: dict[str, Any] = OPENAPI["paths"][path][method]["requestBody"]["content"]["application/json"][
        "schema"
    ]
    return body


pytestmark = pytest.mark.usefixtures("api_service")


@pytest.fixture
def kid(service: Any) -> str:
    return str(service.create("fuzz", actor="ops", scopes=["a"]).record.kid)


@pytest.mark.parametrize("route", sorted(EVENT_FOR), ids=lambda r: f"{r[1]} {r[0]}")
def test_generated_bodies_never_get_a_5xx(route: tuple[str, str], kid: str, lambda_context: Any) -> None:
    schema_body = from_openapi(body_schema(*route))
    anything = st.recursive(
        st.none() | st.booleans() | st.integers() | st.text(max_size=20),
        lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=10), inner, max_size=3),
        max_leaves=8,
    )

    @settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck))
    @given(
        body=schema_body | anything, path_kid=st.sampled_from([kid, "AAAAAAAAAAAA", "short", "x" * 12 + "%"])
    )
    def run(body: Any, path_kid: str) -> None:
        status, payload = call(
            EVENT_FOR[route], lambda_context, kid=path_kid, body=body, headers={"Idempotency-Key": ""}
        )
        assert status < 500, payload

    run()


@settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck))
@given(raw=st.text(max_size=300))
def test_raw_garbage_bodies_never_get_a_5xx(lambda_context: Any, raw: str) -> None:
    for name in ("api_create_key", "api_leaks_github"):
        status, _ = call(name, lambda_context, raw_body=raw, headers={"Idempotency-Key": ""})
        assert status < 500
