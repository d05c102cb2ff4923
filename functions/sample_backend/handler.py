"""A sample protected backend: answers with what keysentry's authorizer said about the caller.

Every answer to a caller whose key is rotating carries the ``Keysentry-Rotate`` notice
(:mod:`keysentry.client.notice`), from which keysentry's client collects the successor.
"""

from __future__ import annotations

import json
from typing import Any

from aws_lambda_powertools import Logger
from aws_lambda_powertools.utilities.typing import LambdaContext
from keysentry.client.notice import rotation_headers
from keysentry.signing import body_matches

logger = Logger()

_CONTEXT_KEYS = (
    "key_id",
    "owner_id",
    "scopes",
    "status",
    "env",
    "rotate_in_seconds",
    "successor",
    "signing",
    "plan",
)


@logger.inject_lambda_context(clear_state=True, log_event=False)
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    authorizer = (event.get("requestContext") or {}).get("authorizer") or {}
    if "lambda" in authorizer:  # HTTP APIs nest the context under "lambda"
        authorizer = authorizer["lambda"]
    caller = {k: v for k, v in authorizer.items() if k in _CONTEXT_KEYS or k.startswith("ctx_")}
    headers = {"Content-Type": "application/json", **rotation_headers(caller)}
    if authorizer.get("signing", "bearer") != "bearer" and not body_matches(
        event.get("body"), event.get("headers"), is_base64=bool(event.get("isBase64Encoded"))
    ):
        logger.warning("body does not match its signed digest", key_id=caller.get("key_id"))
        return {
            "statusCode": 400,
            "headers": headers,
            "body": json.dumps({"message": "the body does not match X-Ks-Content-Sha256"}),
        }
    logger.info("served", key_id=caller.get("key_id"), path=event.get("path") or event.get("rawPath"))
    return {
        "statusCode": 200,
        "headers": headers,
        "body": json.dumps({"path": event.get("path") or event.get("rawPath"), "caller": caller}),
    }
