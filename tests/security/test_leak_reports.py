"""Promises of the GitHub leak endpoint: a signed report acts once, and bad input is a clear 400."""

from __future__ import annotations

import json
from typing import Any

import pytest
from keysentry.model import Status

from tests.conftest import FakeClock, all_items
from tests.integration.api_helpers import call
from tests.integration.github_helpers import (
    deliver,
    keys_document,
    match,
    new_signer,
    publish,
    report,
    token_hash,
)

pytestmark = pytest.mark.usefixtures("api_service")


@pytest.fixture
def github(stack: Any, monkeypatch: pytest.MonkeyPatch) -> Any:
    monkeypatch.setenv("GITHUB_SCANNING_KEYS_PARAMETER", stack.refs["GitHubScanningKeys"])
    private = new_signer()
    publish(stack, keys_document(private))
    return private


def create(lambda_context: Any, **body: Any) -> dict[str, Any]:
    payload = {"owner": "acme-data", "scopes": ["prices:read"], **body}
    status, doc = call("api_create_key", lambda_context, body=payload, headers={"Idempotency-Key": ""})
    assert status == 200, doc
    return doc  # type: ignore[no-any-return]


def leak_entries(service: Any, kid: str) -> int:
    return sum(1 for entry in service.audit(kid) if entry.action == "leak")


# ---------------------------------------------------------------- replays


def test_a_replayed_report_does_not_re_suspend_a_resumed_key(
    lambda_context: Any, github: Any, service: Any, clock: FakeClock
) -> None:
    key = create(lambda_context)
    body = json.dumps([match(key["key"])])
    first = deliver(lambda_context, github, body)
    assert first[0] == 200 and first[1][0]["label"] == "true_positive"
    assert service.get(key["kid"]).status is Status.SUSPENDED
    clock.advance(days=2)
    service.resume(key["kid"], actor="owner@acme", reason="investigated: the repository was private")

    clock.advance(days=30)
    replayed = deliver(lambda_context, github, body)

    assert replayed == first, "a replay answers as the first delivery did"
    assert service.get(key["kid"]).status is Status.ACTIVE
    assert leak_entries(service, key["kid"]) == 1


def test_a_replayed_batch_changes_nothing_for_any_of_its_keys(
    lambda_context: Any, github: Any, service: Any
) -> None:
    keys = [create(lambda_context) for _ in range(3)]
    body = json.dumps([match(k["key"]) for k in keys])
    assert deliver(lambda_context, github, body)[0] == 200
    for k in keys:
        service.resume(k["kid"], actor="owner@acme", reason="false alarm")
    status, feedback = deliver(lambda_context, github, body)
    assert status == 200 and [f["label"] for f in feedback] == ["true_positive"] * 3
    assert all(service.get(k["kid"]).status is Status.ACTIVE for k in keys)
    assert all(leak_entries(service, k["kid"]) == 1 for k in keys)


def test_a_new_report_of_the_same_token_from_elsewhere_still_suspends(
    lambda_context: Any, github: Any, service: Any
) -> None:
    key = create(lambda_context)
    assert report(lambda_context, github, [match(key["key"])])[0] == 200
    service.resume(key["kid"], actor="owner@acme", reason="false alarm")

    elsewhere = "https://github.com/o/other/blob/main/config.py"
    status, feedback = report(lambda_context, github, [match(key["key"], url=elsewhere)])

    assert status == 200 and feedback[0]["label"] == "true_positive"
    record = service.get(key["kid"])
    assert record.status is Status.SUSPENDED
    assert service.audit(key["kid"])[-1].reason == f"found in public: {elsewhere}"
    service.resume(key["kid"], actor="owner@acme", reason="false alarm again")
    status, _ = report(lambda_context, github, [match(key["key"], url=elsewhere, source="commit")])
    assert status == 200 and service.get(key["kid"]).status is Status.SUSPENDED


def test_a_report_about_an_already_suspended_key_cannot_be_replayed_after_its_resume(
    lambda_context: Any, github: Any, service: Any
) -> None:
    key = create(lambda_context)
    service.suspend(key["kid"], actor="owner@acme", reason="maintenance")
    body = json.dumps([match(key["key"])])
    assert deliver(lambda_context, github, body)[1][0]["label"] == "true_positive"
    service.resume(key["kid"], actor="owner@acme", reason="maintenance over")
    assert deliver(lambda_context, github, body)[0] == 200
    assert service.get(key["kid"]).status is Status.ACTIVE


def test_a_delivery_that_failed_midway_acts_when_github_retries(
    lambda_context: Any, github: Any, service: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    key = create(lambda_context)
    body = json.dumps([match(key["key"])])
    real = service.report_leak

    def unavailable(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("DynamoDB unavailable")

    monkeypatch.setattr(service, "report_leak", unavailable)
    assert deliver(lambda_context, github, body)[0] == 500
    monkeypatch.setattr(service, "report_leak", real)

    status, feedback = deliver(lambda_context, github, body)
    assert status == 200 and feedback[0]["label"] == "true_positive"
    assert service.get(key["kid"]).status is Status.SUSPENDED


def test_the_seen_reports_hold_hashes_only_and_expire(
    lambda_context: Any, github: Any, service: Any, stack: Any, clock: FakeClock
) -> None:
    key = create(lambda_context, expires_in_days=30)
    url = "https://github.com/o/r/blob/main/settings.py"
    assert report(lambda_context, github, [match(key["key"], url=url)])[0] == 200

    seen = [i for i in all_items(stack.refs["NonceTable"]) if token_hash(key["key"]) in i["pk"]["S"]]
    assert len(seen) == 1
    text = json.dumps(seen)
    assert key["key"] not in text and url not in text and "settings.py" not in text
    expires_at = int(seen[0]["expires_at"]["N"])
    assert expires_at > service.get(key["kid"]).expires_at, "kept while the key can still be live"


def test_forged_and_unsigned_reports_leave_no_trace_in_the_seen_reports(
    lambda_context: Any, github: Any, service: Any, stack: Any
) -> None:
    key = create(lambda_context)
    assert report(lambda_context, new_signer(), [match(key["key"])])[0] == 401
    assert not [i for i in all_items(stack.refs["NonceTable"]) if token_hash(key["key"]) in i["pk"]["S"]]
    assert report(lambda_context, github, [match(key["key"])])[0] == 200
    assert service.get(key["kid"]).status is Status.SUSPENDED


# ---------------------------------------------------------------- bad input is a 400, nothing half-applied


@pytest.mark.parametrize(
    "body",
    [
        "[" * 100_000 + "]" * 100_000,
        '[{"token": "x", "url": ' + "[" * 5_000 + "]" * 5_000 + "}]",
        "{" + '"a":{' * 50_000 + "}" * 50_001,
    ],
    ids=["nested-arrays", "nested-in-a-match", "nested-objects"],
)
def test_deeply_nested_signed_json_is_a_clear_400(
    lambda_context: Any, github: Any, service: Any, body: str
) -> None:
    status, doc = deliver(lambda_context, github, body)
    assert status == 400, doc
    assert "JSON array" in doc["message"]


@pytest.mark.parametrize(
    "bad",
    [
        {"token": ["a list"]},
        {"token": 12},
        {"type": "keysentry_api_key", "url": "https://github.com/x"},
        {"token": "ks_live_x", "url": {"nested": {"deeper": [1, 2]}}},
        {"token": "ks_live_x", "source": 3},
        {"token": "ks_live_x", "type": None},
    ],
    ids=["list-token", "number-token", "no-token", "object-url", "number-source", "null-type"],
)
def test_a_batch_with_a_malformed_match_is_refused_whole(
    lambda_context: Any, github: Any, service: Any, bad: dict[str, Any]
) -> None:
    key = create(lambda_context)
    status, doc = report(lambda_context, github, [match(key["key"]), bad])
    assert status == 400, doc
    assert "token" in doc["message"]
    assert service.get(key["kid"]).status is Status.ACTIVE, "nothing is half-applied"
