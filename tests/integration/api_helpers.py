"""Drive the management API handler with the files in events/."""

from __future__ import annotations

import contextlib
import json
from typing import Any

from functions.api import handler
from tests.conftest import EVENTS

EXAMPLE_KID = "EXAMPLEKEY00"


def call(
    name: str,
    lambda_context: Any,
    *,
    kid: str | None = None,
    body: Any = ...,
    headers: dict[str, str] | None = None,
    query: dict[str, str] | None = None,
    raw_body: str | None = None,
    authorizer: dict[str, Any] | None = None,
) -> tuple[int, Any]:
    text = (EVENTS / f"{name}.json").read_text()
    if kid is not None:
        text = text.replace(EXAMPLE_KID, kid)
    event = json.loads(text)
    if body is not ...:
        event["body"] = None if body is None else json.dumps(body)
    if raw_body is not None:
        event["body"] = raw_body
    if headers is not None:
        event["headers"] = {**event["headers"], **headers}
        event["multiValueHeaders"] = {k: [v] for k, v in event["headers"].items()}
    if query is not None:
        event["queryStringParameters"] = query
        event["multiValueQueryStringParameters"] = {k: [v] for k, v in query.items()}
    if authorizer is not None:  # what the authorizer put in the request's context
        event["requestContext"]["authorizer"] = authorizer
    response = handler.lambda_handler(event, lambda_context)
    payload = response.get("body")
    with contextlib.suppress(ValueError):
        payload = json.loads(payload) if payload else None
    return int(response["statusCode"]), payload
