"""The alerts function's de-duplication, against the template's idempotency table (moto): a
redelivered event that was published is not published again; one whose publish failed is published
on its redelivery; one that another invocation holds waits for that claim to lapse."""

from __future__ import annotations

import json
import os
import time
from typing import Any

import pytest
from keysentry.alerts import AlertPublisher, Deduplicator, EventInProgressError

from functions.alerts import handler
from tests.integration.stream_helpers import StreamReader, Targets, batch

T0 = 1_790_000_000.0


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> float:
        return self.now


def dedup(clock: Clock, remaining_ms: int = 30_000) -> Deduplicator:
    return Deduplicator(os.environ["IDEMPOTENCY_TABLE"], lambda: remaining_ms, clock=clock)


def test_a_published_event_is_a_duplicate_on_redelivery(stack: Any) -> None:
    clock = Clock()
    first = dedup(clock)
    assert first.claim("event-1")
    first.done("event-1")
    clock.now += 3600
    assert dedup(clock).claim("event-1") is False


def test_a_released_event_is_claimed_again_on_redelivery(stack: Any) -> None:
    clock = Clock()
    first = dedup(clock)
    assert first.claim("event-1")
    first.release("event-1")
    assert dedup(clock).claim("event-1") is True


def test_an_event_held_by_another_invocation_waits_for_its_claim_to_lapse(stack: Any) -> None:
    clock = Clock()
    assert dedup(clock, remaining_ms=10_000).claim("event-1")  # an invocation that then times out
    with pytest.raises(EventInProgressError):
        dedup(clock).claim("event-1")
    clock.now += 11
    assert dedup(clock).claim("event-1") is True


def test_a_claim_past_its_retention_is_claimed_again(stack: Any) -> None:
    clock = Clock()
    first = dedup(clock)
    first.claim("event-1")
    first.done("event-1")
    clock.now += 3 * 86_400 + 1  # DynamoDB's TTL may not have removed it yet
    assert dedup(clock).claim("event-1") is True


def test_events_published_before_an_upgrade_are_still_recognised(stack: Any) -> None:
    """The previous implementation claimed through Powertools' persistence layer: same table,
    same key, same record shape."""
    from aws_lambda_powertools.utilities.idempotency import DynamoDBPersistenceLayer, IdempotencyConfig
    from keysentry import aws

    layer = DynamoDBPersistenceLayer(
        table_name=os.environ["IDEMPOTENCY_TABLE"], boto3_client=aws.client("dynamodb")
    )
    layer.configure(IdempotencyConfig(event_key_jmespath="event_id"), function_name="alerts")
    layer.save_inprogress({"event_id": "event-1"}, 30_000)
    layer.save_success({"event_id": "event-1"}, {"published": True})
    layer.save_inprogress({"event_id": "event-2"}, 30_000)

    clock = Clock()
    clock.now = time.time()
    assert dedup(clock).claim("event-1") is False
    with pytest.raises(EventInProgressError):
        dedup(clock).claim("event-2")


class DownSns:
    def __init__(self) -> None:
        self.calls = 0

    def publish_batch(self, **kwargs: Any) -> dict[str, Any]:
        self.calls += 1
        raise ConnectionError("SNS is down")


def test_a_batch_whose_publish_failed_is_published_once_when_redelivered(
    service: Any, stack: Any, lambda_context: Any
) -> None:
    # Given two creations on the stream, and a first delivery while SNS is down
    stream, targets = StreamReader(stack.refs["KeysTable"]), Targets(stack)
    service.create("a", actor="ops")
    service.create("b", actor="ops")
    records = stream.read()
    keys = [r for r in records if r["dynamodb"]["Keys"]["sk"]["S"] == "KEY"]
    down = AlertPublisher(stack.refs["AlertsTopic"], "", sns=DownSns(), sleep=lambda s: None)
    failed = handler.lambda_handler(batch(records), lambda_context, publisher=down)
    assert sorted(f["itemIdentifier"] for f in failed["batchItemFailures"]) == sorted(
        r["dynamodb"]["SequenceNumber"] for r in keys
    )
    assert targets.from_sns() == []

    # When the batch is redelivered twice with SNS back
    assert handler.lambda_handler(batch(records), lambda_context) == {"batchItemFailures": []}
    assert handler.lambda_handler(batch(records), lambda_context) == {"batchItemFailures": []}

    # Then each event was published exactly once
    published = [json.loads(e["Message"])["kid"] for e in targets.from_sns()]
    assert sorted(published) == sorted(r["dynamodb"]["NewImage"]["kid"]["S"] for r in keys)


def test_a_record_held_by_another_invocation_fails_alone_and_is_not_published(
    service: Any, stack: Any, lambda_context: Any
) -> None:
    stream, targets = StreamReader(stack.refs["KeysTable"]), Targets(stack)
    service.create("a", actor="ops")
    service.create("b", actor="ops")
    keys = [r for r in stream.read() if r["dynamodb"]["Keys"]["sk"]["S"] == "KEY"]
    clock = Clock()
    clock.now = time.time()
    assert dedup(clock).claim(keys[0]["eventID"])  # another invocation is publishing it
    response = handler.lambda_handler(batch(keys), lambda_context)
    assert response == {"batchItemFailures": [{"itemIdentifier": keys[0]["dynamodb"]["SequenceNumber"]}]}
    assert [json.loads(e["Message"])["kid"] for e in targets.from_sns()] == [
        keys[1]["dynamodb"]["NewImage"]["kid"]["S"]
    ]
