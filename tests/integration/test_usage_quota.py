"""The usage function holds keys to their plans' quotas (HTTP APIs have no usage plans): once a key's
requests in its quota period reach the limit, its record is marked until the period ends and one
quota_exhausted alert goes out; keys without a quota are never marked, and keys far from any quota
cost no read of the keys table."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from typing import Any

import pytest
from keysentry import aws

from tests.conftest import ROOT, T0, FakeClock
from tests.integration.conftest import plaintext_found
from tests.integration.stream_helpers import Targets
from tests.integration.usage_helpers import access_line, subscription_event, usage_function

DAY = 86_400
TODAY = T0 - T0 % DAY  # Monday 2026-09-21
PLANS = {
    "tiny": {"rate": 5, "burst": 10, "quota": {"limit": 10, "period": "DAY"}},
    "weekly": {"rate": 5, "burst": 10, "quota": {"limit": 30, "period": "WEEK"}},
    "monthly": {"rate": 5, "burst": 10, "quota": {"limit": 50, "period": "MONTH"}},
    "roomy": {"rate": 5, "burst": 10, "quota": {"limit": 1000, "period": "DAY"}},
    "small": {"rate": 5, "burst": 10, "quota": {"limit": 20, "period": "DAY"}},
    "unlimited": {"rate": 50, "burst": 100},
}


@pytest.fixture
def plans(stack: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PLANS", json.dumps(PLANS))
    monkeypatch.setenv("DEFAULT_PLAN", "unlimited")


@pytest.fixture
def usage(
    plans: None, lambda_context: Any, clock: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Any]:
    """Deliver (epoch second, line) pairs to the usage function, wired as in Lambda, at ``clock``."""
    from keysentry.settings import UsageSettings

    handler = usage_function(monkeypatch)
    streams = iter(range(1_000))

    def deliver(lines: list[tuple[int, str]] = (), *, event: dict[str, Any] | None = None) -> dict[str, Any]:  # type: ignore[assignment]
        event = event or subscription_event([(t * 1000, m) for t, m in lines], stream=f"s-{next(streams)}")
        deliver.last_event = event  # type: ignore[attr-defined]
        meter = handler.metering(UsageSettings.load(), lambda_context.get_remaining_time_in_millis, clock)
        result: dict[str, Any] = handler.lambda_handler(event, lambda_context, meter=meter)
        return result

    yield deliver
    sys.modules.pop("handler", None)


@pytest.fixture
def targets(stack: Any) -> Targets:
    return Targets(stack)


@pytest.fixture
def keys_table_calls(stack: Any) -> Iterator[list[str]]:
    """Every call made on the keys table from now on, by operation name."""
    calls: list[str] = []

    def record(params: dict[str, Any], model: Any, **_: Any) -> None:
        if params.get("TableName") == stack.refs["KeysTable"]:
            calls.append(model.name)

    client = aws.client("dynamodb")
    client.meta.events.register("provide-client-params.dynamodb", record)
    yield calls
    client.meta.events.unregister("provide-client-params.dynamodb", record)


def on_plan(stack: Any, kid: str, plan: str) -> None:
    """Give a key a plan as its record keeps it."""
    aws.client("dynamodb").update_item(
        TableName=stack.refs["KeysTable"],
        Key={"pk": {"S": kid}, "sk": {"S": "KEY"}},
        UpdateExpression="SET #p = :p",
        ExpressionAttributeNames={"#p": "plan"},
        ExpressionAttributeValues={":p": {"S": plan}},
    )


def new_key(service: Any, stack: Any, plan: str | None = None) -> str:
    kid: str = service.create("acme", actor="ops").record.kid
    if plan is not None:
        on_plan(stack, kid, plan)
    return kid


def requests(
    kid: str, at: int, count: int, first: int = 0, meter: str | None = None
) -> list[tuple[int, str]]:
    return [
        (at + i % 600, access_line(kid, (at + i % 600) * 1000, n=first + i, meter=meter))
        for i in range(count)
    ]


def quota_alerts(targets: Targets) -> list[dict[str, Any]]:
    return [
        e for e in (json.loads(m["Message"]) for m in targets.from_sns()) if e["type"] == "quota_exhausted"
    ]


def test_a_key_is_marked_until_the_day_ends_once_it_reaches_its_daily_quota_and_alerted_once(
    usage: Any, service: Any, stack: Any, targets: Targets
) -> None:
    kid = new_key(service, stack, "tiny")
    version = service.get(kid).version
    usage(requests(kid, T0, 9))
    assert service.get(kid).quota_exhausted_until is None and quota_alerts(targets) == []

    usage(requests(kid, T0 + 60, 1, first=100))  # the tenth request of the day

    assert service.get(kid).quota_exhausted_until == TODAY + DAY
    (alert,) = quota_alerts(targets)
    assert (alert["id"], alert["severity"], alert["kid"]) == (
        f"quota_exhausted:{kid}:tiny:DAY:2026-09-21T00:00:00Z",
        "medium",
        kid,
    )
    assert alert["quota"] == {
        "plan": "tiny",
        "limit": 10,
        "period": "DAY",
        "period_start": TODAY,
        "used": 10,
        "resets_at": TODAY + DAY,
    }
    usage(requests(kid, T0 + 120, 5, first=200))  # more of the same day
    usage(event=usage.last_event)  # and a batch delivered again
    assert quota_alerts(targets) == []
    assert service.get(kid).version == version  # not a lifecycle change: no audit entry, no stream alert


def test_the_next_day_counts_afresh(usage: Any, service: Any, stack: Any, clock: FakeClock) -> None:
    kid = new_key(service, stack, "tiny")
    usage(requests(kid, T0, 12))
    clock.advance(days=1)
    usage(requests(kid, T0 + DAY, 9, first=100))
    assert service.get(kid).quota_exhausted_until == TODAY + DAY  # the past day's mark, now over
    usage(requests(kid, T0 + DAY, 1, first=200))
    assert service.get(kid).quota_exhausted_until == TODAY + 2 * DAY


def test_keys_without_a_quota_are_never_marked(
    usage: Any, service: Any, stack: Any, targets: Targets
) -> None:
    default, unlimited, roomy = (
        new_key(service, stack),
        new_key(service, stack, "unlimited"),
        new_key(service, stack, "roomy"),
    )
    usage(requests(default, T0, 300) + requests(unlimited, T0, 300) + requests(roomy, T0, 300))
    assert [service.get(k).quota_exhausted_until for k in (default, unlimited, roomy)] == [None] * 3
    assert quota_alerts(targets) == []


def test_a_key_far_from_every_quota_costs_no_call_on_the_keys_table(
    usage: Any, service: Any, stack: Any, keys_table_calls: list[str]
) -> None:
    quiet, busy, tiny = new_key(service, stack), new_key(service, stack), new_key(service, stack, "tiny")
    keys_table_calls.clear()

    usage(requests(quiet, T0, 9) + requests(tiny, T0, 5))  # below 10, the smallest daily quota
    assert keys_table_calls == []

    usage(requests(busy, T0, 20))  # past it: its record says it has no quota; nothing is written
    assert keys_table_calls == ["GetItem"]

    keys_table_calls.clear()
    usage(requests(tiny, T0, 5, first=100))  # the tenth: read and marked
    usage(requests(tiny, T0, 5, first=200))  # read, already marked: no write
    assert keys_table_calls == ["GetItem", "UpdateItem", "GetItem"]


def test_a_busy_key_whose_lines_say_it_has_no_quota_costs_no_quota_read_at_all(
    usage: Any, service: Any, stack: Any, keys_table_calls: list[str]
) -> None:
    """The authorizer leaves ``meter`` empty for a plan without a quota: however busy the key, the
    watcher reads neither its record nor its period's days for a quota."""
    busy = new_key(service, stack)
    keys_table_calls.clear()
    usage(requests(busy, T0, 50, meter="-"))
    assert keys_table_calls == []
    tiny = new_key(service, stack, "tiny")  # its lines name its meter: held to its quota
    usage(requests(tiny, T0, 10, meter=tiny))
    assert service.get(tiny).quota_exhausted_until == TODAY + DAY


def test_a_weekly_quota_counts_the_days_of_the_iso_week(
    usage: Any, service: Any, stack: Any, clock: FakeClock, targets: Targets
) -> None:
    kid = new_key(service, stack, "weekly")
    clock.advance(days=3)  # Thursday
    usage(requests(kid, TODAY - DAY + 60, 25))  # the Sunday before: last week
    usage(requests(kid, TODAY + 60, 10, first=100) + requests(kid, TODAY + DAY + 60, 10, first=200))
    usage(requests(kid, TODAY + 3 * DAY + 60, 9, first=300))
    assert service.get(kid).quota_exhausted_until is None  # 29 this week

    usage(requests(kid, TODAY + 3 * DAY + 120, 1, first=400))
    assert service.get(kid).quota_exhausted_until == TODAY + 7 * DAY  # next Monday
    (alert,) = quota_alerts(targets)
    assert (alert["quota"]["used"], alert["quota"]["period"]) == (30, "WEEK")


def test_a_monthly_quota_counts_the_days_of_the_calendar_month(
    usage: Any, service: Any, stack: Any, targets: Targets
) -> None:
    september = 1_788_220_800  # 2026-09-01T00:00:00Z
    october = september + 30 * DAY
    kid = new_key(service, stack, "monthly")
    usage(requests(kid, september - DAY + 60, 45))  # August 31st
    usage(requests(kid, september + 60, 20, first=100))
    usage(requests(kid, T0, 29, first=200))
    assert service.get(kid).quota_exhausted_until is None  # 49 in September

    usage(requests(kid, T0, 1, first=300))
    assert service.get(kid).quota_exhausted_until == october
    (alert,) = quota_alerts(targets)
    assert alert["quota"]["used"] == 50 and alert["quota"]["resets_at"] == october


def test_an_alert_that_could_not_be_published_is_published_by_the_redelivery_and_the_key_is_marked(
    usage: Any, service: Any, stack: Any, targets: Targets, monkeypatch: pytest.MonkeyPatch
) -> None:
    from keysentry.alerts import AlertPublisher, AlertsNotPublishedError

    kid = new_key(service, stack, "tiny")
    real = AlertPublisher.publish
    monkeypatch.setattr(AlertPublisher, "publish", lambda self, events: {e["id"] for e in events})
    with pytest.raises(AlertsNotPublishedError):
        usage(requests(kid, T0, 10))
    failed = usage.last_event  # Lambda delivers it again
    assert service.get(kid).quota_exhausted_until == TODAY + DAY  # enforced without waiting for the alert

    monkeypatch.setattr(AlertPublisher, "publish", real)
    usage(requests(kid, T0, 3, first=100))  # another batch: not the one that owes the alert
    assert quota_alerts(targets) == []
    again = usage(event=failed)
    assert again["replayed"] is True
    (alert,) = quota_alerts(targets)
    assert alert["quota"]["used"] == 13  # as counted when the redelivery was watched
    usage(event=failed)
    assert quota_alerts(targets) == []


def test_a_revoked_key_is_not_marked(usage: Any, service: Any, stack: Any, targets: Targets) -> None:
    kid = new_key(service, stack, "tiny")
    service.revoke(kid, actor="sec", reason="retired")
    usage(requests(kid, T0, 20))
    assert service.get(kid).quota_exhausted_until is None and quota_alerts(targets) == []


def test_the_quota_alert_follows_the_schema_and_holds_no_secret(
    usage: Any, service: Any, stack: Any, targets: Targets, leak_guard: list[str], minted_secrets: list[str]
) -> None:
    import jsonschema

    kid = new_key(service, stack, "tiny")
    usage(requests(kid, T0, 10))
    (alert,) = quota_alerts(targets)
    jsonschema.validate(alert, json.loads((ROOT / "docs" / "alert-event.schema.json").read_text()))
    assert [e["detail-type"] for e in targets.from_bus()] == ["key.quota_exhausted"]
    assert plaintext_found(leak_guard, stack, [], minted_secrets) == []


def test_a_key_moved_to_another_plan_while_its_count_is_judged_is_not_marked_for_the_old_plan(
    usage: Any, service: Any, stack: Any, targets: Targets, monkeypatch: pytest.MonkeyPatch
) -> None:
    from keysentry.store import KeyStore

    # Given a key on tiny at its quota, moved to roomy by its owner just after the usage function
    # read its record (on tiny) and before it writes the mark
    kid = new_key(service, stack, "tiny")
    read = KeyStore.get

    def read_then_move(store: KeyStore, wanted: str) -> Any:
        record = read(store, wanted)
        if wanted == kid and record.plan == "tiny":
            on_plan(stack, kid, "roomy")  # what an owner's plan change leaves on the record
            aws.client("dynamodb").update_item(
                TableName=stack.refs["KeysTable"],
                Key={"pk": {"S": kid}, "sk": {"S": "KEY"}},
                UpdateExpression="SET #v = #v + :one",
                ExpressionAttributeNames={"#v": "version"},
                ExpressionAttributeValues={":one": {"N": "1"}},
            )
        return record

    monkeypatch.setattr(KeyStore, "get", read_then_move)

    # When the batch that took it to tiny's limit is counted
    usage(requests(kid, T0, 10))

    # Then the key, now on roomy and far from its quota, is not refused for tiny's, nor alerted
    assert service.get(kid).plan == "roomy"
    assert service.get(kid).quota_exhausted_until is None
    assert quota_alerts(targets) == []


def test_a_key_moved_to_a_larger_plan_the_day_it_used_up_its_quota_is_alerted_again_at_the_larger(
    usage: Any, service: Any, stack: Any, targets: Targets
) -> None:
    kid = new_key(service, stack, "tiny")
    usage(requests(kid, T0, 10))
    assert [a["quota"]["plan"] for a in quota_alerts(targets)] == ["tiny"]

    service.update(kid, actor="ops", plan="small")  # the owner lifts it: no longer refused
    assert service.get(kid).quota_exhausted_until is None
    usage(requests(kid, T0 + 60, 10, first=100))  # 20 today: small's quota too

    assert service.get(kid).quota_exhausted_until == TODAY + DAY
    assert [a["quota"]["plan"] for a in quota_alerts(targets)] == ["small"]


def test_a_monthly_quota_exhausted_on_the_first_of_the_month_is_alerted_after_a_daily_one(
    usage: Any, service: Any, stack: Any, targets: Targets, clock: FakeClock
) -> None:
    # Given a key on tiny (a day) that used its quota on the 1st of October and was alerted
    first = 1_790_812_800  # 2026-10-01T00:00:00Z: that day and that month start together
    clock.now = first + 3_600
    kid = new_key(service, stack, "tiny")
    usage(requests(kid, first + 600, 10))
    alerts = quota_alerts(targets)
    assert [a["quota"]["period"] for a in alerts] == ["DAY"]

    # When its owner moves it to monthly and it uses that quota too, the same day
    service.update(kid, actor="ops", plan="monthly")
    usage(requests(kid, first + 1_800, 40, first=100))

    # Then it is refused until November and its owner learns of it: another period, another alert
    assert service.get(kid).quota_exhausted_until == 1_793_491_200  # 2026-11-01T00:00:00Z
    alerts += quota_alerts(targets)
    assert [(a["quota"]["plan"], a["quota"]["period"]) for a in alerts] == [
        ("tiny", "DAY"),
        ("monthly", "MONTH"),
    ]
    assert len({a["id"] for a in alerts}) == 2
