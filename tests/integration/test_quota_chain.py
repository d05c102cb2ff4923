"""Rotating is no way to a fresh quota: a key's successors count against the quota it started.

The property a key holder meets, end to end: requests go through the authorizer (its response is what
API Gateway writes into the access log as ``$context.authorizer.*``), their access log lines reach the
usage function, and a holder who rotates itself (``keys:rotate-self``) before it is refused is refused
once the chain's requests reach the quota, the predecessor in its grace window and the successor alike.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from typing import Any

import pytest
from keysentry import aws

from tests.conftest import T0, FakeClock, Monotonic
from tests.integration.authz_helpers import emitted_metrics, event, install_authorizer
from tests.integration.usage_helpers import access_line, subscription_event, usage_function

ROUTES = '{"GET /v1/prices": "prices:read", "GET /v1/prices/*": "prices:read"}'
DAY = 86_400
PERIOD_END = T0 - T0 % DAY + DAY
PLANS = {
    "tiny": {"rate": 5, "burst": 10, "quota": {"limit": 10, "period": "DAY"}},
    "roomy": {"rate": 5, "burst": 10, "quota": {"limit": 1000, "period": "DAY"}},
    "open": {"rate": 5, "burst": 10},
}
SCOPES = ["prices:read", "keys:rotate-self"]


@pytest.fixture
def gateway(
    stack: Any,
    clock: FakeClock,
    mono: Monotonic,
    lambda_context: Any,
    capfd: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> Iterator[Any]:
    """Call the API with a key: the authorizer decides, and an allowed request's access line (as the
    template's format renders the authorizer's context) is kept for the next delivery."""
    from keysentry.plans import Plans
    from keysentry.settings import UsageSettings

    from functions.authorizer import handler as authorizer_handler

    monkeypatch.setenv("PLANS", json.dumps(PLANS))
    monkeypatch.setenv("DEFAULT_PLAN", "open")
    metered = Plans.from_json(json.dumps(PLANS), "open").metered
    authorizer = install_authorizer(
        stack, clock, ROUTES, monkeypatch, monotonic=mono, default_plan="open", metered_plans=metered
    )
    usage = usage_function(monkeypatch)
    pending: list[tuple[int, str]] = []
    streams = iter(range(1_000))

    def call(token: str, n: int) -> str | None:
        """The request's refusal reason, or None when allowed (its line then waits for delivery)."""
        capfd.readouterr()
        response = authorizer_handler.lambda_handler(
            event("authorizer_rest_request_valid", token), lambda_context
        )
        context = response.get("context", {})
        if response["policyDocument"]["Statement"][0]["Effect"] != "Allow":
            (decision,) = emitted_metrics(capfd.readouterr().out)
            return str(decision["reason"])
        line = access_line(context["key_id"], int(clock.now) * 1000, n=n, meter=context["meter"] or "-")
        pending.append((int(clock.now), line))
        return None

    def deliver() -> None:
        lines = [(t * 1000, m) for t, m in pending]
        pending.clear()
        meter = usage.metering(UsageSettings.load(), lambda_context.get_remaining_time_in_millis, clock)
        usage.lambda_handler(
            subscription_event(lines, stream=f"s-{next(streams)}"), lambda_context, meter=meter
        )
        mono.now += authorizer.cache.ttl  # the containers read the records again

    call.deliver = deliver  # type: ignore[attr-defined]
    call.pending = pending  # type: ignore[attr-defined]
    yield call
    sys.modules.pop("handler", None)


def test_a_holder_that_rotates_itself_before_its_quota_is_refused_when_the_chain_reaches_it(
    gateway: Any, service: Any
) -> None:
    first = service.create("acme", actor="ops", plan="tiny", scopes=SCOPES)
    assert [gateway(first.token, n) for n in range(6)] == [None] * 6
    gateway.deliver()

    second = service.rotate_self(first.record.kid)  # 6 used: the holder tries for a fresh count
    third = service.rotate_self(second.record.kid)  # and again, from the successor
    assert [gateway(second.token, 100 + n) for n in range(2)] == [None, None]
    assert [gateway(third.token, 200 + n) for n in range(2)] == [None, None]
    gateway.deliver()

    # 10 requests across the chain: every key of it is refused, the predecessors in their grace too
    for n, token in enumerate((first.token, second.token, third.token)):
        assert gateway(token, 300 + n) == "quota_exceeded"
    assert service.view(third.record.kid)["quota"]["used"] == 10
    assert service.view(first.record.kid)["quota"]["used"] == 10


def test_a_keys_own_usage_is_still_its_own_and_the_count_is_written_only_for_a_quota(
    gateway: Any, service: Any, stack: Any
) -> None:
    metered = service.create("acme", actor="ops", plan="tiny", scopes=SCOPES)
    open_key = service.create("acme", actor="ops", plan="open", scopes=SCOPES)
    metered_next = service.rotate_self(metered.record.kid)
    open_next = service.rotate_self(open_key.record.kid)
    for n in range(3):
        gateway(metered_next.token, n)
        gateway(open_next.token, 10 + n)
    gateway.deliver()

    assert service.usage(metered_next.record.kid)["requests"] == 3  # its own requests
    assert service.usage(metered.record.kid)["requests"] == 0  # not its successor's
    items = aws.client("dynamodb").scan(TableName=stack.refs["UsageTable"])["Items"]
    chained = {item["pk"]["S"][2:] for item in items if "chained" in item}
    assert chained == {metered.record.kid}  # the open plan's chain costs no write


def test_a_quota_counts_afresh_for_a_new_key_of_the_same_owner(gateway: Any, service: Any) -> None:
    """Only rotation shares a count: a key its owner issues anew is metered on its own."""
    spent = service.create("acme", actor="ops", plan="tiny", scopes=SCOPES)
    for n in range(10):
        gateway(spent.token, n)
    gateway.deliver()
    fresh = service.create("acme", actor="ops", plan="tiny", scopes=SCOPES)
    assert gateway(spent.token, 100) == "quota_exceeded"
    assert gateway(fresh.token, 101) is None


def test_every_live_key_of_a_long_chain_is_refused_once_the_chain_reaches_its_quota(
    gateway: Any, service: Any
) -> None:
    keys = [service.create("acme", actor="ops", plan="tiny", scopes=SCOPES)]
    for _ in range(20):  # every predecessor stays in its grace window
        keys.append(service.rotate_self(keys[-1].record.kid))
    service.suspend(keys[10].record.kid, actor="ops", reason="check")  # 10 and later: suspended,
    service.resume(keys[-1].record.kid, actor="ops")  # the newest resumed (its owner's false alarm)
    assert [gateway(keys[-1].token, n) for n in range(10)] == [None] * 10
    gateway.deliver()

    records = [service.get(k.record.kid) for k in keys]
    assert all(
        r.quota_exhausted_until is not None for r in records
    )  # suspended ones too: no window on resume
    usable = [k for k, r in zip(keys, records, strict=True) if str(r.status) != "suspended"]
    assert len(usable) == 11
    assert {gateway(k.token, 100 + n) for n, k in enumerate(usable)} == {"quota_exceeded"}


def test_a_busy_key_below_its_plans_quota_costs_one_record_read_per_batch_however_long_its_chain(
    gateway: Any, service: Any, stack: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Past the smallest quota (tiny's 10) the record is read; the chain only once the key is over."""
    from keysentry.store import KeyStore

    keys = [service.create("acme", actor="ops", plan="roomy", scopes=SCOPES)]
    for _ in range(5):
        keys.append(service.rotate_self(keys[-1].record.kid))
    reads: list[str] = []
    read = KeyStore.get

    def counted(store: KeyStore, kid: str) -> Any:
        reads.append(kid)
        return read(store, kid)

    monkeypatch.setattr(KeyStore, "get", counted)
    for batch in range(3):
        for n in range(20):
            gateway(keys[-1].token, batch * 100 + n)
        gateway.deliver()
    assert reads == [keys[-1].record.kid] * 3


@pytest.mark.parametrize("escaped", [True, False])
def test_a_holders_quote_in_the_path_does_not_take_its_requests_out_of_the_count(
    gateway: Any, service: Any, clock: FakeClock, escaped: bool
) -> None:
    """Should a gateway write a caller's quote into the path field (the authorizer refuses such
    paths; this is the line's side), the request still counts under the key the line starts with."""
    issued = service.create("acme", actor="ops", plan="tiny", scopes=SCOPES)
    kid = issued.record.kid
    for n in range(10):
        line = json.loads(access_line(kid, int(clock.now) * 1000, n=n, meter=kid))
        line["path"] = '/dev/v1/prices/A":B'
        text = json.dumps(line, separators=(",", ":"))
        if not escaped:
            text = text.replace('A\\":B', 'A":B')
        gateway.pending.append((int(clock.now), text))
    gateway.deliver()
    assert gateway(issued.token, 100) == "quota_exceeded"
    assert service.usage(kid)["requests"] == 10
