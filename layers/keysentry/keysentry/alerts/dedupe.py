"""De-duplication of stream events: each event id is claimed in the idempotency table before its
alert is published, marked done once published, and released when publishing failed.

A conditional put of our own, not Powertools' idempotency utility: its public API
(``idempotent_function``) wraps one call, claim -> run -> complete, while the alerts function claims
every record of a batch first and publishes them together (one call per 10 events per target), so an
event completes only after the batch's publish. The guarantee: a redelivered event that was
published is not published again; one whose publish failed is released, so its redelivery publishes
it; one that another invocation holds is refused (its record fails, and is retried) until that
claim's in-progress time, the holder's remaining Lambda time, has passed.

Items keep the shape Powertools' idempotency documents for this table (``id``; ``status``
INPROGRESS or COMPLETED; ``expiration``, the table's TTL, in seconds; ``in_progress_expiration`` in
milliseconds; ``data``) and the key the function used with it before (``<function>.alerts#`` and
the MD5 of the JSON event id), so events claimed before an upgrade are still recognised.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Final, cast

from botocore.exceptions import ClientError
from keysentry import aws

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient

INPROGRESS: Final = "INPROGRESS"
COMPLETED: Final = "COMPLETED"
KEEP_S: Final = 3 * 86_400  # past the stream's 24 h retention: every redelivery finds its claim
_CLAIMABLE: Final = (
    "attribute_not_exists(#id) OR #expiry < :now"
    " OR (#status = :inprogress AND attribute_exists(#ipe) AND #ipe < :now_ms)"
)


class EventInProgressError(RuntimeError):
    """Another invocation holds the event: its record fails, and is retried later."""


def _default_prefix() -> str:
    # The Lambda runtime's own variable (not configuration): the function the claims belong to.
    return f"{os.environ.get('AWS_LAMBDA_FUNCTION_NAME', 'test-func')}.alerts"


class Deduplicator:
    """Claims stream event ids in the idempotency table (key ``id``, TTL ``expiration``)."""

    def __init__(
        self,
        table: str,
        remaining_ms: Callable[[], int],
        client: DynamoDBClient | None = None,
        *,
        prefix: str | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.table = table
        self.remaining_ms = remaining_ms
        self._client = client
        self.prefix = _default_prefix() if prefix is None else prefix
        self.clock = clock

    @classmethod
    def for_table(
        cls, table: str, remaining_ms: Callable[[], int], client: DynamoDBClient | None = None
    ) -> Deduplicator:
        return cls(table, remaining_ms, client)

    @property
    def client(self) -> DynamoDBClient:
        if self._client is None:
            self._client = aws.client("dynamodb")
        return self._client

    def key(self, event_id: str) -> str:
        digest = hashlib.md5(json.dumps(event_id).encode(), usedforsecurity=False).hexdigest()
        return f"{self.prefix}#{digest}"

    def claim(self, event_id: str) -> bool:
        """True if this invocation now owns the event; False if it was already published.

        Raises EventInProgressError when another invocation holds it: the record is retried later.
        """
        now = self.clock()
        try:
            self.client.put_item(
                TableName=self.table,
                Item={
                    "id": {"S": self.key(event_id)},
                    "status": {"S": INPROGRESS},
                    "expiration": {"N": str(int(now) + KEEP_S)},
                    "in_progress_expiration": {"N": str(int(now * 1000) + self.remaining_ms())},
                },
                ConditionExpression=_CLAIMABLE,
                ExpressionAttributeNames={
                    "#id": "id",
                    "#expiry": "expiration",
                    "#status": "status",
                    "#ipe": "in_progress_expiration",
                },
                ExpressionAttributeValues={
                    ":now": {"N": str(int(now))},
                    ":now_ms": {"N": str(int(now * 1000))},
                    ":inprogress": {"S": INPROGRESS},
                },
                ReturnValuesOnConditionCheckFailure="ALL_OLD",
            )
        except ClientError as error:
            if error.response["Error"]["Code"] != "ConditionalCheckFailedException":
                raise
            if self._status(event_id, error) == COMPLETED:
                return False
            raise EventInProgressError(f"stream event {event_id} is held by another invocation") from None
        return True

    def _status(self, event_id: str, refused: ClientError) -> str | None:
        """The status of the claim that refused ours: from the refusal, else read (consistently)."""
        # ReturnValuesOnConditionCheckFailure puts the item that refused ours in the error
        held = cast("dict[str, Any] | None", refused.response.get("Item"))
        if held is None:
            response = self.client.get_item(
                TableName=self.table, Key={"id": {"S": self.key(event_id)}}, ConsistentRead=True
            )
            held = response.get("Item")
        return str(held["status"]["S"]) if held and "status" in held else None

    def done(self, event_id: str) -> None:
        """The event was published: a redelivery of it is a duplicate, until the claim expires."""
        self.client.update_item(
            TableName=self.table,
            Key={"id": {"S": self.key(event_id)}},
            UpdateExpression="SET #status = :completed, #expiry = :expiry, #data = :data",
            ExpressionAttributeNames={"#status": "status", "#expiry": "expiration", "#data": "data"},
            ExpressionAttributeValues={
                ":completed": {"S": COMPLETED},
                ":expiry": {"N": str(int(self.clock()) + KEEP_S)},
                ":data": {"S": json.dumps({"published": True}, sort_keys=True)},
            },
        )

    def release(self, event_id: str) -> None:
        """The event could not be published: drop the claim, so its redelivery publishes it."""
        self.client.delete_item(TableName=self.table, Key={"id": {"S": self.key(event_id)}})
