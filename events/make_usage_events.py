"""Writes the usage function's events: CloudWatch Logs subscription deliveries, as Lambda receives
them (``{"awslogs": {"data": base64(gzip(json))}}``), of the sample API's access log and of the
authorizer's refusals.

    python events/make_usage_events.py      # rewrites events/usage_*.json (the same bytes every run)

The access log lines follow ``keysentry.usage.ACCESS_LOG_FORMAT`` (every value a string, "-" where API
Gateway has none); the decision lines are the authorizer's Powertools log lines that the template's
subscription filter passes (deny and unauthorized only). All in one hour: 2026-03-02 10:00 UTC.
"""

from __future__ import annotations

import base64
import gzip
import json
import random
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ACCOUNT = "123456789012"
API_ID = "a1b2c3d4e5"
STAGE = "dev"
HOUR_MS = 1_772_445_600_000  # 2026-03-02T10:00:00Z
EXAMPLE_KID = "EXAMPLEKEY00"  # the e2e example key
FUNCTION = "keysentry-AuthorizerFunction-Q2x8Lm4RtV7a"

# (minute, kid, method, resource path, path, status, source IP); kid "-": refused before a key was known
REQUESTS: list[tuple[int, str, str, str, str, int, str]] = [
    (1, EXAMPLE_KID, "GET", "/v1/prices/{symbol}", "/v1/prices/BTC", 200, "203.0.113.10"),
    (2, EXAMPLE_KID, "GET", "/v1/prices/{symbol}", "/v1/prices/ETH", 200, "203.0.113.10"),
    (4, EXAMPLE_KID, "GET", "/v1/prices/{symbol}", "/v1/prices/BTC", 200, "203.0.113.11"),
    (6, "GLOBEXKEY001", "POST", "/v1/orders", "/v1/orders", 200, "198.51.100.7"),
    (7, EXAMPLE_KID, "GET", "/v1/prices/{symbol}", "/v1/prices/SOL", 200, "203.0.113.10"),
    (9, EXAMPLE_KID, "GET", "/v1/prices/{symbol}", "/v1/prices/BTC", 200, "2001:db8:1234::17"),
    (12, "-", "GET", "/v1/prices/{symbol}", "/v1/prices/BTC", 401, "192.0.2.99"),
    (14, EXAMPLE_KID, "GET", "/v1/prices/{symbol}", "/v1/prices/XRP", 404, "203.0.113.10"),
    (17, EXAMPLE_KID, "POST", "/v1/orders", "/v1/orders", 403, "203.0.113.10"),
    (21, "GLOBEXKEY001", "POST", "/v1/orders", "/v1/orders", 200, "198.51.100.7"),
    (23, EXAMPLE_KID, "GET", "/v1/prices/{symbol}", "/v1/prices/BTC", 200, "203.0.113.12"),
    (26, EXAMPLE_KID, "GET", "/v1/prices/{symbol}", "/v1/prices/ETH", 200, "203.0.113.10"),
    (30, "INITECHKEY01", "GET", "/v1/prices/{symbol}", "/v1/prices/BTC", 200, "192.0.2.44"),
    (33, EXAMPLE_KID, "GET", "/v1/prices/{symbol}", "/v1/prices/BTC", 200, "203.0.113.10"),
    (38, EXAMPLE_KID, "GET", "/v1/prices/{symbol}", "/v1/prices/BTC", 502, "203.0.113.10"),
    (41, "GLOBEXKEY001", "POST", "/v1/orders", "/v1/orders", 403, "198.51.100.7"),
    (45, EXAMPLE_KID, "GET", "/v1/prices/{symbol}", "/v1/prices/ETH", 200, "2001:db8:1234::17"),
    (52, EXAMPLE_KID, "GET", "/v1/prices/{symbol}", "/v1/prices/BTC", 200, "203.0.113.10"),
    (58, EXAMPLE_KID, "GET", "/v1/prices/{symbol}", "/v1/prices/BTC", 200, "203.0.113.10"),
]
MALFORMED_AT_MINUTE = 35  # one line cut short, as a partial write would leave it

# (minute, outcome, reason, kid or None)
DECISIONS: list[tuple[int, str, str, str | None]] = [
    (3, "deny", "ip_not_allowed", EXAMPLE_KID),
    (5, "deny", "ip_not_allowed", EXAMPLE_KID),
    (12, "unauthorized", "missing_key", None),
    (17, "deny", "scope_missing", EXAMPLE_KID),
    (19, "unauthorized", "wrong_digest", EXAMPLE_KID),
    (27, "unauthorized", "unknown_key", "ZQ4TTW9XK2LB"),
    (41, "deny", "scope_missing", "GLOBEXKEY001"),
    (48, "deny", "ip_not_allowed", EXAMPLE_KID),
]


def _hex(rng: random.Random, n: int) -> str:
    return "".join(rng.choice("0123456789abcdef") for _ in range(n))


def _uuid(rng: random.Random) -> str:
    h = _hex(rng, 32)
    return f"{h[:8]}-{h[8:12]}-4{h[13:16]}-a{h[17:20]}-{h[20:]}"


def _event_id(rng: random.Random) -> str:
    return "".join(rng.choice("0123456789") for _ in range(56))


def access_line(rng: random.Random, at_ms: int, request: tuple[int, str, str, str, str, int, str]) -> str:
    _, kid, method, resource, path, status, source_ip = request
    fields = {
        "requestId": _uuid(rng),
        "requestTime": str(at_ms),
        "apiId": API_ID,
        "stage": STAGE,
        "keyId": kid,
        "httpMethod": method,
        "route": resource,
        "path": f"/{STAGE}{path}",
        "status": str(status),
        "sourceIp": source_ip,
        "responseLength": str(rng.randint(40, 900) if status != 401 else 26),
        "latency": str(rng.randint(18, 240)),
        "authorizerError": "Unauthorized" if status == 401 else "-",
    }
    return json.dumps(fields, separators=(",", ":"))


def decision_line(rng: random.Random, at_ms: int, decision: tuple[int, str, str, str | None]) -> str:
    _, outcome, reason, kid = decision
    seconds, ms = divmod(at_ms, 1000)
    stamp = f"2026-03-02 10:{seconds // 60 % 60:02d}:{seconds % 60:02d},{ms:03d}+0000"
    line: dict[str, Any] = {
        "level": "INFO",
        "location": "_record:59",
        "message": "decision",
        "timestamp": stamp,
        "service": "keysentry",
        "cold_start": False,
        "function_name": FUNCTION,
        "function_memory_size": "1024",
        "function_arn": f"arn:aws:lambda:us-east-1:{ACCOUNT}:function:{FUNCTION}",
        "function_request_id": _uuid(rng),
        "outcome": outcome,
        "reason": reason,
    }
    if kid is not None:  # Powertools leaves out a None value
        line["key_id"] = kid
    line["shape"] = "rest"
    line["xray_trace_id"] = f"1-{at_ms // 1000:08x}-{_hex(rng, 24)}"
    return json.dumps(line, separators=(",", ":"))


def subscription_event(
    log_group: str, log_stream: str, filter_name: str, events: list[dict[str, Any]]
) -> dict[str, Any]:
    payload = {
        "messageType": "DATA_MESSAGE",
        "owner": ACCOUNT,
        "logGroup": log_group,
        "logStream": log_stream,
        "subscriptionFilters": [filter_name],
        "logEvents": events,
    }
    data = gzip.compress(json.dumps(payload).encode(), mtime=0)
    return {"awslogs": {"data": base64.b64encode(data).decode()}}


def access_logs_event() -> dict[str, Any]:
    rng = random.Random(20260302)  # noqa: S311 - fixed example data, not a secret
    events = []
    for request in REQUESTS:
        at_ms = HOUR_MS + request[0] * 60_000 + rng.randint(0, 59_999)
        events.append({"id": _event_id(rng), "timestamp": at_ms, "message": access_line(rng, at_ms, request)})
        if request[0] < MALFORMED_AT_MINUTE <= request[0] + 3:
            cut_at = HOUR_MS + MALFORMED_AT_MINUTE * 60_000
            cut = access_line(rng, cut_at, (MALFORMED_AT_MINUTE, EXAMPLE_KID, *request[2:]))[:57]
            events.append({"id": _event_id(rng), "timestamp": cut_at, "message": cut})
    return subscription_event(
        "keysentry-SampleApiAccessLogs",  # as `keysentry local up` names it
        _hex(rng, 32),
        "keysentry-UsageFunctionAccessLogs-1GZ8XK4T0QWER",
        events,
    )


def authorizer_decisions_event() -> dict[str, Any]:
    rng = random.Random(42)  # noqa: S311 - fixed example data, not a secret
    events = []
    for decision in DECISIONS:
        at_ms = HOUR_MS + decision[0] * 60_000 + rng.randint(0, 59_999)
        events.append(
            {"id": _event_id(rng), "timestamp": at_ms, "message": decision_line(rng, at_ms, decision)}
        )
    return subscription_event(
        "keysentry-AuthorizerLogGroup",  # as `keysentry local up` names it
        f"2026/03/02/[$LATEST]{_hex(rng, 32)}",
        "keysentry-UsageFunctionAuthorizerRefusals-8MDQ2ZP1VJ0K",
        events,
    )


def main() -> None:
    for name, event in (
        ("usage_access_logs", access_logs_event()),
        ("usage_authorizer_decisions", authorizer_decisions_event()),
    ):
        (HERE / f"{name}.json").write_text(json.dumps(event, indent=2) + "\n")


if __name__ == "__main__":
    main()
