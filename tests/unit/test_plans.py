"""Plans: parsing the deployment's plans, quota periods, usage identifiers; the template's defaults."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st
from keysentry import keyformat
from keysentry.errors import MalformedKeyError, ValidationError
from keysentry.plans import DEFAULT_PLAN, DEFAULT_PLANS, Plans, Quota, period_bounds, usage_identifier
from keysentry_dev.template import load_template

ROOT = Path(__file__).resolve().parents[2]


def test_the_templates_plans_are_the_packages_defaults() -> None:
    parameters = load_template(ROOT / "template.yaml")["Parameters"]
    assert json.loads(parameters["Plans"]["Default"]) == json.loads(DEFAULT_PLANS)
    assert parameters["DefaultPlan"]["Default"] == DEFAULT_PLAN


def test_plans_are_parsed_with_their_quotas_and_the_default_has_none() -> None:
    plans = Plans.from_json(DEFAULT_PLANS, DEFAULT_PLAN)
    assert plans.get("free").quota == Quota(1000, "DAY")
    assert plans.get(None).name == plans.get("").name == "unlimited" and plans.get(None).quota is None
    assert plans.check("pro") == "pro"
    with pytest.raises(ValidationError, match="unknown plan; the plans are: free, pro, unlimited"):
        plans.check("gold")


@pytest.mark.parametrize(
    ("document", "message"),
    [
        ("[]", "JSON object of 1 to 20"),
        ("{", "must be a JSON object"),
        ('{"Free": {"rate": 1, "burst": 1}}', "plan name"),
        ('{"free": {"rate": 0, "burst": 1}}', "rate must be a number"),
        ('{"free": {"rate": true, "burst": 1}}', "rate must be a number"),
        ('{"free": {"rate": 1, "burst": 1.5}}', "burst must be a whole number"),
        ('{"free": {"rate": 1}}', "give rate, burst"),
        ('{"free": {"rate": 1, "burst": 1, "extra": 2}}', "give rate, burst"),
        ('{"free": {"rate": 1, "burst": 1, "quota": {"limit": 0, "period": "DAY"}}}', "limit must be"),
        (
            '{"free": {"rate": 1, "burst": 1, "quota": {"limit": 5, "period": "YEAR"}}}',
            "period must be one of",
        ),
    ],
)
def test_a_wrong_plan_document_is_refused_with_its_reason(document: str, message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        Plans.from_json(document, "free")


def test_the_default_must_be_a_plan() -> None:
    with pytest.raises(ValidationError, match="default plan must be one of the plans"):
        Plans.from_json('{"free": {"rate": 1, "burst": 1}}', "pro")


@given(now=st.integers(0, 4_102_444_800), period=st.sampled_from(["DAY", "WEEK", "MONTH"]))
def test_a_period_holds_its_instant_and_starts_where_api_gateway_starts_it(now: int, period: str) -> None:
    start, end = period_bounds(period, now)
    assert start <= now < end
    first = dt.datetime.fromtimestamp(start, dt.UTC)
    assert (first.hour, first.minute, first.second) == (0, 0, 0)
    if period == "WEEK":
        assert first.weekday() == 0 and end - start == 7 * 86_400
    if period == "MONTH":
        assert first.day == 1 and dt.datetime.fromtimestamp(end, dt.UTC).day == 1
        assert 28 * 86_400 <= end - start <= 31 * 86_400
    if period == "DAY":
        assert end - start == 86_400


def test_a_usage_identifier_is_public_long_enough_and_no_key() -> None:
    kid = keyformat.new_kid()
    identifier = usage_identifier(kid)
    assert len(identifier) >= 20 and identifier.endswith(kid)
    with pytest.raises(MalformedKeyError):
        keyformat.parse(identifier)
