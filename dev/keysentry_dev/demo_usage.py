"""The demo's usage part: a week of a key's traffic as API Gateway's access logs, delivered to the usage
function as CloudWatch Logs subscriptions deliver them, then ``keysentry keys usage`` with its chart,
and the alerts a stolen copy of the key raises.

Traffic is timed on the real clock (the usage function and the CLI read it), ending in the current hour.
"""

from __future__ import annotations

import base64
import contextlib
import gzip
import importlib.util
import io
import json
import random
import time
from pathlib import Path
from types import ModuleType
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
HOUR = 3600
ROUTES = (("GET", "/v1/prices/{symbol}"), ("GET", "/v1/prices"))
HOME = ("203.0.113.42", "203.0.113.7", "2001:db8:1::42")  # the consumer's office, and its IPv6 prefix
STOLEN_FROM = "192.0.2."  # somewhere the key has never been used from


def _say(text: str) -> None:
    print(f"\n== {text}", flush=True)


def _usage_handler() -> ModuleType:
    """functions/usage/handler.py, loaded as Lambda loads it (by file, not as a package module)."""
    spec = importlib.util.spec_from_file_location(
        "usage_handler", ROOT / "functions" / "usage" / "handler.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


class _Context:
    function_name = "keysentry-UsageFunction"
    memory_limit_in_mb = 512
    invoked_function_arn = "arn:aws:lambda:us-east-1:123456789012:function:keysentry-UsageFunction"
    aws_request_id = "demo"

    def get_remaining_time_in_millis(self) -> int:
        return 60_000


def _line(rng: random.Random, kid: str, at_ms: int, ip: str, n: int) -> str:
    method, route = rng.choice(ROUTES)
    return json.dumps(
        {
            "requestId": f"demo-{at_ms}-{n}",
            "requestTime": str(at_ms),
            "apiId": "a1b2c3d4e5",
            "stage": "prod",
            "keyId": kid,
            "httpMethod": method,
            "route": route,
            "path": "/prod" + route.replace("{symbol}", rng.choice(["BTC", "ETH", "SOL"])),
            "status": rng.choice(["200"] * 18 + ["404", "429"]),
            "sourceIp": ip,
            "responseLength": str(rng.randrange(200, 2000)),
            "latency": str(rng.randrange(8, 90)),
            "authorizerError": "-",
        },
        separators=(",", ":"),
    )


def _delivery(lines: list[tuple[int, str]], stream: str) -> dict[str, Any]:
    data = {
        "messageType": "DATA_MESSAGE",
        "owner": "123456789012",
        "logGroup": "/aws/apigateway/keysentry-prod-sample",
        "logStream": stream,
        "subscriptionFilters": ["keysentry-usage"],
        "logEvents": [
            {"id": f"{stream}-{i}", "timestamp": at, "message": m} for i, (at, m) in enumerate(lines)
        ],
    }
    return {"awslogs": {"data": base64.b64encode(gzip.compress(json.dumps(data).encode())).decode()}}


def _steady_day(rng: random.Random, kid: str, day_start: int) -> list[tuple[int, str]]:
    """A working day's traffic: more in office hours, from the consumer's own networks."""
    lines = []
    for hour in range(24):
        busy = 40 if 8 <= hour < 18 else 12
        for n in range(rng.randrange(busy // 2, busy)):
            at = (day_start + hour * HOUR + rng.randrange(HOUR)) * 1000
            lines.append((at, _line(rng, kid, at, rng.choice(HOME), n)))
    return lines


def _alerts(queue_url: str) -> list[dict[str, Any]]:
    from keysentry import aws

    sqs = aws.client("sqs")
    found: list[dict[str, Any]] = []
    while True:
        messages = sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10).get("Messages", [])
        if not messages:
            return found
        for message in messages:
            found.append(json.loads(json.loads(message["Body"])["Message"]))
            sqs.delete_message(QueueUrl=queue_url, ReceiptHandle=message["ReceiptHandle"])


def _listen(topic_arn: str) -> str:
    """An SQS queue subscribed to the alerts topic: what an owner's subscriber would receive."""
    from keysentry import aws

    sqs = aws.client("sqs")
    url = sqs.create_queue(QueueName="demo-usage-alerts")["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    aws.client("sns").subscribe(TopicArn=topic_arn, Protocol="sqs", Endpoint=arn)
    return url


class UsageFunction:
    """The usage function, fed as CloudWatch Logs feeds it; its own log lines and metrics are
    CloudWatch's, not the demo's, so they are kept out of its output."""

    def __init__(self) -> None:
        self.quiet = io.StringIO()
        with contextlib.redirect_stdout(self.quiet):
            self.handler, self.context = _usage_handler(), _Context()

    def deliver(self, lines: list[tuple[int, str]], stream: str) -> dict[str, Any]:
        with contextlib.redirect_stdout(self.quiet):
            result: dict[str, Any] = self.handler.lambda_handler(_delivery(lines, stream), self.context)
        return result


def usage_function(ctx: dict[str, Any]) -> UsageFunction:
    if "usage_function" not in ctx:
        ctx["usage_function"] = UsageFunction()
        ctx["alerts_queue"] = _listen(ctx["stack"].refs["AlertsTopic"])
    function: UsageFunction = ctx["usage_function"]
    return function


def owner_alerts(ctx: dict[str, Any], kid: str) -> list[dict[str, Any]]:
    """The alerts the owner's subscriber received for ``kid`` since the last look."""
    return [alert for alert in _alerts(ctx["alerts_queue"]) if alert.get("kid") == kid]


def live_service() -> Any:
    """The key service on the real clock (the lifecycle part of the demo moved its own clock on)."""
    from keysentry.service import KeyService
    from keysentry.settings import Settings

    return KeyService.from_settings(Settings.from_env())


def show_usage(ctx: dict[str, Any]) -> None:
    from keysentry.cli import main as cli

    service = live_service()
    rng = random.Random(20261129)  # noqa: S311 - made-up traffic, not a secret
    deliver = usage_function(ctx).deliver

    _say("Usage: a dashboard key, opted in to suspension on anomaly ('disable it first')")
    kid = service.create(
        "initech", actor="demo", name="dashboard", scopes=["prices:read"], suspend_on_anomaly=True
    ).record.kid
    print(f"   {kid}  owner=initech  suspend_on_anomaly=true")

    now = int(time.time())
    this_hour = now - now % HOUR
    first_day = this_hour - this_hour % 86_400 - 7 * 86_400
    total = 0
    for day in range(8):  # a week of history, then today up to this hour
        lines = [
            (at, m) for at, m in _steady_day(rng, kid, first_day + day * 86_400) if at < this_hour * 1000
        ]
        total += len(lines)
        deliver(lines, f"day-{day}")
    print(f"   8 days of access log lines, one subscription delivery a day: {total:,} requests")

    times = sorted((this_hour + rng.randrange(now - this_hour + 1)) * 1000 for _ in range(2_500))
    burst = [
        (at, _line(rng, kid, at, f"{STOLEN_FROM}{rng.randrange(2, 250)}", n)) for n, at in enumerate(times)
    ]
    result = deliver(burst, "this-hour")
    print(
        f"   this hour: {result['lines']:,} requests from {STOLEN_FROM}0/24 in one delivery ->"
        f" {result['writes']} counter writes, {result['anomalies']} anomalies"
    )
    again = deliver(burst, "this-hour")
    print(
        f"   the same delivery again (at-least-once): {again['writes']} writes, {again['anomalies']} new anomalies"
    )

    _say(f"keysentry keys usage {kid} --hours 24")
    cli(["keys", "usage", kid, "--hours", "24"])

    _say("What the owner's alert subscriber received")
    for alert in owner_alerts(ctx, kid):
        print(
            f"   [{alert['severity']:<6}] {alert['type']:<18} suspended={alert['suspended']!s:<5}  {alert['reason']}"
        )
    print(
        f"   {kid} is now {service.get(kid).status} (audited, and alerted as 'suspended' by the alerts function)"
    )
