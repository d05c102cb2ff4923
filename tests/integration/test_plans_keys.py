"""A key's plan through the API, the CLI and the service: given at issue, checked against the
deployment's plans, changed by an update (audited, alerted), inherited by a successor; and a key's
reading shows its plan and the quota it used this period, counted by the real usage function."""

from __future__ import annotations

import json
from typing import Any

import pytest
from keysentry import cli
from keysentry.alerts import lifecycle_event
from keysentry.plans import Plans
from keysentry.service import KeyService
from keysentry.settings import Settings
from keysentry.store import to_item

from tests.conftest import T0, FakeClock
from tests.integration.api_helpers import call
from tests.integration.usage_helpers import access_line, mark_exhausted, subscription_event, usage_function

DAY = 86_400
TODAY = T0 - T0 % DAY  # 2026-09-21T00:00:00Z
MONTH_START = 1_788_220_800  # 2026-09-01T00:00:00Z
MONTH_END = 1_790_812_800  # 2026-10-01T00:00:00Z
PLANS_ARE = "unknown plan; the plans are: free, pro, unlimited"


def create(lambda_context: Any, **body: Any) -> tuple[int, Any]:
    body = {"owner": "acme", "scopes": ["prices:read"], **body}
    return call("api_create_key", lambda_context, body=body, headers={"Idempotency-Key": ""})


def feed(lambda_context: Any, monkeypatch: pytest.MonkeyPatch, lines: list[tuple[int, str]]) -> None:
    """Access log lines through the usage function, as CloudWatch Logs delivers them."""
    usage_function(monkeypatch).lambda_handler(subscription_event(lines), lambda_context)


def requests(kid: str, at: int, count: int) -> list[tuple[int, str]]:
    return [(at * 1000, access_line(kid, at * 1000, n=n)) for n in range(count)]


# ---------------------------------------------------------------- at issue


@pytest.mark.usefixtures("api_service")
def test_a_key_is_issued_on_the_plan_asked_for_or_on_the_default(lambda_context: Any) -> None:
    status, free = create(lambda_context, plan="free")
    assert status == 200 and free["plan"] == "free"
    status, default = create(lambda_context)
    assert status == 200 and default["plan"] == "unlimited"  # the deployment's DefaultPlan


@pytest.mark.usefixtures("api_service")
def test_an_unknown_plan_is_refused_with_the_plans_there_are(lambda_context: Any, service: Any) -> None:
    status, doc = create(lambda_context, plan="gold")
    assert status == 400 and doc["message"] == PLANS_ARE
    assert service.list_keys("acme")[0] == []
    status, doc = create(lambda_context, plan="Gold Plan!")  # not a plan name at all
    assert status == 422 and "plan" in json.dumps(doc)


def test_a_later_change_of_the_default_plan_moves_no_existing_key(stack: Any, clock: FakeClock) -> None:
    before = KeyService.from_settings(Settings.from_env(), clock=clock)
    kid = before.create("acme", actor="ops").record.kid
    settings = Settings.from_env({**_env(), "DEFAULT_PLAN": "free"})
    after = KeyService.from_settings(settings, clock=clock)
    assert after.get(kid).plan == "unlimited"
    assert after.view(kid)["plan"]["name"] == "unlimited"
    assert after.create("acme", actor="ops").record.plan == "free"


def _env() -> dict[str, str]:
    import os

    return dict(os.environ)


# ---------------------------------------------------------------- changing it


@pytest.mark.usefixtures("api_service")
def test_a_plan_change_is_applied_audited_and_named_in_the_policy_changed_alert(
    lambda_context: Any, service: Any
) -> None:
    _, doc = create(lambda_context, plan="free")
    kid = doc["kid"]
    old = service.get(kid)
    status, updated = call("api_update_key", lambda_context, kid=kid, body={"plan": "pro"})
    assert status == 200 and updated["plan"] == "pro"
    new = service.get(kid)
    assert new.plan == "pro" and new.version == old.version + 1
    entry = service.audit(kid)[-1].as_dict()
    assert entry["changes"]["plan"] == {"from": "free", "to": "pro"}
    alert = lifecycle_event("evt-plan", to_item(old), to_item(new))
    assert alert is not None and alert["type"] == "policy_changed" and alert["changed"] == ["plan"]


@pytest.mark.usefixtures("api_service")
def test_an_update_to_an_unknown_plan_changes_nothing(lambda_context: Any, service: Any) -> None:
    _, doc = create(lambda_context, plan="free")
    before = service.get(doc["kid"])
    status, answer = call(
        "api_update_key", lambda_context, kid=doc["kid"], body={"plan": "gold", "name": "x"}
    )
    assert status == 400 and answer["message"] == PLANS_ARE
    assert service.get(doc["kid"]) == before


def test_a_successor_keeps_its_predecessors_plan(service: Any) -> None:
    issued = service.create("acme", actor="ops", plan="free", scopes=["keys:rotate-self"])
    by_owner = service.rotate(issued.record.kid, actor="ops")
    assert by_owner.record.plan == "free"
    by_holder = service.rotate_self(by_owner.record.kid)
    assert by_holder.record.plan == "free"


# ---------------------------------------------------------------- reading it


@pytest.mark.usefixtures("api_service")
def test_a_keys_reading_shows_its_plan_and_the_quota_used_this_period(
    lambda_context: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    _, daily = create(lambda_context, plan="free")  # 1000 a UTC day
    _, monthly = create(lambda_context, plan="pro")  # 1000000 a calendar month
    lines = requests(daily["kid"], TODAY - 3600, 4) + requests(daily["kid"], TODAY + 60, 3)
    lines += requests(monthly["kid"], MONTH_START - 60, 5) + requests(monthly["kid"], MONTH_START + 60, 2)
    lines += requests(monthly["kid"], TODAY + 120, 6)
    feed(lambda_context, monkeypatch, lines)

    status, doc = call("api_get_key", lambda_context, kid=daily["kid"])
    assert status == 200
    assert doc["plan"] == {
        "name": "free",
        "rate": 5.0,
        "burst": 10,
        "quota": {"limit": 1000, "period": "DAY"},
        "declared": True,
    }
    assert doc["quota"] == {"limit": 1000, "period": "DAY", "used": 3, "resets_at": TODAY + DAY}
    _, doc = call("api_get_key", lambda_context, kid=monthly["kid"])
    assert doc["quota"] == {"limit": 1_000_000, "period": "MONTH", "used": 8, "resets_at": MONTH_END}
    _, unlimited = create(lambda_context)
    _, doc = call("api_get_key", lambda_context, kid=unlimited["kid"])
    assert doc["plan"]["name"] == "unlimited" and doc["plan"]["quota"] is None and doc["quota"] is None


@pytest.mark.usefixtures("api_service")
def test_a_key_reads_its_own_plan_and_quota_and_when_it_is_refused_until(
    lambda_context: Any, service: Any, stack: Any
) -> None:
    _, doc = create(lambda_context, plan="free")
    mark_exhausted(stack, doc["kid"], TODAY + DAY)
    status, me = call("api_self", lambda_context, kid=doc["kid"])
    assert status == 200 and me["plan"]["name"] == "free"
    assert me["quota"] == {
        "limit": 1000,
        "period": "DAY",
        "used": 0,
        "resets_at": TODAY + DAY,
        "exhausted_until": TODAY + DAY,
    }


@pytest.mark.usefixtures("api_service")
def test_a_plan_the_deployment_no_longer_declares_is_shown_by_name(
    lambda_context: Any, service: Any, stack: Any
) -> None:
    _, doc = create(lambda_context, plan="free")
    service.settings = Settings.from_env({**_env(), "PLANS": '{"unlimited": {"rate": 10, "burst": 20}}'})
    assert service.settings.plans() == Plans.from_json(
        '{"unlimited": {"rate": 10, "burst": 20}}', "unlimited"
    )
    status, shown = call("api_get_key", lambda_context, kid=doc["kid"])
    assert status == 200 and shown["plan"]["name"] == "free" and shown["plan"]["declared"] is False
    assert shown["quota"] is None


# ---------------------------------------------------------------- the CLI


def run(capfd: pytest.CaptureFixture[str], *argv: str) -> tuple[int, Any, str]:
    code = cli.main(list(argv))
    out, err = capfd.readouterr()
    return code, json.loads(out) if "--json" in argv and code == 0 else out, err


def test_the_cli_issues_moves_and_shows_a_keys_plan(
    service: Any, capfd: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, stack: Any
) -> None:
    monkeypatch.setattr(cli, "_service", lambda args: service)
    code, created, _ = run(
        capfd, "keys", "create", "--owner", "acme", "--no-scopes", "--plan", "free", "--json"
    )
    assert code == 0 and created["plan"] == "free"
    kid = created["kid"]
    code, _, err = run(capfd, "keys", "create", "--owner", "acme", "--no-scopes", "--plan", "gold")
    assert code != 0 and PLANS_ARE in err
    code, updated, _ = run(capfd, "keys", "update", kid, "--plan", "pro", "--json")
    assert code == 0 and updated["plan"] == "pro"
    mark_exhausted(stack, kid, MONTH_END)
    code, shown, _ = run(capfd, "keys", "show", kid, "--json")
    assert code == 0 and shown["plan"]["name"] == "pro"
    assert shown["quota"] == {
        "limit": 1_000_000,
        "period": "MONTH",
        "used": 0,
        "resets_at": MONTH_END,
        "exhausted_until": MONTH_END,
    }
    code, text, _ = run(capfd, "keys", "show", kid)
    assert "plan:          pro (50/s, burst 100)" in text
    assert "quota:         0 of 1000000 this month, resets 2026-10-01T00:00:00Z" in text
    assert "refused until: 2026-10-01T00:00:00Z (quota exhausted)" in text
