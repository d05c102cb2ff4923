"""The usage function over moto: a subscription batch becomes hourly and daily counters per key,
once, whatever is redelivered, malformed or keyless, with one write per key and period."""

from __future__ import annotations

import json
import random
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from keysentry import aws
from keysentry.store.usage import STORED, UsageTable, decode, hour_sk

from tests.conftest import T0, all_items
from tests.integration.usage_helpers import (
    API_ID,
    AUTHORIZER_GROUP,
    access_line,
    decision_line,
    subscription_event,
    usage_function,
)

HOUR_MS = 3_600_000


@pytest.fixture
def usage_handler(stack: Any, monkeypatch: pytest.MonkeyPatch) -> Any:
    return usage_function(monkeypatch)


def _run(handler: Any, ctx: Any, event: dict[str, Any]) -> dict[str, Any]:
    result: dict[str, Any] = handler.lambda_handler(event, ctx)
    return result


def _counters(stack: Any) -> dict[tuple[str, str], Any]:
    items = all_items(stack.refs["UsageTable"])
    return {(i["pk"]["S"], i["sk"]["S"]): decode(i) for i in items if not i["pk"]["S"].startswith("b#")}


def test_a_batch_counts_each_key_by_hour_and_day(usage_handler: Any, lambda_context: Any, stack: Any) -> None:
    t = T0 * 1000
    lines = [(t, access_line("KIDAAAAAAAA1", t, n=i)) for i in range(3)]
    lines += [(t, access_line("KIDAAAAAAAA1", t, status=404, route="/v1/orders", method="POST", n=9))]
    lines += [(t + HOUR_MS, access_line("KIDBBBBBBBB2", t + HOUR_MS, ip="2001:db8:1:2::9"))]
    result = _run(usage_handler, lambda_context, subscription_event(lines))
    assert result["lines"] == 5 and result["unreadable"] == 0 and result["keys"] == 2
    counters = _counters(stack)
    hour = counters[("k#KIDAAAAAAAA1", hour_sk(T0 - T0 % 3600))]
    assert hour.requests == 4 and hour.by_status == {"2xx": 3, "4xx": 1}
    assert hour.by_route == {"GET /v1/prices/{symbol}": 3, "POST /v1/orders": 1}
    assert hour.networks == {"203.0.113.0/24": 4} and hour.bytes == 480 and hour.latency_ms == 100
    other = counters[("k#KIDBBBBBBBB2", hour_sk(T0 + 3600 - T0 % 3600))]
    assert other.networks == {"2001:db8:1::/48": 1}
    days = {k: v for k, v in counters.items() if k[1].startswith("d#")}
    assert sum(d.requests for d in days.values()) == 5


def test_items_expire_hours_after_35_days_and_days_after_400(
    usage_handler: Any, lambda_context: Any, stack: Any
) -> None:
    _run(usage_handler, lambda_context, subscription_event([(T0 * 1000, access_line("KIDAAAAAAAA1"))]))
    items = {
        (i["pk"]["S"][:2], i["sk"]["S"][:2]): int(i["ttl"]["N"]) for i in all_items(stack.refs["UsageTable"])
    }
    hour_start, day_start = T0 - T0 % 3600, T0 - T0 % 86400
    assert items[("k#", "h#")] == hour_start + 35 * 86400
    assert items[("k#", "d#")] == day_start + 400 * 86400
    assert (
        T0 + 7 * 86400 - 60 <= items[("b#", "c#")] <= T0 + 7 * 86400 + 3600 * 24 * 400
    )  # marker: a week from now


def test_the_same_batch_delivered_twice_counts_once(
    usage_handler: Any, lambda_context: Any, stack: Any
) -> None:
    t = T0 * 1000
    event = subscription_event(
        [(t, access_line(f"KID{k:09d}", t, n=i)) for k in range(120) for i in range(2)]
    )
    first = _run(usage_handler, lambda_context, event)
    before = _counters(stack)
    again = _run(usage_handler, lambda_context, event)
    assert first["chunks"] == 3 and first["writes"] == 240  # 120 hourly + 120 daily, 99 per transaction
    assert again["replayed"] is True and again["writes"] == 0
    assert _counters(stack) == before
    assert sum(c.requests for (pk, sk), c in before.items() if sk.startswith("h#")) == 240


def test_a_partly_counted_batch_counts_the_rest_when_redelivered(
    usage_handler: Any, lambda_context: Any, stack: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    t = T0 * 1000
    event = subscription_event([(t, access_line(f"KID{k:09d}", t)) for k in range(150)])
    real = UsageTable._transact
    calls = {"n": 0}

    def fail_second(self: UsageTable, actions: Any) -> bool:
        calls["n"] += 1
        if calls["n"] == 2:
            raise RuntimeError("throttled")
        return real(self, actions)

    monkeypatch.setattr(UsageTable, "_transact", fail_second)
    with pytest.raises(RuntimeError):
        _run(usage_handler, lambda_context, event)  # the first chunk is in; Lambda retries the event
    monkeypatch.setattr(UsageTable, "_transact", real)
    again = _run(usage_handler, lambda_context, event)
    assert again["chunks"] == 4 - 1 and again["replayed"] is False  # 300 updates: 4 chunks, 1 in before
    hours = [c for (pk, sk), c in _counters(stack).items() if sk.startswith("h#")]
    assert len(hours) == 150 and all(c.requests == 1 for c in hours)


def test_10000_lines_for_50_keys_make_one_write_per_key_and_period(
    usage_handler: Any, lambda_context: Any, stack: Any
) -> None:
    rng = random.Random(7)
    t = T0 * 1000 - (T0 * 1000) % HOUR_MS
    kids = [f"KID{k:09d}" for k in range(50)]
    lines = [
        (t + i, access_line(rng.choice(kids), t + i, n=i, ip=f"198.51.{rng.randrange(4)}.9"))
        for i in range(10_000)
    ]
    result = _run(usage_handler, lambda_context, subscription_event(lines))
    assert result["lines"] == 10_000 and result["keys"] == 50
    assert result["writes"] == 50 + 50  # 50 hourly + 50 daily
    assert result["chunks"] == 2  # each transaction also writes its marker
    assert sum(c.requests for (pk, sk), c in _counters(stack).items() if sk.startswith("h#")) == 10_000


def test_a_malformed_line_is_skipped_and_counted_and_a_keyless_one_counts_for_its_api(
    usage_handler: Any, lambda_context: Any, stack: Any
) -> None:
    t = T0 * 1000
    lines = [
        (t, access_line("KIDAAAAAAAA1")),
        (t, "not json {"),
        (t, '["a list"]'),
        (t, access_line(None, status=401)),
    ]
    result = _run(usage_handler, lambda_context, subscription_event(lines))
    assert (result["lines"], result["unreadable"], result["keys"], result["keyless"]) == (4, 2, 1, 1)
    api = _counters(stack)[(f"a#{API_ID}", hour_sk(T0 - T0 % 3600))]
    assert api.requests == 1 and api.by_status == {"4xx": 1}


def test_refusals_come_from_the_authorizers_decisions(
    usage_handler: Any, lambda_context: Any, stack: Any
) -> None:
    t = T0 * 1000
    lines = [(t, decision_line("KIDAAAAAAAA1", "ip_not_allowed")) for _ in range(3)]
    lines += [(t, decision_line("KIDAAAAAAAA1", "wrong_digest"))]
    lines += [
        (t, decision_line("INVENTED0001", "unknown_key")),
        (t, decision_line(None, "missing_key", "unauthorized")),
    ]
    lines += [(t, '{"level":"INFO","message":"cold start"}')]
    result = _run(usage_handler, lambda_context, subscription_event(lines, group=AUTHORIZER_GROUP))
    assert result["unreadable"] == 0
    counters = _counters(stack)
    hour = hour_sk(T0 - T0 % 3600)
    assert counters[("k#KIDAAAAAAAA1", hour)].refusals == {"ip_not_allowed": 3, "wrong_digest": 1}
    assert counters[("a#authorizer", hour)].refusals == {"unknown_key": 1, "missing_key": 1}
    assert not any(pk == "k#INVENTED0001" for pk, _ in counters)  # an invented key id gets no item


def test_numbers_beyond_any_request_count_as_nothing_and_never_break_a_batch(
    usage_handler: Any, lambda_context: Any, stack: Any
) -> None:
    """A line in a subscribed log group may claim any size or latency. DynamoDB refuses a number of
    more than 38 digits, failing the whole transaction on every delivery, other keys' counts with it."""
    t = T0 * 1000
    huge = [access_line("KIDAAAAAAAA1", t, n=i, length=10**37, latency=10**37) for i in range(20)]
    claimed = json.loads(access_line("KIDAAAAAAAA1", t, n=20))
    claimed.update(responseLength="1e40", latency="9" * 39)
    lines = [(t, line) for line in [*huge, json.dumps(claimed), access_line("KIDBBBBBBBB2", t)]]
    result = _run(usage_handler, lambda_context, subscription_event(lines))
    assert result["lines"] == 22 and result["unreadable"] == 0
    stored = [v["N"] for i in all_items(stack.refs["UsageTable"]) for v in i.values() if "N" in v]
    assert stored and all(len(n.lstrip("-")) <= 38 for n in stored)
    counters = _counters(stack)
    hour = hour_sk(T0 - T0 % 3600)
    assert counters[("k#KIDAAAAAAAA1", hour)].requests == 21
    assert (counters[("k#KIDAAAAAAAA1", hour)].bytes, counters[("k#KIDBBBBBBBB2", hour)].bytes) == (0, 120)


def test_an_item_keeps_a_bounded_set_of_networks(usage_handler: Any, lambda_context: Any, stack: Any) -> None:
    t = T0 * 1000
    for batch in range(6):  # 6 batches x 50 new /24s: more than an item keeps
        lines = [(t, access_line("KIDAAAAAAAA1", t, ip=f"10.{batch}.{i}.1", n=i)) for i in range(50)]
        _run(usage_handler, lambda_context, subscription_event(lines, stream=f"s{batch}"))
    hour = _counters(stack)[("k#KIDAAAAAAAA1", hour_sk(T0 - T0 % 3600))]
    assert len(hour.networks) == STORED["n:"] and sum(hour.networks.values()) == 300
    assert hour.networks["other"] == 300 - (STORED["n:"] - 1)


def test_a_control_message_counts_nothing(usage_handler: Any, lambda_context: Any, stack: Any) -> None:
    import base64
    import gzip
    import json

    data = {"messageType": "CONTROL_MESSAGE", "logGroup": "", "logStream": "", "logEvents": []}
    event = {"awslogs": {"data": base64.b64encode(gzip.compress(json.dumps(data).encode())).decode()}}
    assert _run(usage_handler, lambda_context, event)["lines"] == 0
    assert all_items(stack.refs["UsageTable"]) == []


line_specs = st.lists(
    st.tuples(
        st.sampled_from(["KIDAAAAAAAA1", "KIDBBBBBBBB2", None, "!malformed", "decision", "unknown"]),
        st.integers(0, 3 * HOUR_MS),
        st.sampled_from([200, 201, 301, 403, 404, 500, 0]),
        st.sampled_from(["203.0.113.9", "198.51.100.1", "2001:db8::1", "-", "x"]),
    ),
    max_size=60,
)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(specs=line_specs)
def test_every_line_fed_is_counted_exactly_once(
    usage_handler: Any, lambda_context: Any, stack: Any, specs: list[tuple[Any, int, int, str]]
) -> None:
    aws.client("dynamodb")  # the same moto across examples: start each from an empty table
    table = stack.refs["UsageTable"]
    for item in all_items(table):
        aws.client("dynamodb").delete_item(TableName=table, Key={"pk": item["pk"], "sk": item["sk"]})
    lines = []
    for n, (who, offset, status, ip) in enumerate(specs):
        at = T0 * 1000 + offset
        if who == "!malformed":
            lines.append((at, "{oops"))
        elif who == "decision":
            lines.append((at, decision_line("KIDAAAAAAAA1", "scope_missing")))
        elif who == "unknown":
            lines.append((at, decision_line("KIDZZZZZZZZ9", "unknown_key")))
        else:
            lines.append((at, access_line(who, at, status=status, ip=ip, n=n)))
    result = _run(usage_handler, lambda_context, subscription_event(lines, first_id=len(specs)))
    hours = [c for (pk, sk), c in _counters(stack).items() if sk.startswith("h#")]
    days = [c for (pk, sk), c in _counters(stack).items() if sk.startswith("d#")]
    counted = sum(c.counted() for c in hours)
    assert counted + result["unreadable"] == len(specs)
    assert sum(c.counted() for c in days) == counted
    assert sum(sum(c.by_status.values()) for c in hours) == sum(c.requests for c in hours)
    assert sum(sum(c.by_route.values()) for c in hours) == sum(c.requests for c in hours)


def test_a_key_sent_where_it_should_not_be_never_reaches_the_usage_table_or_logs(
    usage_handler: Any, lambda_context: Any, stack: Any, service: Any, leak_guard: list[str]
) -> None:
    import json

    token = service.create("acme", actor="test", scopes=["prices:read"]).token
    t = T0 * 1000
    careless = json.loads(access_line("KIDAAAAAAAA1", t))
    careless.update(path=f"/dev/v1/prices/{token}", route=f"/v1/prices/{token}", authorizerError=token)
    keyless = json.loads(access_line(None, t, n=1))
    keyless.update(keyId=token, apiId=token, requestId=token)
    decision = json.loads(decision_line(token, reason=token))
    decision["error"] = f"Authorization: Bearer {token}"
    lines = [(t, json.dumps(careless)), (t, json.dumps(keyless)), (t, json.dumps(decision)), (t, token)]
    result = _run(usage_handler, lambda_context, subscription_event(lines))
    assert result["lines"] == 4 and result["unreadable"] == 1
    counters = _counters(stack)
    hour = hour_sk(T0 - T0 % 3600)
    assert counters[("k#KIDAAAAAAAA1", hour)].by_route == {"other": 1}
    assert counters[("a#other", hour)].requests == 1  # neither the key nor the API id it claimed
    assert counters[("a#authorizer", hour)].refusals == {"other": 1}
    # and the leak guard, after the test, finds the token in no table, message or log line


def test_decisions_are_read_only_from_the_authorizers_log_group_and_access_lines_from_no_other(
    usage_handler: Any, lambda_context: Any, stack: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A backend's own log group subscribed by mistake must not let whoever writes to it pass off
    lines as the authorizer's refusals of a key (a refusal spike suspends a key that opted in)."""
    monkeypatch.setenv("AUTHORIZER_LOG_GROUP", AUTHORIZER_GROUP)
    t = T0 * 1000
    forged = [(t, decision_line("KIDAAAAAAAA1", "scope_missing")) for _ in range(25)]
    result = _run(usage_handler, lambda_context, subscription_event(forged))  # the access log group
    assert (result["unreadable"], result["keys"]) == (25, 0)
    planted = [(t, access_line("KIDAAAAAAAA1", t, n=i)) for i in range(5)]
    result = _run(usage_handler, lambda_context, subscription_event(planted, group=AUTHORIZER_GROUP))
    assert (result["unreadable"], result["keys"]) == (0, 0)  # not a decision: passed over, not counted
    assert _counters(stack) == {}
    real = [(t, decision_line("KIDAAAAAAAA1", "scope_missing")) for _ in range(3)]
    _run(usage_handler, lambda_context, subscription_event(real, group=AUTHORIZER_GROUP, stream="s2"))
    assert _counters(stack)[("k#KIDAAAAAAAA1", hour_sk(T0 - T0 % 3600))].refusals == {"scope_missing": 3}
