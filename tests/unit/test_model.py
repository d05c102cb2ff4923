from __future__ import annotations

from dataclasses import replace

import pytest
from keysentry import model
from keysentry.errors import TransitionError, ValidationError
from keysentry.model import DAY, Action, KeyRecord, Status

from tests.conftest import T0


def record(**overrides: object) -> KeyRecord:
    base = model.new_record(
        kid="AAAAAAAAAAAA",
        owner_id="acme",
        env="live",
        digest="d" * 64,
        pepper_version="1",
        now=T0,
        actor="test",
        scopes=["prices:read"],
        allow_cidrs=["10.0.0.0/8"],
        rotation_days=30,
        metadata={"team": "data"},
    )
    return replace(base, **overrides)  # type: ignore[arg-type]


SIMPLE = [Action.SUSPEND, Action.RESUME, Action.REVOKE, Action.EXPIRE, Action.LEAK]
EXPECTED = {
    (Status.ACTIVE, Action.SUSPEND): Status.SUSPENDED,
    (Status.ROTATING, Action.SUSPEND): Status.SUSPENDED,
    (Status.SUSPENDED, Action.RESUME): Status.ACTIVE,
    (Status.ACTIVE, Action.LEAK): Status.SUSPENDED,
    (Status.ROTATING, Action.LEAK): Status.SUSPENDED,
    (Status.SUSPENDED, Action.LEAK): Status.SUSPENDED,
    **{(s, Action.REVOKE): Status.REVOKED for s in model.LIVE},
    **{(s, Action.EXPIRE): Status.EXPIRED for s in model.LIVE},
}


@pytest.mark.parametrize("status", list(Status))
@pytest.mark.parametrize("action", SIMPLE)
def test_every_transition_is_legal_or_refused(status: Status, action: Action) -> None:
    before = record(status=status, suspended_from=Status.ACTIVE if status is Status.SUSPENDED else None)
    if status is Status.ROTATING:
        before = replace(before, grace_until=T0 + 7 * DAY, successor="BBBBBBBBBBBB")
    expected = EXPECTED.get((status, action))
    if expected is None:
        with pytest.raises(TransitionError):
            model.transition(before, action, now=T0 + 1, actor="ops", reason="why")
        return
    after = model.transition(before, action, now=T0 + 1, actor="ops", reason="why")
    assert after.status is expected
    assert after.version == before.version + 1
    assert after.last_change == model.Change(action, "ops", T0 + 1, "why")


@pytest.mark.parametrize("terminal", [Status.REVOKED, Status.EXPIRED])
@pytest.mark.parametrize("action", [*SIMPLE, Action.ROTATE, Action.REMIND, Action.UPDATE])
def test_nothing_leaves_a_terminal_status(terminal: Status, action: Action) -> None:
    with pytest.raises(TransitionError):
        model.check_allowed(record(status=terminal), action, T0 + 1)


def test_resume_returns_to_the_status_it_was_suspended_from() -> None:
    rotating = record(status=Status.ROTATING, grace_until=T0 + 7 * DAY, successor="BBBBBBBBBBBB")
    suspended = model.transition(rotating, Action.SUSPEND, now=T0, actor="ops")
    assert suspended.suspended_from is Status.ROTATING
    assert model.transition(suspended, Action.RESUME, now=T0 + 1, actor="ops").status is Status.ROTATING


def test_a_suspended_predecessor_cannot_be_resumed_past_its_grace() -> None:
    suspended = record(status=Status.SUSPENDED, suspended_from=Status.ROTATING, grace_until=T0 + DAY)
    with pytest.raises(TransitionError):
        model.transition(suspended, Action.RESUME, now=T0 + 2 * DAY, actor="ops")


def test_a_leak_records_when_and_keeps_the_key_reversible() -> None:
    leaked = model.transition(record(), Action.LEAK, now=T0 + 5, actor="github", reason="https://x")
    assert leaked.leaked_at == T0 + 5
    assert model.transition(leaked, Action.RESUME, now=T0 + 6, actor="ops").status is Status.ACTIVE


def test_rotation_copies_the_policy_to_a_successor_and_starts_grace() -> None:
    before = record(deny_cidrs=("10.1.0.0/16",), expires_at=T0 + 200 * DAY)
    pred, succ = model.rotate(
        before,
        now=T0 + 30 * DAY,
        actor="schedule",
        grace_days=7,
        successor_kid="BBBBBBBBBBBB",
        successor_digest="e" * 64,
        pepper_version="2",
    )
    assert pred.status is Status.ROTATING and pred.successor == "BBBBBBBBBBBB"
    assert pred.grace_until == T0 + 37 * DAY
    assert succ.status is Status.ACTIVE and succ.predecessor == before.kid
    for name in (
        "owner_id",
        "scopes",
        "allow_cidrs",
        "deny_cidrs",
        "metadata",
        "rotation_days",
        "signing",
        "env",
    ):
        assert getattr(succ, name) == getattr(before, name), name
    assert succ.rotate_after == T0 + 60 * DAY
    assert succ.digest != before.digest and succ.pepper_version == "2"


def test_rotation_grace_never_outlives_the_keys_expiry() -> None:
    before = record(expires_at=T0 + 31 * DAY)
    pred, _ = model.rotate(
        before,
        now=T0 + 30 * DAY,
        actor="s",
        grace_days=7,
        successor_kid="B" * 12,
        successor_digest="e",
        pepper_version="1",
    )
    assert pred.grace_until == T0 + 31 * DAY


def test_a_key_is_rotated_only_once() -> None:
    with pytest.raises(TransitionError):
        model.rotate(
            record(status=Status.ROTATING),
            now=T0,
            actor="s",
            grace_days=7,
            successor_kid="B" * 12,
            successor_digest="e",
            pepper_version="1",
        )


@pytest.mark.parametrize("days", [29, 91, 0, -1, True, "30"])
def test_rotation_days_outside_30_to_90_are_refused(days: object) -> None:
    with pytest.raises(ValidationError):
        model.validate_rotation_days(days)  # type: ignore[arg-type]


@pytest.mark.parametrize("days", [30, 45, 90])
def test_rotation_days_inside_30_to_90_are_kept(days: int) -> None:
    assert model.validate_rotation_days(days) == days


def test_expiry_is_capped() -> None:
    with pytest.raises(ValidationError):
        model.validate_lifetime_days(366)
    assert model.validate_lifetime_days(365) == 365
    assert model.validate_lifetime_days(None) is None


def test_cidrs_are_validated_and_normalised_for_v4_and_v6() -> None:
    assert model.validate_cidrs(["10.1.2.3/8", "2001:DB8::1/32", "192.0.2.7"], "allow") == (
        "10.0.0.0/8",
        "2001:db8::/32",
        "192.0.2.7/32",
    )
    for bad in ["10.0.0.0/33", "not-an-ip", "2001:db8::/129", ""]:
        with pytest.raises(ValidationError):
            model.validate_cidrs([bad], "allow")


def test_ipv4_mapped_cidrs_are_normalised_to_the_ipv4_network_they_map() -> None:
    assert model.validate_cidrs(
        ["::ffff:198.51.100.0/120", "::FFFF:203.0.113.9", "::ffff:0:0/96", "::ffff:10.0.0.0/104"], "deny"
    ) == ("198.51.100.0/24", "203.0.113.9/32", "0.0.0.0/0", "10.0.0.0/8")
    # wider IPv6 networks stay IPv6 (mapped sources are IPv4); a repeat in either form is one entry
    assert model.validate_cidrs(["::/0", "198.51.100.0/24", "::ffff:198.51.100.0/120"], "deny") == (
        "::/0",
        "198.51.100.0/24",
    )


@pytest.mark.parametrize("scope", ["", "has space", "x" * 65, "-leading", "semi;colon"])
def test_bad_scopes_are_refused(scope: str) -> None:
    with pytest.raises(ValidationError):
        model.validate_scopes([scope])


def test_update_changes_policy_and_resets_the_rotation_clock() -> None:
    after = model.update(record(), now=T0 + 5, actor="ops", scopes=["orders:write"], rotation_days=60)
    assert after.scopes == ("orders:write",)
    assert after.rotate_after == T0 + 60 * DAY
    with pytest.raises(ValidationError):
        model.update(record(), now=T0, actor="ops", digest="x")


def test_next_due_is_the_first_pending_action() -> None:
    active = record()  # rotate_after = T0 + 30d
    assert model.next_due(active) == T0 + 23 * DAY  # 7-day reminder first
    assert model.next_due(replace(active, reminded="7d")) == T0 + 29 * DAY
    assert model.next_due(replace(active, reminded="1d")) == T0 + 30 * DAY
    assert model.next_due(replace(active, reminded="1d", expires_at=T0 + 10 * DAY)) == T0 + 10 * DAY
    rotating = replace(active, status=Status.ROTATING, grace_until=T0 + 37 * DAY)
    assert model.next_due(rotating) == T0 + 36 * DAY
    assert model.next_due(replace(rotating, reminded="grace")) == T0 + 37 * DAY
    assert model.next_due(replace(active, status=Status.SUSPENDED)) is None
    assert model.next_due(replace(active, status=Status.REVOKED)) is None


# ---------------------------------------------------------------- chains, expiry as a limit, durations


def rotated(before: KeyRecord, *, now: int = T0, **kwargs: object) -> tuple[KeyRecord, KeyRecord]:
    return model.rotate(
        before,
        now=now,
        actor="a",
        grace_days=7,
        successor_kid="B" * 12,
        successor_digest="e",
        pepper_version="1",
        **kwargs,  # type: ignore[arg-type]
    )


def test_a_successor_keeps_its_predecessors_absolute_expiry() -> None:
    before = record(expires_at=T0 + 10 * DAY)
    _, succ = rotated(before, now=T0 + 9 * DAY, issued_by=model.IssuedBy.OWNER)
    assert succ.expires_at == T0 + 10 * DAY, "a rotation never restarts the clock"
    _, forever = rotated(record(), now=T0 + 9 * DAY)
    assert forever.expires_at is None


def test_a_key_past_its_expiry_is_not_rotated() -> None:
    with pytest.raises(TransitionError, match="expiry"):
        rotated(record(expires_at=T0 + DAY), now=T0 + DAY)


@pytest.mark.parametrize("issued_by", list(model.IssuedBy))
def test_a_successor_says_who_minted_it_and_only_the_owners_starts_a_new_chain(
    issued_by: model.IssuedBy,
) -> None:
    before = record(scopes=("prices:read", model.ROTATE_SELF_SCOPE))
    _, succ = rotated(before, issued_by=issued_by)
    assert succ.issued_by is issued_by and succ.public_view()["issued_by"] == str(issued_by)
    assert model.in_chain(succ) is (issued_by is not model.IssuedBy.OWNER)
    assert record().issued_by is model.IssuedBy.OWNER


def test_a_holder_rotates_only_with_the_scope_and_never_under_a_leak_report() -> None:
    from keysentry.errors import ForbiddenError

    with pytest.raises(ForbiddenError, match=model.ROTATE_SELF_SCOPE):
        rotated(record(), issued_by=model.IssuedBy.HOLDER)
    allowed = record(scopes=(model.ROTATE_SELF_SCOPE,))
    assert rotated(allowed, issued_by=model.IssuedBy.HOLDER)[1].issued_by is model.IssuedBy.HOLDER
    with pytest.raises(TransitionError, match="leak"):
        rotated(replace(allowed, leaked_at=T0 - 1), issued_by=model.IssuedBy.HOLDER)


def test_only_the_owner_replaces_a_suspended_key_and_it_stays_suspended() -> None:
    suspended = model.transition(record(), Action.SUSPEND, now=T0, actor="ops")
    for minter in (model.IssuedBy.HOLDER, model.IssuedBy.SCHEDULE):
        with pytest.raises(TransitionError):
            rotated(suspended, issued_by=minter)
    pred, succ = rotated(suspended, now=T0 + 5, issued_by=model.IssuedBy.OWNER)
    assert pred.status is Status.SUSPENDED and pred.successor == succ.kid
    assert pred.suspended_from is Status.ROTATING and pred.grace_until == T0 + 5 + 7 * DAY
    assert succ.status is Status.ACTIVE and succ.scopes == suspended.scopes
    assert model.transition(pred, Action.RESUME, now=T0 + 6, actor="ops").status is Status.ROTATING
    with pytest.raises(TransitionError, match="already rotated"):
        rotated(pred, issued_by=model.IssuedBy.OWNER)


def test_a_key_reported_as_leaked_twice_is_changed_once() -> None:
    leaked = model.transition(record(), Action.LEAK, now=T0, actor="github")
    with pytest.raises(TransitionError):
        model.transition(leaked, Action.LEAK, now=T0 + 1, actor="github")
    suspended = model.transition(record(), Action.SUSPEND, now=T0, actor="ops")
    assert model.transition(suspended, Action.LEAK, now=T0 + 1, actor="github").leaked_at == T0 + 1


@pytest.mark.parametrize(
    ("given", "seconds"),
    [
        (90, 90),
        ("90", 90),
        ("90s", 90),
        ("30m", 1800),
        ("2h", 7200),
        ("2H", 7200),
        ("7d", 7 * DAY),
        ("PT2H", 7200),
        ("pt30m", 1800),
        ("P7D", 7 * DAY),
        ("P1W", 7 * DAY),
        ("P1DT12H", 36 * 3600),
        ("PT1H30M", 5400),
    ],
)
def test_durations_in_seconds_minutes_hours_days_and_iso_8601(given: int | str, seconds: int) -> None:
    assert model.parse_duration(given) == seconds


@pytest.mark.parametrize(
    "given", ["", "P", "PT", "P1DT", "P1M", "P1Y", "2 hours", "-5m", "1.5h", "h", "\u00b2", "\u0663h", True]
)
def test_what_is_not_a_duration_is_refused(given: object) -> None:
    with pytest.raises(ValidationError, match="duration"):
        model.parse_duration(given)  # type: ignore[arg-type]


def test_a_lifetime_is_a_minute_to_max_lifetime_days() -> None:
    with pytest.raises(ValidationError, match="minute"):
        model.validate_lifetime_seconds(59)
    with pytest.raises(ValidationError, match="365 days"):
        model.validate_lifetime_seconds(365 * DAY + 1)
    assert model.validate_lifetime_seconds(60) == 60
    assert model.validate_lifetime_seconds(365 * DAY) == 365 * DAY
    short = model.new_record(
        kid="A" * 12,
        owner_id="o",
        env="live",
        digest="d",
        pepper_version="1",
        now=T0,
        actor="a",
        expires_in="2h",
    )
    assert short.expires_at == T0 + 7200
    with pytest.raises(ValidationError, match="once"):
        model.new_record(
            kid="A" * 12,
            owner_id="o",
            env="live",
            digest="d",
            pepper_version="1",
            now=T0,
            actor="a",
            expires_in="2h",
            expires_in_days=1,
        )


def test_an_issued_key_is_its_spec_with_the_deployments_default_rotation() -> None:
    spec = model.KeySpec("acme", scopes=["prices:read"], expires_in="2h")
    issued = model.issue(
        spec,
        kid="A" * 12,
        digest="d",
        pepper_version="1",
        now=T0,
        actor="a",
        signing=model.Signing(),
        default_rotation_days=45,
    )
    assert (issued.owner_id, issued.scopes, issued.rotation_days) == ("acme", ("prices:read",), 45)
    assert issued.expires_at == T0 + 7200


def test_the_status_query_pattern_is_the_status_enum() -> None:
    import re

    assert all(re.fullmatch(model.STATUS_PATTERN, str(status)) for status in Status)
    assert re.fullmatch(model.STATUS_PATTERN, "deleted") is None
