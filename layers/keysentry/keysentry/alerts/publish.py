"""Publishing events: the SNS topic (PublishBatch, with message attributes for filter policies) and
the EventBridge bus (PutEvents), 10 at a time, retrying the entries a batch call reports as failed."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterable, Sequence
from typing import TYPE_CHECKING, Any, Final, Protocol

from keysentry import aws

if TYPE_CHECKING:
    from mypy_boto3_events import EventBridgeClient
    from mypy_boto3_events.type_defs import PutEventsRequestEntryTypeDef
    from mypy_boto3_sns import SNSClient
    from mypy_boto3_sns.type_defs import PublishBatchRequestEntryTypeDef

SOURCE: Final = "keysentry"
BATCH: Final = 10
PUBLISH_ATTEMPTS: Final = 3


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
        sns: SNSClient | None = None,
        events: EventBridgeClient | None = None,
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
