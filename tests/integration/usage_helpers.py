"""Access log and decision lines, and the CloudWatch Logs subscription events that carry them."""

from __future__ import annotations

import base64
import gzip
import importlib
import json
import sys
from collections.abc import Sequence
from types import ModuleType
from typing import Any

import pytest
from keysentry import aws

from tests.conftest import ROOT, T0

API_ID = "a1b2c3d4e5"
GROUP = "/aws/apigateway/keysentry-sample-access"
AUTHORIZER_GROUP = "/aws/lambda/keysentry-authorizer"


def access_line(
    kid: str | None,
    at_ms: int = T0 * 1000,
    *,
    status: int = 200,
    method: str = "GET",
    route: str = "/v1/prices/{symbol}",
    ip: str = "203.0.113.7",
    length: int = 120,
    latency: int = 25,
    n: int = 0,
    meter: str | None = None,
) -> str:
    """An access log line as the template's format writes it; ``meter``: the authorizer's (None: a
    line of a format without the field, held to a quota as the record says)."""
    return json.dumps(
        {
            "requestId": f"req-{kid}-{at_ms}-{n}",
            "requestTime": str(at_ms),
            "apiId": API_ID,
            "stage": "dev",
            "keyId": kid or "-",
            **({"meter": meter} if meter is not None else {}),
            "sourceIp": ip,
            "status": str(status),
            "httpMethod": method,
            "route": route,
            "responseLength": str(length),
            "latency": str(latency),
            "authorizerError": "-",
            "path": "/dev" + route.replace("{symbol}", "ACME"),  # last, as the format has it
        },
        separators=(",", ":"),
    )


def decision_line(kid: str | None, reason: str = "ip_not_allowed", outcome: str = "deny") -> str:
    return json.dumps(
        {
            "level": "INFO",
            "location": "_record:66",
            "message": "decision",
            "timestamp": "2026-11-29 10:00:00,000+0000",
            "service": "keysentry",
            "outcome": outcome,
            "reason": reason,
            "key_id": kid,
            "shape": "rest",
            "error": None,
        }
    )


def subscription_event(
    lines: Sequence[tuple[int, str]], group: str = GROUP, stream: str = "stream-1", first_id: int = 0
) -> dict[str, Any]:
    """``lines``: (timestamp ms, message). The payload CloudWatch Logs delivers to a Lambda function."""
    data = {
        "messageType": "DATA_MESSAGE",
        "owner": "123456789012",
        "logGroup": group,
        "logStream": stream,
        "subscriptionFilters": ["keysentry-usage"],
        "logEvents": [
            {"id": f"{first_id + i:056d}", "timestamp": ts, "message": message}
            for i, (ts, message) in enumerate(lines)
        ],
    }
    payload = base64.b64encode(gzip.compress(json.dumps(data).encode())).decode()
    return {"awslogs": {"data": payload}}


def usage_function(monkeypatch: pytest.MonkeyPatch) -> ModuleType:
    """functions/usage/handler.py, imported afresh as Lambda imports it (by its folder, as ``handler``)."""
    monkeypatch.syspath_prepend(str(ROOT / "functions" / "usage"))
    sys.modules.pop("handler", None)
    return importlib.import_module("handler")


def mark_exhausted(stack: Any, kid: str, until: int) -> None:
    """What the usage pipeline writes when a key used its quota: a side attribute, no new version."""
    aws.client("dynamodb").update_item(
        TableName=stack.refs["KeysTable"],
        Key={"pk": {"S": kid}, "sk": {"S": "KEY"}},
        UpdateExpression="SET quota_exhausted_until = :until",
        ExpressionAttributeValues={":until": {"N": str(until)}},
    )
