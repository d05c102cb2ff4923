"""The demo's plans part: a key on the free plan runs out of its daily quota on an HTTP API (counted by
the usage function from the access logs), is refused, and is moved to pro.

Timed on the real clock, like the usage part: the quota's day is today's, in UTC.
"""

from __future__ import annotations

import random
import time
from typing import Any

from keysentry_dev.demo_usage import HOME, _line, live_service, owner_alerts, usage_function


def _say(text: str) -> None:
    print(f"\n== {text}", flush=True)


def _ask(token: str) -> str:
    """The authorizer's answer to an HTTP API request (payload 2.0), as ``outcome (reason)``."""
    from keysentry.authorizer import Authorizer, read_request
    from keysentry.routes import RouteTable

    service = live_service()
    authorizer = Authorizer(
        service.store,
        service.peppers,
        RouteTable.from_json('{"GET /v1/prices/*": "prices:read"}'),
        cache_ttl=0,
    )
    request = read_request(
        {
            "version": "2.0",
            "type": "REQUEST",
            "routeArn": "arn:aws:execute-api:us-east-1:123456789012:demohttp/$default/GET/v1/prices/BTC",
            "rawPath": "/v1/prices/BTC",
            "headers": {"x-api-key": token},
            "requestContext": {
                "http": {"method": "GET", "path": "/v1/prices/BTC", "sourceIp": "203.0.113.42"}
            },
        }
    )
    assert request is not None
    decision = authorizer.decide(request)
    return f"{decision.outcome.value} ({decision.reason})"


def show_quota(ctx: dict[str, Any]) -> None:
    from keysentry.cli import main as cli

    service = live_service()
    rng = random.Random(1000)  # noqa: S311 - made-up traffic, not a secret
    deliver = usage_function(ctx).deliver

    _say("Plans: a reporting key on the free plan (1,000 requests a day), on the sample HTTP API")
    issued = service.create("umbrella", actor="demo", name="reports", scopes=["prices:read"], plan="free")
    kid = issued.record.kid
    print(f"   {kid}  owner=umbrella  plan=free   first request -> {_ask(issued.token)}")

    now = int(time.time())
    day = now - now % 86_400
    times = sorted((day + rng.randrange(now - day + 1)) * 1000 for _ in range(1_000))
    lines = [(at, _line(rng, kid, at, rng.choice(HOME), n)) for n, at in enumerate(times)]
    result = deliver(lines, "quota-day")
    print(f"   today's access log lines through the usage function: {result['lines']:,} requests")
    print(f"   the next request -> {_ask(issued.token)}")
    for alert in owner_alerts(ctx, kid):
        print(f"   [{alert['severity']:<6}] {alert['type']:<15} {alert['reason']}")

    _say(f"keysentry keys show {kid}   (its plan and quota)")
    cli(["keys", "show", kid])

    _say("umbrella upgrades: keysentry keys update KID --plan pro")
    service.update(kid, actor="billing@umbrella", plan="pro")
    print(f"   {kid} is on pro (1,000,000 a month); the next request -> {_ask(issued.token)}")
