"""How many requests past its quota a key gets through on an HTTP API, measured with fake clocks.

A client calls at a steady rate. Each request's access log line reaches the usage function after the
log delivery delay (CloudWatch Logs delivers each second's lines in one batch); the usage function
(the real handler, in moto) marks the key once the day's count reaches the quota. An authorizer
container keeps the key's record for its TTL (the authorizer's own RecordCache) and refuses while
``quota_exhausted_until`` is ahead of the clock; the sample HTTP API caches no authorizer answer. So
the requests past the quota are at most rate x (delivery delay + one second of batching + TTL):
docs/plans.md, "HTTP APIs: quotas from the usage pipeline".
"""

from __future__ import annotations

import json
import math
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from keysentry import aws

from tests.conftest import T0
from tests.integration.usage_helpers import access_line, subscription_event, usage_function

DAY = 86_400
START = T0 - T0 % DAY + 3600  # 01:00 UTC: the whole run is in one day
LIMIT = 40


@dataclass
class Clock:
    now: float = START

    def __call__(self) -> float:
        return self.now


@dataclass
class Run:
    allowed: int = 0
    refused_at: float | None = None
    lines: list[tuple[float, str]] = field(default_factory=list)


@pytest.fixture
def deliver(stack: Any, lambda_context: Any, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    from keysentry.settings import UsageSettings

    plans = {
        "tiny": {"rate": 5, "burst": 10, "quota": {"limit": LIMIT, "period": "DAY"}},
        "open": {"rate": 5, "burst": 10},
    }
    monkeypatch.setenv("PLANS", json.dumps(plans))
    monkeypatch.setenv("DEFAULT_PLAN", "open")
    handler = usage_function(monkeypatch)
    streams = iter(range(100_000))

    def send(lines: list[tuple[float, str]], clock: Clock) -> None:
        event = subscription_event([(int(t * 1000), m) for t, m in lines], stream=f"s-{next(streams)}")
        meter = handler.metering(UsageSettings.load(), lambda_context.get_remaining_time_in_millis, clock)
        handler.lambda_handler(event, lambda_context, meter=meter)

    yield send
    sys.modules.pop("handler", None)


def tiny_key(service: Any, stack: Any) -> str:
    kid: str = service.create("acme", actor="ops").record.kid
    aws.client("dynamodb").update_item(
        TableName=stack.refs["KeysTable"],
        Key={"pk": {"S": kid}, "sk": {"S": "KEY"}},
        UpdateExpression="SET #p = :p",
        ExpressionAttributeNames={"#p": "plan"},
        ExpressionAttributeValues={":p": {"S": "tiny"}},
    )
    return kid


def simulate(
    stack: Any,
    deliver: Any,
    kid: str,
    *,
    rate: float,
    delay: float,
    ttl: float,
    phase: float = 0.0,
    start: float = START,
) -> Run:
    """Requests at ``rate`` per second from ``start`` until the key is refused. ``phase``: how long
    before the first request the container last read the record (0: it reads it at the first)."""
    from keysentry.authorizer.cache import RecordCache
    from keysentry.store import KeyStore

    store, cache, clock, run = KeyStore(stack.refs["KeysTable"]), RecordCache(ttl), Clock(start), Run()
    cache.put(store.get(kid), start - phase)
    pending: list[tuple[float, str]] = []
    next_tick = start + 1.0
    for i in range(100_000):
        clock.now = start + i / rate
        while next_tick <= clock.now:  # each second, the lines logged at least `delay` ago
            due = [line for line in pending if line[0] <= next_tick - delay]
            if due:
                pending = pending[len(due) :]
                deliver(due, Clock(next_tick))
            next_tick += 1.0
        entry = cache.get(kid, clock.now) or cache.put(store.get(kid), clock.now)
        until = entry.record.quota_exhausted_until
        if until is not None and until > clock.now:  # the authorizer's quota_exceeded
            run.refused_at = clock.now
            return run
        run.allowed += 1
        pending.append((clock.now, access_line(kid, int(clock.now * 1000), n=i)))
    raise AssertionError("never refused")


@pytest.mark.parametrize(
    ("rate", "delay", "ttl"),
    [(2.0, 5.0, 30.0), (10.0, 10.0, 30.0), (5.0, 20.0, 0.0)],
)
def test_requests_past_the_quota_stay_within_rate_times_delivery_delay_plus_ttl(
    service: Any, stack: Any, deliver: Any, rate: float, delay: float, ttl: float
) -> None:
    bound = math.ceil(rate * (delay + 1 + ttl))
    # the worst case: the container reads the record with the last request before the mark
    mark = START + math.ceil((LIMIT - 1) / rate + delay)
    worst_phase = (START - (mark - 1 / rate)) % ttl if ttl else 0.0
    measured = []
    for phase in (0.0, ttl / 2, worst_phase) if ttl else (0.0,):
        kid = tiny_key(service, stack)
        run = simulate(stack, deliver, kid, rate=rate, delay=delay, ttl=ttl, phase=phase)
        past = run.allowed - LIMIT
        assert rate * delay <= past <= bound, (phase, past, bound)
        measured.append(past)
    assert measured[-1] >= rate * (delay + ttl) - rate  # the bound is reached, within a second's requests


def test_the_key_is_allowed_again_in_the_next_period_and_counted_afresh(
    service: Any, stack: Any, deliver: Any
) -> None:
    from keysentry.store import KeyStore

    kid = tiny_key(service, stack)
    first = simulate(stack, deliver, kid, rate=4.0, delay=5.0, ttl=10.0)
    midnight = START - 3600 + DAY
    assert (
        first.refused_at is not None
        and KeyStore(stack.refs["KeysTable"]).get(kid).quota_exhausted_until == midnight
    )

    # the next day, the same container (its record read the day before): allowed, held to the quota again
    second = simulate(stack, deliver, kid, rate=4.0, delay=5.0, ttl=10.0, phase=DAY - 3600, start=midnight)
    assert first.allowed - LIMIT <= second.allowed - LIMIT <= 4 * (5 + 1 + 10)
    assert KeyStore(stack.refs["KeysTable"]).get(kid).quota_exhausted_until == midnight + DAY
