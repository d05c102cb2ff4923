"""The usage function: how fast a batch of access log lines is folded, next to json.loads alone, and
how many DynamoDB writes a batch costs."""

from __future__ import annotations

import json
import os
import random
import statistics
import time
from typing import Any

LINES = 10_000
KEYS = 50


def access_lines(count: int = LINES, keys: int = KEYS, seed: int = 7) -> list[tuple[int, str]]:
    """Realistic access log lines: 50 keys, a few routes and statuses, a few hundred client addresses."""
    rng = random.Random(seed)
    start = 1_790_000_000_000 - 1_790_000_000_000 % 3_600_000
    routes = [("GET", "/v1/prices/{symbol}"), ("GET", "/v1/prices"), ("POST", "/v1/orders")]
    lines = []
    for i in range(count):
        method, route = rng.choice(routes)
        at = start + i * 300
        line = {
            "requestId": f"{rng.getrandbits(64):016x}-{i}",
            "requestTime": str(at),
            "apiId": "a1b2c3d4e5",
            "stage": "prod",
            "keyId": (kid := f"KEY{rng.randrange(keys):09d}"),
            "httpMethod": method,
            "route": route,
            "path": "/prod" + route.replace("{symbol}", "ACME"),
            "status": rng.choice(["200", "200", "200", "201", "404", "429", "500"]),
            "sourceIp": f"198.51.{rng.randrange(8)}.{rng.randrange(1, 250)}",
            "responseLength": str(rng.randrange(100, 5000)),
            "latency": str(rng.randrange(5, 300)),
            "authorizerError": "-",
            "meter": kid,  # a plan with a quota, the first key of its chain
        }
        lines.append((at, json.dumps(line, separators=(",", ":"))))
    return lines


def _cpu_per_line(fn: Any, lines: list[tuple[int, str]], repeats: int = 9) -> float:
    fn(lines)  # warm-up
    samples = []
    for _ in range(repeats):
        start = time.process_time()
        fn(lines)
        samples.append((time.process_time() - start) / len(lines))
    return statistics.median(samples)


def _aggregate(lines: list[tuple[int, str]]) -> Any:
    from keysentry.usage import Batch

    batch = Batch()
    for at, message in lines:
        batch.add_line(message, at)
    return batch


def _parse_only(lines: list[tuple[int, str]]) -> None:
    for _, message in lines:
        json.loads(message)


def aggregation_row(lines: list[tuple[int, str]]) -> dict[str, Any]:
    from bench.common import row

    # side by side, alternating, so both see the same machine
    value, floor = [], []
    for _ in range(5):
        value.append(_cpu_per_line(_aggregate, lines))
        floor.append(_cpu_per_line(_parse_only, lines))
    value_s, floor_s = statistics.median(value), statistics.median(floor)
    figure = row(
        f"usage: fold {len(lines):,} access log lines, per line (CPU)",
        value_s,
        floor_s,
        3.0,
        f"floor: json.loads of the same lines; {1 / value_s:,.0f} lines per CPU second",
    )
    return figure


def writes_row(lines: list[tuple[int, str]]) -> dict[str, Any]:
    """One batch through the metering use case on moto, counting the item writes DynamoDB is sent."""
    from keysentry import aws
    from keysentry.metering import Metering, batch_id
    from keysentry.store.usage import UsageTable

    table = os.environ["USAGE_TABLE"]
    sent = {"updates": 0, "puts": 0, "calls": 0}

    def count(params: dict[str, Any], **_: Any) -> None:
        sent["calls"] += 1
        for action in params.get("TransactItems", []):
            sent["updates"] += "Update" in action
            sent["puts"] += "Put" in action

    client = aws.client("dynamodb")
    client.meta.events.register("provide-client-params.dynamodb.TransactWriteItems", count)
    outcome = Metering(UsageTable(table, client)).record(
        batch_id("bench", "s", ["1"]), _aggregate(lines), len(lines)
    )
    client.meta.events.unregister("provide-client-params.dynamodb.TransactWriteItems", count)
    return {
        "figure": f"usage: DynamoDB item writes per {len(lines):,} lines, {KEYS} keys",
        "value_us": None,
        "floor_us": None,
        "ratio": None,
        "budget": f"<= {KEYS} hourly + {KEYS} daily + markers",
        "met": sent["updates"] <= 2 * KEYS and outcome.writes == sent["updates"],
        "note": (
            f"updates {sent['updates']} (hourly + daily), markers {sent['puts']} (one per transaction of"
            f" up to 99 updates), TransactWriteItems calls {sent['calls']}"
        ),
    }


def usage_figures(rows: list[dict[str, Any]]) -> None:
    lines = access_lines()
    rows.append(aggregation_row(lines))
    rows.append(writes_row(lines))
