"""The anomaly rules, without AWS: which hours of which keys are a spike, a new network, a burst of
refusals or a dead key's use, and the ids that make each one alert once."""

from __future__ import annotations

from collections import Counter

import pytest
from keysentry import watch
from keysentry.watch import (
    DAY,
    HOUR,
    LEARNING_S,
    MAX_NETWORKS,
    Anomaly,
    Baseline,
    KeyHourView,
    Profile,
    anomalies,
    baseline,
    baseline_days,
)

T = 1_790_000_000 - 1_790_000_000 % HOUR  # an hour's start: 2026-09-21T14:00Z
TODAY = T - T % DAY
KID = "KIDAAAAAAAA1"
WEEK = Baseline(840, 7)  # 5 requests an hour
LEARNED = Profile(first_seen=T - 30 * DAY, networks=frozenset({"203.0.113.0/24"}))


def view(
    requests: int = 0,
    *,
    usual: Baseline = WEEK,
    profile: Profile = LEARNED,
    networks: tuple[str, ...] = (),
    refusals: dict[str, int] | None = None,
) -> KeyHourView:
    return KeyHourView(KID, T, requests, Counter(refusals or {}), networks, usual, profile)


def types(v: KeyHourView) -> list[str]:
    return [a.type for a in anomalies(v)]


def test_the_baseline_is_the_week_before_the_hours_day_per_hour() -> None:
    days = baseline_days(T)
    assert days == [TODAY - n * DAY for n in range(7, 0, -1)]
    usual = baseline({d: 240 for d in days} | {TODAY: 99_999}, T, first_seen=T - 60 * DAY)
    assert (usual.requests, usual.days, usual.hourly) == (7 * 240, 7, 10.0)  # today does not count


def test_a_key_seen_for_three_days_is_averaged_over_three_and_a_new_one_has_no_baseline() -> None:
    days = baseline_days(T)
    three = baseline({d: 120 for d in days[-3:]}, T, first_seen=days[-3] + 5 * HOUR)
    assert (three.days, three.hourly) == (3, 5.0)
    older_than_profile = baseline({days[0]: 240}, T, first_seen=T - HOUR)  # counted before its profile
    assert older_than_profile.days == 7
    assert baseline({}, T, first_seen=T - 5 * HOUR).hourly is None
    assert baseline({}, T, first_seen=None).hourly is None
    quiet_week = baseline({}, T, first_seen=T - 30 * DAY)
    assert (quiet_week.days, quiet_week.hourly) == (7, 0.0)


@pytest.mark.parametrize(
    ("requests", "usual", "spikes"),
    [
        (51, Baseline(840, 7), False),  # 5/h: 10x is 50, but under the floor
        (101, Baseline(840, 7), True),
        (500, Baseline(24 * 7 * 50, 7), False),  # 50/h: 10x is 500, not more
        (501, Baseline(24 * 7 * 50, 7), True),
        (100, Baseline(0, 7), False),  # a quiet week: the floor still holds
        (101, Baseline(0, 7), True),
        (1_000, Baseline(0, 0), False),  # no history: only the higher floor
        (1_001, Baseline(0, 0), True),
        (3, Baseline(0, 0), False),
    ],
)
def test_a_spike_is_ten_times_the_baseline_and_over_the_floor(
    requests: int, usual: Baseline, spikes: bool
) -> None:
    assert (types(view(requests, usual=usual)) == ["usage_spike"]) is spikes


def test_a_new_network_counts_once_learned_and_while_the_profile_has_room() -> None:
    seen = ("203.0.113.0/24", "198.51.100.0/24", "other")
    found = anomalies(view(networks=seen))
    assert [(a.type, a.network) for a in found] == [("new_source_network", "198.51.100.0/24")]
    learning = Profile(first_seen=T - LEARNING_S + HOUR)
    assert types(view(networks=seen, profile=learning)) == []
    assert types(view(networks=seen, profile=Profile())) == []
    assert (
        types(view(networks=seen, profile=Profile(first_seen=T - LEARNING_S))) == ["new_source_network"] * 2
    )
    full = Profile(T - 30 * DAY, frozenset(f"10.{i // 256}.{i % 256}.0/24" for i in range(MAX_NETWORKS)))
    assert types(view(networks=seen, profile=full)) == []


def test_a_profile_learns_at_most_up_to_its_bound_and_never_other() -> None:
    almost = Profile(T, frozenset(f"10.0.{i}.0/24" for i in range(MAX_NETWORKS - 1)))
    assert almost.to_learn(["198.51.100.0/24", "192.0.2.0/24", "other"]) == ["192.0.2.0/24"]
    assert Profile().to_learn(["other"]) == []


def test_refusals_that_say_the_key_is_tried_spike_from_twenty() -> None:
    assert types(view(refusals={"ip_not_allowed": 10, "wrong_digest": 9})) == []
    (spike,) = anomalies(view(refusals={"ip_not_allowed": 10, "wrong_digest": 9, "bad_signature": 1}))
    assert spike.type == "refusal_spike" and spike.refusals == {
        "ip_not_allowed": 10,
        "wrong_digest": 9,
        "bad_signature": 1,
    }
    assert types(view(refusals={"route_not_mapped": 50, "test_key_on_non_test_stage": 50})) == []


def test_a_dead_keys_use_is_reported_and_never_counts_as_tried() -> None:
    for reason in ("status_revoked", "status_suspended", "status_expired", "expired", "grace_ended"):
        (dead,) = anomalies(view(refusals={reason: 50}))
        assert dead.type == "dead_key_used" and dead.refusals == {reason: 50} and not dead.suspends
    both = anomalies(view(refusals={"status_revoked": 1, "scope_missing": 20}))
    assert [a.type for a in both] == ["refusal_spike", "dead_key_used"]
    assert both[0].refusals == {"scope_missing": 20}


def test_ids_are_the_same_for_the_same_key_hour_and_network_only() -> None:
    spike = Anomaly("usage_spike", KID, T, requests=500)
    assert spike.event_id == f"usage_spike:{KID}:2026-09-21T14:00Z"
    assert Anomaly("usage_spike", KID, T, requests=900).event_id == spike.event_id
    assert Anomaly("usage_spike", KID, T + HOUR).event_id != spike.event_id
    network = Anomaly("new_source_network", KID, T, network="198.51.100.0/24")
    assert network.event_id == f"new_source_network:{KID}:2026-09-21T14:00Z:198.51.100.0/24"
    held = {"ip_not_allowed": watch.REFUSAL_FLOOR}
    found = [Anomaly(t, KID, T, refusals=held if t == "refusal_spike" else {}) for t in watch.TYPES]
    assert {a.type for a in found if a.suspends} == {
        "usage_spike",
        "new_source_network",
        "refusal_spike",
    }


def test_the_description_carries_the_figures() -> None:
    assert Anomaly("usage_spike", KID, T, requests=1200, baseline=5.0).describe() == (
        "1200 requests in the hour from 2026-09-21T14:00Z (baseline 5.0/h)"
    )
    assert "no history" in Anomaly("usage_spike", KID, T, requests=1200).describe()
    refused = Anomaly("refusal_spike", KID, T, refusals={"wrong_digest": 20, "ip_denied": 3})
    assert (
        refused.describe() == "23 refusals in the hour from 2026-09-21T14:00Z (ip_denied 3, wrong_digest 20)"
    )


def test_refusals_of_a_wrong_secret_alert_but_never_suspend() -> None:
    """Whoever knows a key id (logs, alerts, a backend's context) can send wrong secrets for it: that is
    worth an alert, and must not let them disable the key."""
    floor = watch.REFUSAL_FLOOR
    (guessing,) = watch.refused(KID, T, {"wrong_digest": 10 * floor})
    assert guessing.type == "refusal_spike" and not guessing.suspends
    (mixed,) = watch.refused(KID, T, {"wrong_digest": floor, "ip_not_allowed": floor - 1})
    assert not mixed.suspends
    (holder,) = watch.refused(KID, T, {"wrong_digest": 3, "ip_not_allowed": floor - 5, "scope_missing": 5})
    assert holder.suspends
