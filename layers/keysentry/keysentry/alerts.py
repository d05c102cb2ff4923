"""Lifecycle alerts from the keys table's stream: one event per key transition, fanned out in batches.

- :func:`lifecycle_event` turns a stream record's old and new images into zero or one event (pure).
- :class:`AlertPublisher` sends events to the SNS topic (PublishBatch, with message attributes
  for filter policies) and the EventBridge bus (PutEvents), 10 at a time, retrying the entries a
  batch call reports as failed.
- :class:`CacheFlusher` flushes the REST stage's authorizer cache on every change that can narrow
  what a key may do (revoke, suspension, leak, expiry, policy change, rotation: :data:`FLUSH_ON`),
  and :class:`FlushScheduler` sends the second flush to the delay queue: a warm authorizer container
  may still allow from memory for up to its TTL and refill the stage's cache, so the stage is flushed
  again once that TTL (plus a margin) has passed. :class:`DelayedFlush` is that queue's consumer.
- :class:`Deduplicator` claims each stream event id in the idempotency table (Powertools'
  idempotency persistence layer) before publishing, so a redelivered record alerts once.

An event never carries the key, its digest, a signing secret or a pickup blob: it is built from an
allow-list of fields, not by removing secrets from the record. The one secret-bearing field it may
carry is a ``rotated`` event's ``sealed_successor``: the successor sealed to the consumer's X25519
delivery key, which only the holder of the private key can open (that is how it is delivered).
"""

from __future__ import annotations

import datetime as dt
import json
import math
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final, Protocol

from keysentry import aws
from keysentry.model import Action
from keysentry.store import from_item, is_key_item

if TYPE_CHECKING:
    from mypy_boto3_events.type_defs import PutEventsRequestEntryTypeDef
    from mypy_boto3_sns.type_defs import PublishBatchRequestEntryTypeDef

SCHEMA_VERSION: Final = "1"
SOURCE: Final = "keysentry"
BATCH: Final = 10
PUBLISH_ATTEMPTS: Final = 3

SEVERITY: Final = {
    "created": "info",
    "rotated": "info",
    "rotation_due_soon": "low",
    "resumed": "medium",
    "policy_changed": "medium",
    "expired": "medium",
    "suspended": "high",
    "revoked": "high",
    "leaked": "critical",
}
_BY_ACTION: Final = {
    Action.SUSPEND: "suspended",
    Action.RESUME: "resumed",
    Action.REVOKE: "revoked",
    Action.EXPIRE: "expired",
    Action.LEAK: "leaked",
    Action.ROTATE: "rotated",
    Action.REMIND: "rotation_due_soon",
    Action.UPDATE: "policy_changed",
}
# Every change that can narrow what a key may do: API Gateway's cached Allow would otherwise outlive
# it by up to the stage's TTL. A policy change may remove scopes, add a denied range or require
# signed requests; a rotation may end the predecessor at once (no grace). Only a creation, a resume
# and a reminder never narrow.
FLUSH_ON: Final = frozenset({"revoked", "suspended", "leaked", "expired", "policy_changed", "rotated"})
REFLUSH_MARGIN_S: Final = 5  # past the container TTL: clock granularity, a GetItem in flight
MAX_QUEUE_DELAY_S: Final = 900  # SQS DelaySeconds' ceiling
_POLICY_FIELDS: Final = ("name", "scopes", "allow_cidrs", "deny_cidrs", "metadata", "rotation_days")


def _iso(ts: int | None) -> str | None:
    return None if ts is None else dt.datetime.fromtimestamp(ts, dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def lifecycle_event(
    event_id: str, old_image: dict[str, Any] | None, new_image: dict[str, Any] | None
) -> dict[str, Any] | None:
    """The event for one stream record, or None when it is not a key transition.

    Raises (KeyError, ValueError) on a record that claims to be a key but cannot be decoded: that
    record is then reported as failed, alone.
    """
    if not new_image or not is_key_item(new_image):
        return None  # removals, audit entries
    new = from_item(new_image)
    old = from_item(old_image) if old_image and is_key_item(old_image) else None
    if old is not None and old.version == new.version:
        return None  # usage, re-hash, pickup set or erased: not a lifecycle change
    change = new.last_change
    if old is None:
        kind = "created"
    else:
        if change is None:
            raise ValueError("a key transition without its change")
        kind = _BY_ACTION.get(Action(change.action), "policy_changed")
    event: dict[str, Any] = {
        "schema_version": SCHEMA_VERSION,
        "id": event_id,
        "type": kind,
        "severity": _severity(kind, change.actor if change else None),
        "kid": new.kid,
        "owner_id": new.owner_id,
        "name": new.name,
        "env": new.env,
        "old_status": old.status.value if old else None,
        "new_status": new.status.value,
        "actor": change.actor if change else None,
        "reason": change.reason if change else "",
        "at": change.at if change else new.created_at,
        "time": _iso(change.at if change else new.created_at),
        "key_version": new.version,
        "predecessor": new.predecessor,
        "successor": new.successor,
        "rotate_after": new.rotate_after,
        "grace_until": new.grace_until,
        "expires_at": new.expires_at,
        "last_used_at": new.last_used_at,
    }
    if kind == "policy_changed" and old is not None:
        event["changed"] = [f for f in _POLICY_FIELDS if getattr(old, f) != getattr(new, f)]
    if kind == "rotation_due_soon":
        event["reminder"] = new.reminded
    if kind == "rotated" and new.sealed_successor:
        event["sealed_successor"] = dict(new.sealed_successor)
    return event


def _severity(kind: str, actor: str | None) -> str:
    """A key that minted its own successor (actor ``key:KID``) is worth a look: if it leaked, the
    successor is the attacker's too."""
    if kind in ("rotated", "created") and actor is not None and actor.startswith("key:"):
        return "medium"
    return SEVERITY[kind]


def _detail_type(event: dict[str, Any]) -> str:
    return f"key.{event['type']}"


class Publisher(Protocol):
    def publish(self, events: Sequence[dict[str, Any]]) -> set[str]:
        """Publish; return the ids of the events that could not be published."""
        ...


def _batches(items: Sequence[Any]) -> Iterable[Sequence[Any]]:
    for start in range(0, len(items), BATCH):
        yield items[start : start + BATCH]


class AlertPublisher:
    def __init__(
        self,
        topic_arn: str,
        bus_name: str,
        *,
        sns: Any = None,
        events: Any = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.topic_arn = topic_arn
        self.bus_name = bus_name
        self._sns = sns
        self._events = events
        self.sleep = sleep
        self.calls = 0

    def publish(self, events: Sequence[dict[str, Any]]) -> set[str]:
        failed: set[str] = set()
        for batch in _batches(events):
            if self.topic_arn:
                failed |= self._with_retries(batch, self._to_sns)
            if self.bus_name:
                failed |= self._with_retries(batch, self._to_bus)
        return failed

    def _with_retries(
        self, batch: Sequence[dict[str, Any]], send: Callable[[Sequence[dict[str, Any]]], set[str]]
    ) -> set[str]:
        pending = list(batch)
        for attempt in range(PUBLISH_ATTEMPTS):
            self.calls += 1
            try:
                failed = send(pending)
            except Exception:
                failed = {e["id"] for e in pending}
            pending = [e for e in pending if e["id"] in failed]
            if not pending:
                return set()
            if attempt + 1 < PUBLISH_ATTEMPTS:
                self.sleep(0.1 * 2**attempt)
        return {e["id"] for e in pending}

    def _to_sns(self, batch: Sequence[dict[str, Any]]) -> set[str]:
        sns = self._sns or aws.client("sns")
        entries: list[PublishBatchRequestEntryTypeDef] = [
            {
                "Id": str(i),
                "Message": json.dumps(e, sort_keys=True),
                "Subject": f"keysentry: key {e['kid']} {e['type'].replace('_', ' ')}",
                "MessageAttributes": {
                    "event_type": {"DataType": "String", "StringValue": e["type"]},
                    "owner_id": {"DataType": "String", "StringValue": e["owner_id"]},
                    "severity": {"DataType": "String", "StringValue": e["severity"]},
                },
            }
            for i, e in enumerate(batch)
        ]
        response = sns.publish_batch(TopicArn=self.topic_arn, PublishBatchRequestEntries=entries)
        return {batch[int(f["Id"])]["id"] for f in response.get("Failed", [])}

    def _to_bus(self, batch: Sequence[dict[str, Any]]) -> set[str]:
        events = self._events or aws.client("events")
        entries: list[PutEventsRequestEntryTypeDef] = [
            {
                "Source": SOURCE,
                "DetailType": _detail_type(e),
                "Detail": json.dumps(e, sort_keys=True),
                "EventBusName": self.bus_name,
                "Resources": [],
            }
            for e in batch
        ]
        response = events.put_events(Entries=entries)
        if not response.get("FailedEntryCount"):
            return set()
        return {batch[i]["id"] for i, r in enumerate(response.get("Entries", [])) if r.get("ErrorCode")}


class CacheFlusher:
    """Flush a REST API stage's authorizer cache, so a cached Allow stops at once."""

    def __init__(self, target: str, client: Any = None) -> None:
        api_id, _, stage = target.partition("/")
        self.api_id, self.stage = api_id, stage
        self._client = client

    @property
    def enabled(self) -> bool:
        return bool(self.api_id and self.stage)

    def flush(self) -> bool:
        client = self._client or aws.client("apigateway")
        client.flush_stage_authorizers_cache(restApiId=self.api_id, stageName=self.stage)
        return True


class FlushScheduler:
    """Schedule the second flush of the stage's authorizer cache through the SQS delay queue.

    The first flush, at the change, empties API Gateway's cache; but an authorizer container that
    read the key before the change keeps allowing it from memory for up to ``container_ttl`` seconds
    (``AuthorizerCacheTtlSeconds``) and API Gateway caches that Allow again, for its own TTL. A flush
    after ``container_ttl`` + :data:`REFLUSH_MARGIN_S` removes the last of them, so the revocation
    bound is the container TTL plus the margin and the delivery latency, whatever the stage's TTL.
    """

    def __init__(self, queue_url: str, container_ttl: float, client: Any = None) -> None:
        self.queue_url = queue_url
        self.container_ttl = container_ttl
        self._client = client

    @property
    def enabled(self) -> bool:
        return bool(self.queue_url)

    @property
    def delay(self) -> int:
        """Seconds until the second flush (the template's bounds keep it within SQS's 900)."""
        return min(MAX_QUEUE_DELAY_S, math.ceil(max(0.0, self.container_ttl)) + REFLUSH_MARGIN_S)

    def schedule(self, events: Sequence[dict[str, Any]]) -> int:
        """One delayed message for the batch's urgent events; returns its delay. Raises on failure."""
        sqs = self._client or aws.client("sqs")
        body = {
            "kids": sorted({str(e["kid"]) for e in events}),
            "events": sorted(str(e["id"]) for e in events),
            "at": max(int(e["at"] or 0) for e in events),
        }
        sqs.send_message(QueueUrl=self.queue_url, MessageBody=json.dumps(body), DelaySeconds=self.delay)
        return self.delay


class DelayedFlush:
    """The delay queue's consumer: flush the stage's authorizer cache, at most once per invocation.

    The message only says why (kids, change time): the stage flushed is the function's own
    configuration, never the message's. A failed flush fails the record it was tried for, alone;
    the next record of the batch tries again, and a failed record returns to the queue.
    """

    def __init__(self, flusher: CacheFlusher) -> None:
        self.flusher = flusher
        self.flushed = False
        self.kids: set[str] = set()

    def handle(self, body: str) -> None:
        try:
            doc = json.loads(body)
            self.kids.update(str(k) for k in doc.get("kids", []) if isinstance(k, str))
        except (ValueError, AttributeError, TypeError):
            pass  # flushing is always safe: an unreadable message still flushes
        if not self.flushed and self.flusher.enabled:
            self.flushed = self.flusher.flush()


@dataclass
class Deduplicator:
    """Claims stream event ids in the idempotency table (Powertools' persistence layer)."""

    persistence: Any
    remaining_ms: Callable[[], int]

    @classmethod
    def for_table(cls, table: str, remaining_ms: Callable[[], int], client: Any = None) -> Deduplicator:
        from aws_lambda_powertools.utilities.idempotency import DynamoDBPersistenceLayer, IdempotencyConfig

        layer = DynamoDBPersistenceLayer(table_name=table, boto3_client=client or aws.client("dynamodb"))
        layer.configure(
            IdempotencyConfig(event_key_jmespath="event_id", expires_after_seconds=3 * 86_400),
            function_name="alerts",
        )
        return cls(layer, remaining_ms)

    def claim(self, event_id: str) -> bool:
        """True if this invocation now owns the event; False if it was already published.

        Raises when another invocation holds it in progress: the record is retried later.
        """
        from aws_lambda_powertools.utilities.idempotency.exceptions import IdempotencyItemAlreadyExistsError

        try:
            self.persistence.save_inprogress({"event_id": event_id}, self.remaining_ms())
        except IdempotencyItemAlreadyExistsError:
            record = self.persistence.get_record({"event_id": event_id})
            if record is not None and record.status == "COMPLETED":
                return False
            raise RuntimeError(f"stream event {event_id} is being published by another invocation") from None
        return True

    def done(self, event_id: str) -> None:
        self.persistence.save_success({"event_id": event_id}, {"published": True})

    def release(self, event_id: str) -> None:
        self.persistence.delete_record({"event_id": event_id}, RuntimeError("publish failed"))


class StreamAlerts:
    """One invocation's work: collect events record by record, then flush the cache and publish."""

    def __init__(
        self,
        publisher: Publisher,
        dedup: Deduplicator | None,
        flusher: CacheFlusher | None,
        reflush: FlushScheduler | None = None,
    ) -> None:
        self.publisher = publisher
        self.dedup = dedup
        self.flusher = flusher
        self.reflush = reflush
        self.pending: list[tuple[dict[str, Any], str]] = []  # (event, sequence number)
        self.duplicates = 0
        self.flushed: bool | None = None
        self.reflush_scheduled: bool | None = None

    def collect(
        self, event_id: str, old_image: dict[str, Any] | None, new_image: dict[str, Any] | None, sequence: str
    ) -> None:
        event = lifecycle_event(event_id, old_image, new_image)
        if event is None:
            return
        if self.dedup is not None and not self.dedup.claim(event_id):
            self.duplicates += 1
            return
        self.pending.append((event, sequence))

    def finish(self) -> list[str]:
        """Publish what was collected; return the sequence numbers of records to retry."""
        events = [event for event, _ in self.pending]
        urgent = [e for e in events if e["type"] in FLUSH_ON]
        held: set[str] = set()
        if urgent and self.flusher is not None and self.flusher.enabled:
            try:
                self.flushed = self.flusher.flush()
            except Exception:
                self.flushed = False
            for event in urgent:
                event["authorizer_cache_flushed"] = self.flushed
            if self.reflush is not None and self.reflush.enabled:
                try:
                    delay = self.reflush.schedule(urgent)
                    self.reflush_scheduled = True
                    for event in urgent:
                        event["authorizer_cache_reflush_in"] = delay
                except Exception:
                    # without the second flush the bound does not hold: retry these records
                    # (flush and schedule again), and alert on them then
                    self.reflush_scheduled = False
                    held = {e["id"] for e in urgent}
        publish = [e for e in events if e["id"] not in held]
        failed_ids = (self.publisher.publish(publish) if publish else set()) | held
        retry = []
        for event, sequence in self.pending:
            if event["id"] in failed_ids:
                if self.dedup is not None:
                    self.dedup.release(event["id"])
                retry.append(sequence)
            elif self.dedup is not None:
                self.dedup.done(event["id"])
        return retry


__all__ = [
    "AlertPublisher",
    "CacheFlusher",
    "Deduplicator",
    "DelayedFlush",
    "FlushScheduler",
    "Publisher",
    "StreamAlerts",
    "lifecycle_event",
]
