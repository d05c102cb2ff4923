"""Helpers to drive the authorizer handler with the files in events/."""

from __future__ import annotations

import json
from typing import Any

from keysentry_dev.gateway_events import iam_effect

from tests.conftest import EVENTS

EXAMPLE_TOKEN = "ks_test_EXAMPLEKEY00000000000000000000000000000000001gKwCs"


def event(name: str, token: str | None = None, **overrides: Any) -> dict[str, Any]:
    text = (EVENTS / f"{name}.json").read_text()
    if token is not None:
        text = text.replace(EXAMPLE_TOKEN, token)
    doc: dict[str, Any] = json.loads(text)
    doc.update(overrides)
    return doc


def with_source_ip(doc: dict[str, Any], ip: str) -> dict[str, Any]:
    if doc.get("version") == "2.0":
        doc["requestContext"]["http"]["sourceIp"] = ip
    else:
        doc["requestContext"]["identity"]["sourceIp"] = ip
    return doc


def allowed_resources(response: dict[str, Any]) -> list[str]:
    statements = response["policyDocument"]["Statement"]
    assert statements[0]["Effect"] == "Allow"
    return sorted(r for s in statements if s["Effect"] == "Allow" for r in s["Resource"])


def effect(response: dict[str, Any], arn: str | None = None) -> str:
    """The policy's one effect; or, given the request's ARN, what IAM decides for it."""
    statements = response["policyDocument"]["Statement"]
    if arn is not None:
        return iam_effect(response["policyDocument"], arn)
    # one statement; an Allow document adds Deny statements for what its globs must not cover
    statement, *exclusions = statements
    assert all(s["Effect"] == "Deny" for s in exclusions), statements
    return str(statement["Effect"])


def emitted_metrics(output: str) -> list[dict[str, Any]]:
    docs = []
    for line in output.splitlines():
        if line.startswith("{") and '"_aws"' in line:
            docs.append(json.loads(line))
    return docs


def install_authorizer(stack: Any, clock: Any, routes: str, monkeypatch: Any, **options: Any) -> Any:
    """An authorizer over the test stack with these RouteScopes and clock, as the handler's own."""
    from keysentry.authorizer import Authorizer
    from keysentry.peppers import PepperSource
    from keysentry.routes import RouteTable
    from keysentry.store import KeyStore

    from functions.authorizer import handler

    authorizer = Authorizer(
        KeyStore(stack.refs["KeysTable"]),
        PepperSource(stack.refs["PepperSecret"]),
        RouteTable.from_json(routes),
        clock=clock,
        **{"cache_ttl": 30, **options},
    )
    monkeypatch.setattr(handler, "_authorizer", authorizer)
    return authorizer
