"""Helpers to drive the authorizer handler with the files in events/."""

from __future__ import annotations

import json
import re
from functools import lru_cache
from typing import Any

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


@lru_cache(maxsize=4096)
def _arn_pattern(resource: str) -> re.Pattern[str]:
    # execute-api ARN matching: "*" matches any run of characters, "/" included; "?" one character
    return re.compile("".join(".*" if c == "*" else "." if c == "?" else re.escape(c) for c in resource))


def iam_effect(document: dict[str, Any], arn: str) -> str:
    """Evaluate a policy document as IAM does: an explicit Deny wins, then an Allow, else Deny."""
    effects = {
        s["Effect"]
        for s in document["Statement"]
        if s["Action"] == "execute-api:Invoke" and any(_arn_pattern(r).fullmatch(arn) for r in s["Resource"])
    }
    return "Allow" if effects == {"Allow"} else "Deny"


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
