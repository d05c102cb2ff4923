"""The examples' backend: your API's own code, behind keysentry's authorizer.

It imports nothing of keysentry: API Gateway has already decided, and hands the backend the
authorizer's context (REST: ``requestContext.authorizer``; HTTP API payload 2.0:
``requestContext.authorizer.lambda``). The key itself never reaches the backend's answer.
"""

from __future__ import annotations

import json
from typing import Any

CALLER_FIELDS = ("key_id", "owner_id", "scopes", "plan")


def lambda_handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    request = event.get("requestContext") or {}
    authorizer = request.get("authorizer") or {}
    authorizer = authorizer.get("lambda", authorizer)  # HTTP APIs nest the context under "lambda"
    caller = {name: authorizer[name] for name in CALLER_FIELDS if name in authorizer}
    route = event.get("routeKey") or f"{event.get('httpMethod')} {event.get('resource')}"
    return {
        "statusCode": 200,
        "headers": {"Content-Type": "application/json"},
        "body": json.dumps({"route": route, "caller": caller}),
    }
