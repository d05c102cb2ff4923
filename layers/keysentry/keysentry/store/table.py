"""The keys table's client, its one strongly consistent read, and its transactions."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Final

from botocore.exceptions import ClientError
from keysentry import aws
from keysentry.errors import ConflictError
from keysentry.model import KeyRecord
from keysentry.store.codec import KEY_SK, Item, n_attr, s_attr, to_item

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient
    from mypy_boto3_dynamodb.type_defs import TransactWriteItemTypeDef, UpdateTypeDef

# Attributes that change outside the lifecycle (usage, one-time pickup, quota): never part of a diff.
_SIDE_ATTRS: Final = frozenset({"last_used_at", "pickup", "quota_exhausted_until"})


def update_op(table: str, old: KeyRecord, new: KeyRecord) -> UpdateTypeDef:
    """An Update that writes only what changed, conditioned on the status and version read."""
    before, after = to_item(old), to_item(new)
    names: dict[str, str] = {"#status": "status", "#version": "version"}
    values: Item = {":expected_status": s_attr(str(old.status)), ":expected_version": n_attr(old.version)}
    sets, removes = [], []
    for i, (attr, value) in enumerate(sorted(after.items())):
        if attr in ("pk", "sk") or attr in _SIDE_ATTRS or before.get(attr) == value:
            continue
        names[f"#a{i}"] = attr
        values[f":v{i}"] = value
        sets.append(f"#a{i} = :v{i}")
    for i, attr in enumerate(sorted(set(before) - set(after) - _SIDE_ATTRS)):
        names[f"#r{i}"] = attr
        removes.append(f"#r{i}")
    # a mark was for the old plan's quota: the new one counts afresh
    if before.get("plan") != after.get("plan"):
        names["#quota"] = "quota_exhausted_until"
        removes.append("#quota")
    expression = "SET " + ", ".join(sets)
    if removes:
        expression += " REMOVE " + ", ".join(removes)
    return {
        "TableName": table,
        "Key": {"pk": s_attr(old.kid), "sk": s_attr(KEY_SK)},
        "UpdateExpression": expression,
        "ConditionExpression": "#status = :expected_status AND #version = :expected_version",
        "ExpressionAttributeNames": names,
        "ExpressionAttributeValues": values,
    }


class Table:
    def __init__(
        self, table: str, client: DynamoDBClient | None = None, audit_retention_days: int = 400
    ) -> None:
        self.table = table
        self._client = client
        self.audit_retention_days = audit_retention_days

    @property
    def client(self) -> DynamoDBClient:
        if self._client is None:
            self._client = aws.client("dynamodb")
        return self._client

    def update_if(self, **request: Any) -> bool:
        """One conditional UpdateItem: True if it was written, False if its condition failed."""
        try:
            self.client.update_item(**request)
        except ClientError as error:
            if error.response["Error"]["Code"] == "ConditionalCheckFailedException":
                return False
            raise
        return True

    def get_item(self, kid: str) -> Item | None:
        """The raw key item, strongly consistent: the authorizer's one read."""
        response = self.client.get_item(
            TableName=self.table, Key={"pk": s_attr(kid), "sk": s_attr(KEY_SK)}, ConsistentRead=True
        )
        item: Item | None = response.get("Item")
        return item

    def _transact(self, items: list[TransactWriteItemTypeDef], kid: str) -> None:
        try:
            self.client.transact_write_items(TransactItems=items)
        except ClientError as error:
            code = error.response["Error"]["Code"]
            if code == "TransactionCanceledException":
                reasons = error.response.get("CancellationReasons") or []
                if any(r.get("Code") == "ConditionalCheckFailed" for r in reasons) or not reasons:
                    raise ConflictError(kid) from None
            raise
