"""Alerts from real stream records: write through the store, read the stream, feed the handler."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import pytest
from keysentry import model
from keysentry.alerts import AlertPublisher, CacheFlusher, lifecycle_event

from functions.alerts import handler
from tests.conftest import EVENTS, FakeClock
from tests.integration.stream_helpers import StreamReader, Targets, batch


@pytest.fixture
def stream(stack: Any) -> StreamReader:
    return StreamReader(stack.refs["KeysTable"])


@pytest.fixture
def targets(stack: Any) -> Targets:
    return Targets(stack)


@pytest.fixture
def run(lambda_context: Any) -> Any:
    def call(records: list[dict[str, Any]], **kwargs: Any) -> dict[str, Any]:
        return handler.lambda_handler(batch(records), lambda_context, **kwargs)

    return call


def by_type(envelopes: list[dict[str, Any]]) -> list[tuple[str, str]]:
    return [(json.loads(e["Message"])["type"], json.loads(e["Message"])["kid"]) for e in envelopes]


def test_each_transition_yields_its_event_on_the_topic_and_the_bus(
    service: Any, stream: StreamReader, targets: Targets, run: Any, clock: FakeClock
) -> None:
    a = service.create("acme", actor="ops", scopes=["prices:read"]).record.kid
    service.suspend(a, actor="sec", reason="leak?")
    service.resume(a, actor="sec", reason="false alarm")
    service.update(a, actor="ops", scopes=["prices:read", "orders:write"])
    record = service.get(a)
    service.store.apply(record, model.remind(record, "7d", now=clock(), actor="schedule"))
    successor = service.rotate(a, actor="schedule").record.kid
    service.report_leak(successor, actor="github", reason="https://github.com/x/y/blob/main/.env")
    service.revoke(successor, actor="sec", reason="confirmed leak")
    service.expire(service.get(a), actor="schedule", reason="grace ended")

    assert run(stream.read()) == {"batchItemFailures": []}

    expected = [
        ("created", a),
        ("suspended", a),
        ("resumed", a),
        ("policy_changed", a),
        ("rotation_due_soon", a),
        ("rotated", a),
        ("created", successor),
        ("leaked", successor),
        ("revoked", successor),
        ("expired", a),
    ]
    sns = targets.from_sns()
    assert by_type(sns) == expected
    bus = targets.from_bus()
    assert [(e["detail-type"], e["detail"]["kid"]) for e in bus] == [(f"key.{t}", k) for t, k in expected]
    assert all(e["source"] == "keysentry" for e in bus)

    revoked = json.loads(sns[8]["Message"])
    assert revoked["reason"] == "confirmed leak" and revoked["actor"] == "sec"
    assert (revoked["old_status"], revoked["new_status"], revoked["severity"]) == (
        "suspended",
        "revoked",
        "high",
    )
    rotated = json.loads(sns[5]["Message"])
    assert rotated["successor"] == successor and rotated["new_status"] == "rotating"
    assert json.loads(sns[3]["Message"])["changed"] == ["scopes"]
    assert json.loads(sns[4]["Message"])["reminder"] == "7d"
    attributes = sns[8]["MessageAttributes"]
    assert {k: v["Value"] for k, v in attributes.items()} == {
        "event_type": "revoked",
        "owner_id": "acme",
        "severity": "high",
    }


def test_records_that_are_not_transitions_produce_nothing(
    service: Any, stream: StreamReader, targets: Targets, run: Any, clock: FakeClock
) -> None:
    kid = service.create("acme", actor="ops").record.kid
    stream.read()
    service.store.touch(kid, clock(), stale_before=clock())
    service.store.set_pickup(kid, "c2VhbGVk")
    service.store.set_pickup(kid, None)
    records = stream.read()
    assert len(records) == 3
    assert run(records) == {"batchItemFailures": []}
    assert targets.from_sns() == [] and targets.from_bus() == []


def test_audit_entries_produce_nothing(service: Any, stream: StreamReader) -> None:
    service.create("acme", actor="ops")
    records = stream.read()
    kinds = [
        lifecycle_event(r["eventID"], r["dynamodb"].get("OldImage"), r["dynamodb"].get("NewImage"))
        for r in records
    ]
    assert sum(k is not None for k in kinds) == 1 and len(records) == 2


def test_a_poison_record_is_reported_alone(
    service: Any, stream: StreamReader, targets: Targets, run: Any
) -> None:
    for owner in ("a", "b", "c"):
        service.create(owner, actor="ops")
    records = [r for r in stream.read() if r["dynamodb"]["Keys"]["sk"]["S"] == "KEY"]
    records[1]["dynamodb"]["NewImage"]["status"]["S"] = "bogus"
    response = run(records)
    assert response == {"batchItemFailures": [{"itemIdentifier": records[1]["dynamodb"]["SequenceNumber"]}]}
    assert len(targets.from_sns()) == 2 and len(targets.from_bus()) == 2


def test_a_redelivered_batch_publishes_nothing_twice(
    service: Any, stream: StreamReader, targets: Targets, run: Any
) -> None:
    kid = service.create("acme", actor="ops").record.kid
    service.revoke(kid, actor="sec", reason="x")
    records = stream.read()
    assert run(records) == {"batchItemFailures": []}
    assert run(records) == {"batchItemFailures": []}
    assert run(records[2:]) == {"batchItemFailures": []}  # a bisected retry
    assert len(targets.from_sns()) == 2 and len(targets.from_bus()) == 2


class FlakySns:
    """Fails the given entry ids on the first call(s), as PublishBatch reports partial failures."""

    def __init__(self, fail_times: int) -> None:
        self.fail_times = fail_times
        self.calls: list[int] = []

    def publish_batch(
        self, TopicArn: str, PublishBatchRequestEntries: Sequence[dict[str, Any]]
    ) -> dict[str, Any]:
        self.calls.append(len(PublishBatchRequestEntries))
        if len(self.calls) <= self.fail_times:
            return {
                "Successful": [],
                "Failed": [{"Id": PublishBatchRequestEntries[0]["Id"], "Code": "Throttled"}],
            }
        return {"Successful": [{"Id": e["Id"]} for e in PublishBatchRequestEntries], "Failed": []}


def test_partial_failures_of_a_batch_call_are_retried(
    service: Any, stream: StreamReader, run: Any, stack: Any
) -> None:
    for owner in ("a", "b", "c"):
        service.create(owner, actor="ops")
    sns = FlakySns(fail_times=1)
    publisher = AlertPublisher(stack.refs["AlertsTopic"], "", sns=sns, sleep=lambda s: None)
    assert run(stream.read(), publisher=publisher) == {"batchItemFailures": []}
    assert sns.calls == [3, 1]


def test_an_event_that_cannot_be_published_is_retried_later_and_then_sent_once(
    service: Any, stream: StreamReader, run: Any, stack: Any
) -> None:
    service.create("a", actor="ops")
    service.create("b", actor="ops")
    records = stream.read()
    failing = AlertPublisher(stack.refs["AlertsTopic"], "", sns=FlakySns(fail_times=99), sleep=lambda s: None)
    response = run(records, publisher=failing)
    assert len(response["batchItemFailures"]) == 1
    healthy = FlakySns(fail_times=0)
    assert run(records, publisher=AlertPublisher(stack.refs["AlertsTopic"], "", sns=healthy)) == {
        "batchItemFailures": []
    }
    assert healthy.calls == [1], "only the event that failed is sent again"


def test_one_publish_call_per_ten_events_per_target(
    service: Any, stream: StreamReader, stack: Any, run: Any
) -> None:
    for i in range(25):
        service.create(f"owner{i}", actor="ops")
    publisher = AlertPublisher(stack.refs["AlertsTopic"], stack.refs["EventBus"])
    assert run(stream.read(), publisher=publisher) == {"batchItemFailures": []}
    assert publisher.calls == 6  # 3 PublishBatch + 3 PutEvents for 25 events


class RecordingApiGateway:
    def __init__(self) -> None:
        self.flushed: list[tuple[str, str]] = []

    def flush_stage_authorizers_cache(self, restApiId: str, stageName: str) -> None:
        self.flushed.append((restApiId, stageName))


def test_a_revocation_flushes_the_stage_authorizer_cache_once(
    service: Any, stream: StreamReader, targets: Targets, run: Any
) -> None:
    a = service.create("acme", actor="ops").record.kid
    b = service.create("acme", actor="ops").record.kid
    stream.read()
    service.revoke(a, actor="sec", reason="x")
    service.suspend(b, actor="sec", reason="y")
    api = RecordingApiGateway()
    assert run(stream.read(), flusher=CacheFlusher("a1b2c3d4e5/prod", client=api)) == {
        "batchItemFailures": []
    }
    assert api.flushed == [("a1b2c3d4e5", "prod")]
    events = [json.loads(e["Message"]) for e in targets.from_sns()]
    assert [e["authorizer_cache_flushed"] for e in events] == [True, True]


def test_no_event_carries_a_key_digest_or_secret(
    service: Any, stream: StreamReader, targets: Targets, run: Any, leak_guard: list[str]
) -> None:
    kid = service.create("acme", actor="ops").record.kid
    successor = service.rotate(kid, actor="ops").record.kid
    service.revoke(successor, actor="sec", reason="x")
    digests = [service.get(k).digest for k in (kid, successor)]
    run(stream.read())
    published = json.dumps(targets.from_sns()) + json.dumps(targets.from_bus())
    assert published.count('"kid"') > 0
    for secret in [*leak_guard, *digests]:
        assert secret not in published
    assert "digest" not in published and "pickup" not in published and "secret_ciphertext" not in published


@pytest.mark.parametrize("path", sorted(EVENTS.glob("alerts_stream_*.json")), ids=lambda p: p.stem)
def test_the_event_files_are_accepted(path: Any, lambda_context: Any, targets: Targets) -> None:
    expected = path.stem.removeprefix("alerts_stream_")
    response = handler.lambda_handler(json.loads(path.read_text()), lambda_context)
    assert response == {"batchItemFailures": []}
    types = [json.loads(e["Message"])["type"] for e in targets.from_sns()]
    assert types == ([] if expected == "not_a_transition" else [expected])


def test_every_published_event_matches_the_documented_schema(
    service: Any, stream: StreamReader, targets: Targets, run: Any, clock: FakeClock
) -> None:
    import jsonschema

    from tests.conftest import ROOT

    schema = json.loads((ROOT / "docs" / "alert-event.schema.json").read_text())
    kid = service.create("acme", actor="ops").record.kid
    service.suspend(kid, actor="sec", reason="r")
    service.resume(kid, actor="sec")
    service.update(kid, actor="ops", deny_cidrs=["10.0.0.0/8"])
    successor = service.rotate(kid, actor="ops").record.kid
    service.revoke(successor, actor="sec", reason="x")
    run(stream.read())
    envelopes = targets.from_sns()
    assert len(envelopes) == 7
    for envelope in envelopes:
        jsonschema.validate(json.loads(envelope["Message"]), schema)
    for event in targets.from_bus():
        jsonschema.validate(event["detail"], schema)
