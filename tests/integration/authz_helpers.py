"""Helpers to drive the authorizer handler with the files in events/."""

from __future__ import annotations

import json
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
    (statement,) = response["policyDocument"]["Statement"]
    assert statement["Effect"] == "Allow"
    return sorted(statement["Resource"])


def effect(response: dict[str, Any]) -> str:
    (statement,) = response["policyDocument"]["Statement"]
    return str(statement["Effect"])


def emitted_metrics(output: str) -> list[dict[str, Any]]:
    docs = []
    for line in output.splitlines():
        if line.startswith("{") and '"_aws"' in line:
            docs.append(json.loads(line))
    return docs
