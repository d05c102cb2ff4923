"""The usage function watches what it counts: a spike, a new source network, a burst of refusals and
a dead key's use each alert once per key and hour, on the topic and the bus; normal traffic does not;
keys that opted in are suspended (audited, alerted), the others never."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from typing import Any

import pytest
from keysentry.alerts import USAGE_ACTOR
from keysentry.store.usage import PROFILE_SK

from tests.conftest import ROOT, T0, all_items
from tests.integration.conftest import plaintext_found
from tests.integration.stream_helpers import StreamReader, Targets
from tests.integration.usage_helpers import (
    AUTHORIZER_GROUP,
    access_line,
    decision_line,
    subscription_event,
    usage_function,
)

HOUR = 3600
DAY = 86_400
NOW_HOUR = T0 - T0 % HOUR
STEADY_IP = "203.0.113.7"


@pytest.fixture
def usage(stack: Any, lambda_context: Any, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """Deliver a batch of (epoch second, line) to the usage function; its response."""
    handler = usage_function(monkeypatch)
    streams = iter(range(1_000))

    def deliver(
        lines: list[tuple[int, str]], *, group: str | None = None, event: dict[str, Any] | None = None
    ) -> dict[str, Any]:
        stream = f"stream-{next(streams)}"
        kwargs = {"group": group} if group else {}
        event = event or subscription_event([(t * 1000, m) for t, m in lines], stream=stream, **kwargs)
        deliver.last_event = event  # type: ignore[attr-defined]
        result: dict[str, Any] = handler.lambda_handler(event, lambda_context)
        return result

    yield deliver
    sys.modules.pop("handler", None)


@pytest.fixture
def targets(stack: Any) -> Targets:
    return Targets(stack)


def requests(kid: str, at: int, count: int, ip: str = STEADY_IP) -> list[tuple[int, str]]:
    return [(at + i % 3000, access_line(kid, (at + i % 3000) * 1000, ip=ip, n=i)) for i in range(count)]


def history(kid: str, per_hour: int = 5, days: int = 7) -> list[tuple[int, str]]:
    """``per_hour`` requests in every hour of the ``days`` full days before today, from one network."""
    today = T0 - T0 % DAY
    lines: list[tuple[int, str]] = []
    for hour in range(days * 24):
        lines += requests(kid, today - days * DAY + hour * HOUR + 60, per_hour)
    return lines


def alerts(targets: Targets) -> list[dict[str, Any]]:
    return [json.loads(e["Message"]) for e in targets.from_sns()]


def kinds(events: list[dict[str, Any]]) -> list[tuple[str, str]]:
    return [(e["type"], e["kid"]) for e in events]


def test_a_spike_alerts_once_and_steady_or_quiet_traffic_does_not(
    usage: Any, service: Any, targets: Targets
) -> None:
    spiky, steady, quiet = (service.create("acme", actor="ops").record.kid for _ in range(3))
    usage(history(spiky) + history(steady) + history(quiet, per_hour=0))
    assert alerts(targets) == []  # a week of steady use: nothing

    usage(requests(spiky, T0, 600) + requests(steady, T0, 60) + requests(quiet, T0, 3))
    usage(requests(spiky, T0 + 60, 300))  # the same hour, spiking on: still one alert

    (spike,) = alerts(targets)
    assert (spike["type"], spike["kid"], spike["severity"]) == ("usage_spike", spiky, "medium")
    assert spike["usage"]["requests"] == 600 and spike["usage"]["baseline"] == 5.0
    assert spike["owner_id"] == "acme" and spike["suspended"] is False
    assert service.get(spiky).status == "active"  # it did not opt in
    assert [e["detail-type"] for e in targets.from_bus()] == ["key.usage_spike"]


def test_a_new_key_spikes_only_past_the_higher_floor(usage: Any, service: Any, targets: Targets) -> None:
    busy, flood = (service.create("acme", actor="ops").record.kid for _ in range(2))
    usage(requests(busy, T0, 900) + requests(flood, T0, 1_100))
    assert kinds(alerts(targets)) == [("usage_spike", flood)]


def test_a_new_network_alerts_once_but_not_while_the_key_is_learning(
    usage: Any, service: Any, targets: Targets
) -> None:
    known, learning = (service.create("acme", actor="ops").record.kid for _ in range(2))
    usage(history(known) + requests(learning, T0 - 2 * HOUR, 5))
    usage(requests(known, T0, 5, ip="198.51.100.20") + requests(learning, T0, 5, ip="198.51.100.20"))
    usage(requests(known, T0 + 2 * HOUR, 5, ip="198.51.100.99"))  # the same /24, hours later
    usage(requests(known, T0, 5, ip="2001:db8:7::1"))

    found = alerts(targets)
    assert [(e["type"], e["kid"], e["usage"]["network"]) for e in found] == [
        ("new_source_network", known, "198.51.100.0/24"),
        ("new_source_network", known, "2001:db8:7::/48"),
    ]
    assert found[0]["severity"] == "low"


def test_a_burst_of_refusals_alerts_and_a_dead_key_is_reported_once_per_hour(
    usage: Any, service: Any, targets: Targets
) -> None:
    tried, few, revoked = (service.create("acme", actor="ops").record.kid for _ in range(3))
    service.revoke(revoked, actor="sec", reason="retired")
    lines = [(T0, decision_line(tried, "ip_not_allowed")) for _ in range(15)]
    lines += [(T0, decision_line(tried, "bad_signature")) for _ in range(5)]
    lines += [(T0, decision_line(few, "scope_missing")) for _ in range(5)]
    lines += [(T0, decision_line(few, "route_not_mapped")) for _ in range(30)]  # the deployment's fault
    lines += [(T0, decision_line(revoked, "status_revoked")) for _ in range(30)]
    usage(lines, group=AUTHORIZER_GROUP)
    usage([(T0 + 60, decision_line(revoked, "status_revoked"))], group=AUTHORIZER_GROUP)
    usage([(T0 + HOUR, decision_line(revoked, "status_revoked"))], group=AUTHORIZER_GROUP)

    found = alerts(targets)
    assert sorted(kinds(found)) == [("dead_key_used", revoked)] * 2 + [("refusal_spike", tried)]
    (spike,) = [e for e in found if e["type"] == "refusal_spike"]
    assert spike["usage"]["refusals"] == {"bad_signature": 5, "ip_not_allowed": 15}
    assert spike["severity"] == "high"
    first, later = sorted(
        (e for e in found if e["type"] == "dead_key_used"), key=lambda e: e["usage"]["hour"]
    )
    assert first["status"] == "revoked" and first["usage"]["refusals"] == {"status_revoked": 30}
    assert later["usage"]["hour"] > first["usage"]["hour"]


def test_the_same_batch_delivered_twice_alerts_once(usage: Any, service: Any, targets: Targets) -> None:
    kid = service.create("acme", actor="ops").record.kid
    lines = requests(kid, T0, 1_200) + [(T0, decision_line(kid, "wrong_digest")) for _ in range(25)]
    first = usage(lines)
    again = usage([], event=usage.last_event)
    assert first["anomalies"] == 2 and again["replayed"] is True and again["anomalies"] == 0
    assert sorted(kinds(alerts(targets))) == [("refusal_spike", kid), ("usage_spike", kid)]


def test_an_alert_that_could_not_be_published_is_published_by_the_redelivery(
    usage: Any, service: Any, targets: Targets, monkeypatch: pytest.MonkeyPatch
) -> None:
    from keysentry.alerts import AlertPublisher, AlertsNotPublishedError

    kid = service.create("acme", actor="ops").record.kid
    real = AlertPublisher.publish
    monkeypatch.setattr(AlertPublisher, "publish", lambda self, events: {e["id"] for e in events})
    with pytest.raises(AlertsNotPublishedError):
        usage(requests(kid, T0, 1_200))  # counted, not alerted: Lambda delivers the event again
    monkeypatch.setattr(AlertPublisher, "publish", real)
    again = usage([], event=usage.last_event)
    assert again["replayed"] is True and again["anomalies"] == 1
    assert kinds(alerts(targets)) == [("usage_spike", kid)]


def test_only_keys_that_opted_in_are_suspended_audited_and_alerted(
    usage: Any, service: Any, targets: Targets, run_alerts: Any
) -> None:
    opted = service.create("acme", actor="ops", suspend_on_anomaly=True).record.kid
    plain = service.create("acme", actor="ops").record.kid
    dead = service.create("acme", actor="ops", suspend_on_anomaly=True).record.kid
    service.revoke(dead, actor="sec", reason="retired")
    run_alerts()  # the creations and the revocation
    targets.from_sns()

    usage(requests(opted, T0, 1_200) + requests(plain, T0, 1_200))
    usage([(T0, decision_line(dead, "status_revoked"))], group=AUTHORIZER_GROUP)

    assert service.get(opted).status == "suspended"
    assert service.get(plain).status == "active" and service.get(dead).status == "revoked"
    (entry,) = [e for e in service.audit(opted) if e.action == "suspend"]
    assert entry.actor == USAGE_ACTOR and entry.reason.startswith("anomaly: usage_spike: 1200 requests")
    usage_alerts = {(e["type"], e["kid"]): e["suspended"] for e in alerts(targets)}  # in any order
    assert usage_alerts == {
        ("usage_spike", opted): True,
        ("usage_spike", plain): False,
        ("dead_key_used", dead): False,
    }
    run_alerts()
    (suspended,) = alerts(targets)
    assert (suspended["type"], suspended["kid"], suspended["actor"]) == ("suspended", opted, USAGE_ACTOR)


def test_no_alert_or_profile_holds_a_key_or_secret(
    usage: Any, service: Any, targets: Targets, stack: Any, leak_guard: list[str], minted_secrets: list[str]
) -> None:
    import jsonschema

    bearer = service.create("acme", actor="ops", suspend_on_anomaly=True).record.kid
    hmac = service.create("acme", actor="ops", signing="hmac").record.kid
    usage(history(bearer))
    usage(requests(bearer, T0, 1_200, ip="198.51.100.1") + requests(hmac, T0, 1_500))
    usage([(T0, decision_line(hmac, "bad_signature")) for _ in range(30)], group=AUTHORIZER_GROUP)

    found = alerts(targets)
    assert {e["type"] for e in found} == {"usage_spike", "new_source_network", "refusal_spike"}
    schema = json.loads((ROOT / "docs" / "alert-event.schema.json").read_text())
    for event in found:
        jsonschema.validate(event, schema)
    assert plaintext_found(leak_guard, stack, [], minted_secrets) == []
    profiles = [i for i in all_items(stack.refs["UsageTable"]) if i["sk"]["S"] == PROFILE_SK]
    assert {i["pk"]["S"] for i in profiles} == {f"k#{bearer}", f"k#{hmac}"}
    assert all(set(i) == {"pk", "sk", "first_seen", "networks", "ttl"} for i in profiles)
    assert set(profiles[0]["networks"]["SS"]) | set(profiles[1]["networks"]["SS"]) == {
        "203.0.113.0/24",
        "198.51.100.0/24",
    }


@pytest.fixture
def run_alerts(stack: Any, lambda_context: Any) -> Any:
    """The alerts function over what the keys table's stream holds since the last call."""
    from functions.alerts import handler

    stream = StreamReader(stack.refs["KeysTable"])

    def run() -> None:
        assert handler.lambda_handler({"Records": stream.read()}, lambda_context) == {"batchItemFailures": []}

    return run


def test_a_profile_never_holds_more_networks_than_its_bound_even_when_written_concurrently(
    stack: Any,
) -> None:
    from keysentry.store.usage import UsageTable, profile_key, read_profile
    from keysentry.watch import MAX_NETWORKS

    table = UsageTable(stack.refs["UsageTable"])
    kid = "KIDAAAAAAAA1"
    almost = [f"10.{i // 256}.{i % 256}.0/24" for i in range(MAX_NETWORKS - 1)]
    for start in range(0, len(almost), 100):
        table.update_profile(kid, first_seen=T0, networks=almost[start : start + 100], expires_at=T0 + DAY)
    # two writers, each read 499 and saw room for what it adds: the second finds no room for two
    table.update_profile(kid, first_seen=T0 + HOUR, networks=["192.0.2.0/24"], expires_at=T0 + DAY)
    table.update_profile(
        kid, first_seen=T0 + HOUR, networks=["198.51.100.0/24", "2001:db8::/48"], expires_at=T0 + 2 * DAY
    )
    profile = read_profile(table.get_many([profile_key(kid)])[profile_key(kid)])
    assert len(profile.networks) == MAX_NETWORKS and "192.0.2.0/24" in profile.networks
    assert profile.first_seen == T0


def test_wrong_secrets_for_a_key_that_opted_in_alert_without_suspending_it(
    usage: Any, service: Any, targets: Targets
) -> None:
    kid = service.create("acme", actor="ops", suspend_on_anomaly=True).record.kid
    usage([(T0, decision_line(kid, "wrong_digest")) for _ in range(50)], group=AUTHORIZER_GROUP)
    assert service.get(kid).status == "active"
    (alert,) = [e for e in alerts(targets) if e["kid"] == kid]
    assert (alert["type"], alert["suspended"]) == ("refusal_spike", False)
    usage([(T0, decision_line(kid, "ip_not_allowed")) for _ in range(25)], group=AUTHORIZER_GROUP)
    assert service.get(kid).status == "suspended"  # the key itself was presented: not spent by the guesses
    (alert,) = [e for e in alerts(targets) if e["kid"] == kid]
    assert (alert["type"], alert["suspended"]) == ("refusal_spike", True)


def test_a_partly_counted_batch_redelivered_is_watched_on_its_true_counts(
    usage: Any, service: Any, targets: Targets, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The redelivery of a batch whose first transactions went in must not count those again for the
    rules: 600 requests of a new key stay under its floor of 1000, and do not suspend it."""
    from keysentry.store.usage import UsageTable

    kid = service.create("acme", actor="ops", suspend_on_anomaly=True).record.kid
    others = [f"{n:012d}" for n in range(150)]  # sorted before it: its hour is in the second chunk
    lines = requests(kid, T0, 600) + [(T0, access_line(o, T0 * 1000)) for o in others]
    real, calls = UsageTable._transact, {"n": 0}

    def fail_last(self: UsageTable, actions: Any) -> bool:
        calls["n"] += 1
        if calls["n"] == 4:  # 302 updates: four chunks, the last one throttled
            raise RuntimeError("throttled")
        return real(self, actions)

    monkeypatch.setattr(UsageTable, "_transact", fail_last)
    with pytest.raises(RuntimeError):
        usage(lines)  # three chunks in, the key's hour with them; Lambda delivers the event again
    monkeypatch.setattr(UsageTable, "_transact", real)
    again = usage([], event=usage.last_event)

    assert again["replayed"] is False and again["chunks"] == 1
    assert again["anomalies"] == 0 and alerts(targets) == []
    assert service.get(kid).status == "active"
