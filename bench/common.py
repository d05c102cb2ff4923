"""What every benchmark shares: the environment, the timing loop, the sample event, the table row."""

from __future__ import annotations

import os
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]

os.environ.update(
    AWS_ACCESS_KEY_ID="testing",
    AWS_SECRET_ACCESS_KEY="testing",
    AWS_DEFAULT_REGION="us-east-1",
    AWS_ACCOUNT_ID_ENDPOINT_MODE="disabled",
    POWERTOOLS_SERVICE_NAME="keysentry",
    POWERTOOLS_METRICS_NAMESPACE="keysentry",
    POWERTOOLS_TRACE_DISABLED="true",
)
os.environ.pop("AWS_ENDPOINT_URL", None)

ROUTES = (
    '{"GET /v1/prices": "prices:read", "GET /v1/prices/*": "prices:read", "POST /v1/orders": "orders:write"}'
)
ARN = "arn:aws:execute-api:us-east-1:123456789012:a1b2c3d4e5/prod"


def per_call(fn: Callable[[], Any], *, batch: int, batches: int = 15) -> float:
    """Median seconds per call over ``batches`` batches of ``batch`` calls (after a warm-up batch)."""
    for _ in range(batch):
        fn()
    samples = []
    for _ in range(batches):
        start = time.perf_counter()
        for _ in range(batch):
            fn()
        samples.append((time.perf_counter() - start) / batch)
    return statistics.median(samples)


def rest_event(
    token: str, path: str = "/v1/prices/BTC", method: str = "GET", ip: str = "203.0.113.10"
) -> dict[str, Any]:
    return {
        "type": "REQUEST",
        "methodArn": f"{ARN}/{method}{path}",
        "httpMethod": method,
        "path": path,
        "headers": {"X-Api-Key": token, "Accept": "application/json", "User-Agent": "bench"},
        "multiValueHeaders": {"X-Api-Key": [token], "Accept": ["application/json"], "User-Agent": ["bench"]},
        "requestContext": {"identity": {"sourceIp": ip}},
    }


class Context:
    function_name = "bench"
    memory_limit_in_mb = 1024
    invoked_function_arn = "arn:aws:lambda:us-east-1:123456789012:function:bench"
    aws_request_id = "bench"

    def get_remaining_time_in_millis(self) -> int:
        return 900_000


def row(figure: str, value_s: float, floor_s: float, budget: float | None, note: str) -> dict[str, Any]:
    ratio = value_s / floor_s if floor_s else None
    return {
        "figure": figure,
        "value_us": round(value_s * 1e6, 2),
        "floor_us": round(floor_s * 1e6, 2),
        "ratio": round(ratio, 2) if ratio is not None else None,
        "budget": f"<= {budget}x" if budget else "report",
        "met": (ratio <= budget) if (budget and ratio is not None) else None,
        "note": note,
    }
