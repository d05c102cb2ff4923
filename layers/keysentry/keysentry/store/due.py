"""The sparse, write-sharded due index: only live keys carry ``due_shard``/``due_at``, so the
schedule queries what is due, shard by shard, and never scans."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Final

from keysentry.errors import KeysentryError
from keysentry.model import DUE_SHARDS, Status
from keysentry.store.codec import KEY_SK, Item, n_attr, s_attr
from keysentry.store.table import Table

DUE_INDEX: Final = "due-index"


class DueIndex(Table):
    def due(self, now: int, *, per_shard: int = 100) -> Iterator[str]:
        """Kids whose next action time has come, shard by shard: a Query each, never a Scan."""
        for shard in range(DUE_SHARDS):
            start: Item | None = None
            while True:
                kwargs: Item = {
                    "TableName": self.table,
                    "IndexName": DUE_INDEX,
                    "KeyConditionExpression": "due_shard = :s AND due_at <= :now",
                    "ExpressionAttributeValues": {":s": s_attr(str(shard)), ":now": n_attr(now)},
                    "Limit": per_shard,
                }
                if start:
                    kwargs["ExclusiveStartKey"] = start
                response = self.client.query(**kwargs)
                for item in response.get("Items", []):
                    yield item["pk"]["S"]
                start = response.get("LastEvaluatedKey")
                if not start:
                    break

    def live_pepper_versions(self) -> dict[str, list[str]]:
        """The live keys hashed under each pepper version. The live keys are the due
        index's (sparse: terminal keys leave it), shard by shard: Queries, never a Scan; then
        their ``pepper_version`` by BatchGetItem."""
        kids: list[str] = []
        for shard in range(DUE_SHARDS):
            pages = self.client.get_paginator("query").paginate(
                TableName=self.table,
                IndexName=DUE_INDEX,
                KeyConditionExpression="due_shard = :s",
                ExpressionAttributeValues={":s": s_attr(str(shard))},
            )
            kids += [item["pk"]["S"] for page in pages for item in page.get("Items", [])]
        by_version: dict[str, list[str]] = {}
        live = {str(s) for s in (Status.ACTIVE, Status.ROTATING, Status.SUSPENDED)}
        for start in range(0, len(kids), 100):
            request: Item = {
                self.table: {
                    "Keys": [{"pk": s_attr(kid), "sk": s_attr(KEY_SK)} for kid in kids[start : start + 100]],
                    "ProjectionExpression": "pk, pepper_version, #st",
                    "ExpressionAttributeNames": {"#st": "status"},
                }
            }
            for attempt in range(10):
                if attempt:  # unprocessed keys: back off, as DynamoDB asks
                    import time

                    time.sleep(min(1.0, 0.05 * 2**attempt))
                response = self.client.batch_get_item(RequestItems=request)
                for item in response.get("Responses", {}).get(self.table, []):
                    if item.get("status", {}).get("S") in live:  # it may have ended since the query
                        by_version.setdefault(item["pepper_version"]["S"], []).append(item["pk"]["S"])
                request = response.get("UnprocessedKeys") or {}
                if not request:
                    break
            else:
                raise KeysentryError("DynamoDB left keys unprocessed; try again")
        return {version: sorted(kids) for version, kids in by_version.items()}
