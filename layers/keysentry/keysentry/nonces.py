"""DynamoDB adapter for the nonce table: the one place that writes it, always conditionally.

Two kinds of item share the table (``pk``, with ``expires_at`` as its TTL attribute):
- a signed request's nonce, ``<kid>#<nonce>``: :meth:`NonceTable.claim` puts it once, and the first
  request that carries it wins; every replay is refused;
- a report that must act once, such as a leaked-token report: :meth:`NonceTable.begin` remembers it
  as ``pending`` while its action runs, :meth:`NonceTable.finish` marks it ``done`` (from then on a
  delivery of it is a replay), :meth:`NonceTable.forget` drops it when the action failed, so a
  redelivery acts. A report still pending after ``abandoned_before`` was left by an invocation that
  died midway: it may begin again.

botocore is imported on first use: the authorizer's bearer-key path never pays for it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Final

from keysentry import aws

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient

PENDING: Final = "pending"
DONE: Final = "done"
_CONDITION_FAILED: Final = "ConditionalCheckFailedException"


class NonceTable:
    def __init__(self, table: str, client: DynamoDBClient | None = None) -> None:
        self.table = table
        self._client = client

    @property
    def client(self) -> DynamoDBClient:
        if self._client is None:
            self._client = aws.client("dynamodb")
        return self._client

    def claim(self, pk: str, expires_at: int) -> bool:
        """Put ``pk`` if it is new: True for the first claim, False for every later one."""
        return self._put_if(
            {"pk": {"S": pk}, "expires_at": {"N": str(expires_at)}},
            ConditionExpression="attribute_not_exists(pk)",
        )

    def begin(self, pk: str, expires_at: int, *, now: int, abandoned_before: int) -> bool:
        """Remember ``pk`` as pending from ``now``: True if it is new, or pending since before
        ``abandoned_before``; False if it is done, or pending by an action that may still run."""
        return self._put_if(
            {
                "pk": {"S": pk},
                "expires_at": {"N": str(expires_at)},
                "state": {"S": PENDING},
                "started_at": {"N": str(now)},
            },
            ConditionExpression="attribute_not_exists(pk) OR (#state = :pending AND started_at < :abandoned)",
            ExpressionAttributeNames={"#state": "state"},
            ExpressionAttributeValues={
                ":pending": {"S": PENDING},
                ":abandoned": {"N": str(abandoned_before)},
            },
        )

    def finish(self, pk: str) -> None:
        """The action ``pk`` stood for completed: from now on it is a replay."""
        self.client.update_item(
            TableName=self.table,
            Key={"pk": {"S": pk}},
            UpdateExpression="SET #state = :done REMOVE started_at",
            ExpressionAttributeNames={"#state": "state"},
            ExpressionAttributeValues={":done": {"S": DONE}},
        )

    def forget(self, pk: str) -> None:
        """Drop ``pk``, so that the next delivery of what it stood for acts."""
        self.client.delete_item(TableName=self.table, Key={"pk": {"S": pk}})

    def _put_if(self, item: dict[str, Any], **condition: Any) -> bool:
        """A conditional put: False when the condition fails; any other error propagates."""
        from botocore.exceptions import ClientError

        try:
            self.client.put_item(TableName=self.table, Item=item, **condition)
        except ClientError as error:
            if error.response["Error"]["Code"] == _CONDITION_FAILED:
                return False
            raise
        return True
