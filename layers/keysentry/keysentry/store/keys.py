"""KeyStore: the keys table's adapter, key items read and written, with their audit entries."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Final

from keysentry.errors import ConflictError, KeyNotFoundError
from keysentry.model import KeyRecord
from keysentry.store.audit import audit_entry_item, audit_item
from keysentry.store.chain import Chains
from keysentry.store.codec import KEY_SK, Item, from_item, is_key_item, n_attr, s_attr, to_item
from keysentry.store.cursor import OWNER_CURSOR, TABLE_CURSOR, decode_cursor, encode_cursor, paged
from keysentry.store.due import DueIndex
from keysentry.store.table import update_op

if TYPE_CHECKING:
    from mypy_boto3_dynamodb.type_defs import PutTypeDef, UpdateTypeDef

OWNER_INDEX: Final = "owner-index"
REHASH_ACTOR: Final = "keysentry:authorizer"
LIST_READ_AT_LEAST: Final = 100  # items a listing's request reads, however small its page


class KeyStore(Chains, DueIndex):
    """The keys table: key items (``sk = "KEY"``) and their audit entries, one partition per kid."""

    def get(self, kid: str) -> KeyRecord:
        item = self.get_item(kid)
        if item is None:
            raise KeyNotFoundError(kid)
        return from_item(item)

    def list_by_owner(
        self,
        owner_id: str,
        *,
        limit: int = 100,
        start: str | None = None,
        keep: Callable[[KeyRecord], bool] | None = None,
    ) -> tuple[list[KeyRecord], str | None]:
        kwargs: Item = {
            "TableName": self.table,
            "IndexName": OWNER_INDEX,
            "KeyConditionExpression": "owner_id = :o",
            "ExpressionAttributeValues": {":o": s_attr(owner_id)},
        }
        if start:
            kwargs["ExclusiveStartKey"] = decode_cursor(start, OWNER_CURSOR, owner_id=owner_id)
        return self._page(self.client.query, kwargs, limit, keep, OWNER_CURSOR)

    def list_all(
        self, *, limit: int = 100, start: str | None = None, keep: Callable[[KeyRecord], bool] | None = None
    ) -> tuple[list[KeyRecord], str | None]:
        """Every key, for an operator's listing. A Scan: never on a request path."""
        kwargs: Item = {
            "TableName": self.table,
            "FilterExpression": "sk = :k",
            "ExpressionAttributeValues": {":k": s_attr(KEY_SK)},
        }
        if start:
            kwargs["ExclusiveStartKey"] = decode_cursor(start, TABLE_CURSOR)
        return self._page(self.client.scan, kwargs, limit, keep, TABLE_CURSOR)

    def _page(
        self,
        operation: Any,
        kwargs: Item,
        limit: int,
        keep: Callable[[KeyRecord], bool] | None,
        shape: dict[str, str],
    ) -> tuple[list[KeyRecord], str | None]:
        """Up to ``limit`` key records that ``keep`` takes, read on while the page is short and the
        listing has more: DynamoDB's ``Limit`` counts the items it reads (audit entries, keys a filter
        drops), not the ones kept. A full page's cursor is its last record's key, so the next page
        starts right after it; none when nothing after it would be kept."""
        kept: list[tuple[KeyRecord, Item]] = []
        request: Item = {**kwargs, "Limit": max(limit, LIST_READ_AT_LEAST)}
        while True:
            response = paged(operation, request)
            found = [(r, i) for i in response.get("Items", []) if is_key_item(i) for r in [from_item(i)]]
            found = [(r, i) for r, i in found if keep is None or keep(r)]
            last = response.get("LastEvaluatedKey")
            if len(kept) + len(found) > limit or (len(kept) + len(found) == limit and last):
                kept += found[: limit - len(kept)]
                return [r for r, _ in kept], encode_cursor({name: kept[-1][1][name] for name in shape})
            kept += found
            if not last:
                return [r for r, _ in kept], None
            request["ExclusiveStartKey"] = last

    # -- writes

    def create(self, record: KeyRecord) -> None:
        self._transact(
            [
                {
                    "Put": {
                        "TableName": self.table,
                        "Item": to_item(record),
                        "ConditionExpression": "attribute_not_exists(pk)",
                    }
                },
                {
                    "Put": {
                        "TableName": self.table,
                        "Item": audit_item(None, record, self.audit_retention_days),
                    }
                },
            ],
            record.kid,
        )

    def apply(self, old: KeyRecord, new: KeyRecord) -> KeyRecord:
        """Write a transition computed by the domain: conditional on the status and version read."""
        self._transact(
            [
                {"Update": update_op(self.table, old, new)},
                {"Put": {"TableName": self.table, "Item": audit_item(old, new, self.audit_retention_days)}},
            ],
            old.kid,
        )
        return new

    def rotate(
        self, old: KeyRecord, predecessor: KeyRecord, successor: KeyRecord, *, pickup: str | None = None
    ) -> None:
        """Predecessor to ``rotating`` and its successor created, in one transaction: all or nothing.

        The predecessor's condition (status active, same version) means two racing rotations,
        or a rotation racing a revoke, can never both land.
        """
        update = update_op(self.table, old, predecessor)
        update["ConditionExpression"] += " AND attribute_not_exists(successor)"
        successor_item = to_item(successor)
        if pickup is not None:  # the successor, KMS-encrypted, for one-time pickup
            successor_item["pickup"] = s_attr(pickup)
        self._transact(
            [
                {"Update": update},
                {
                    "Put": {
                        "TableName": self.table,
                        "Item": successor_item,
                        "ConditionExpression": "attribute_not_exists(pk)",
                    }
                },
                {
                    "Put": {
                        "TableName": self.table,
                        "Item": audit_item(old, predecessor, self.audit_retention_days),
                    }
                },
                {
                    "Put": {
                        "TableName": self.table,
                        "Item": audit_item(None, successor, self.audit_retention_days),
                    }
                },
            ],
            old.kid,
        )

    def touch(self, kid: str, now: int, *, stale_before: int) -> bool:
        """Record use (``last_used_at``), at most once per window. Not a lifecycle change: no
        version bump, no audit entry (a re-hash is :meth:`rehash`)."""
        names = {"#lu": "last_used_at"}
        values: Item = {":now": n_attr(now), ":stale": n_attr(stale_before)}
        expression = "SET #lu = :now"
        condition = "attribute_exists(pk) AND (attribute_not_exists(#lu) OR #lu < :stale)"
        return self.update_if(
            TableName=self.table,
            Key={"pk": s_attr(kid), "sk": s_attr(KEY_SK)},
            UpdateExpression=expression,
            ConditionExpression=condition,
            ExpressionAttributeNames=names,
            ExpressionAttributeValues=values,
        )

    def mark_quota_exhausted(self, kid: str, until: int, plan: str = "") -> bool:
        """Record that the key used up its quota until ``until`` (the period's end): only if the key
        exists, is still on ``plan`` (the plan whose quota it used; "": none named, the default) and
        was not marked until then or later. A key moved to another plan since it was read is not
        marked for the old one. Not a lifecycle change: no version bump, no audit entry, no alert
        from the stream. True if this call set it."""
        on_plan = "#p = :plan" if plan else "attribute_not_exists(#p)"
        values = {":until": n_attr(until), **({":plan": s_attr(plan)} if plan else {})}
        return self.update_if(
            TableName=self.table,
            Key={"pk": s_attr(kid), "sk": s_attr(KEY_SK)},
            UpdateExpression="SET #q = :until",
            ConditionExpression=(
                f"attribute_exists(pk) AND {on_plan} AND (attribute_not_exists(#q) OR #q < :until)"
            ),
            ExpressionAttributeNames={"#q": "quota_exhausted_until", "#p": "plan"},
            ExpressionAttributeValues=values,
        )

    def rehash(self, record: KeyRecord, digest: str, pepper_version: str, now: int) -> bool:
        """Re-hash ``record`` under ``pepper_version`` (and record its use), with an audit entry
        (action ``rehash``, pepper version from -> to), in one transaction. Only if the stored
        digest is still the one read: of racing containers one wins, the others change nothing.

        Not a lifecycle change: no version bump, so no alert and no conflict with an operator's change.
        Two updates (an update creates the audit item): the authorizer needs no PutItem on the table.
        """
        entry = audit_entry_item(
            kid=record.kid,
            owner_id=record.owner_id,
            at=now,
            version=record.version,
            action="rehash",
            actor=REHASH_ACTOR,
            reason=f"re-hashed on use under pepper version {pepper_version}",
            from_status=str(record.status),
            to_status=str(record.status),
            changes={"pepper_version": {"from": record.pepper_version, "to": pepper_version}},
            retention_days=self.audit_retention_days,
            suffix="#rehash",
        )
        rehash: UpdateTypeDef = {
            "TableName": self.table,
            "Key": {"pk": s_attr(record.kid), "sk": s_attr(KEY_SK)},
            "UpdateExpression": "SET #d = :new, #pv = :pv, #lu = :now",
            "ConditionExpression": "attribute_exists(pk) AND #d = :old AND #pv = :oldpv",
            "ExpressionAttributeNames": {"#d": "digest", "#pv": "pepper_version", "#lu": "last_used_at"},
            "ExpressionAttributeValues": {
                ":new": s_attr(digest),
                ":old": s_attr(record.digest),
                ":pv": s_attr(pepper_version),
                ":oldpv": s_attr(record.pepper_version),
                ":now": n_attr(now),
            },
        }
        try:
            self._transact([{"Update": rehash}, {"Update": self._create_by_update(entry)}], record.kid)
        except ConflictError:
            return False
        return True

    def _create_by_update(self, item: Item) -> UpdateTypeDef:
        """An Update that creates ``item`` (and fails if it exists): the same as a conditional Put."""
        attrs = {k: v for k, v in item.items() if k not in ("pk", "sk")}
        return {
            "TableName": self.table,
            "Key": {"pk": item["pk"], "sk": item["sk"]},
            "UpdateExpression": "SET " + ", ".join(f"#a{i} = :a{i}" for i in range(len(attrs))),
            "ConditionExpression": "attribute_not_exists(pk)",
            "ExpressionAttributeNames": {f"#a{i}": k for i, k in enumerate(attrs)},
            "ExpressionAttributeValues": {f":a{i}": v for i, v in enumerate(attrs.values())},
        }

    def claim_pickup(self, kid: str, ciphertext: str, audit: Item | None = None) -> bool:
        """Erase the pickup copy if it is still ``ciphertext``: exactly one caller wins it.

        With ``audit`` (see :func:`access_audit_item`) the erase and its audit entry are one
        transaction: a pickup is never spent unrecorded, nor recorded unspent.
        """
        erase: UpdateTypeDef = {
            "TableName": self.table,
            "Key": {"pk": s_attr(kid), "sk": s_attr(KEY_SK)},
            "UpdateExpression": "REMOVE pickup",
            "ConditionExpression": "pickup = :p",
            "ExpressionAttributeValues": {":p": s_attr(ciphertext)},
        }
        if audit is not None:
            put: PutTypeDef = {
                "TableName": self.table,
                "Item": audit,
                "ConditionExpression": "attribute_not_exists(pk)",
            }
            try:
                self._transact([{"Update": erase}, {"Put": put}], kid)
            except ConflictError:
                return False
            return True
        return self.update_if(**erase)

    def drop_pickup(self, kid: str) -> bool:
        """Erase the one-time pickup copy if there is one (a conditional REMOVE: no write otherwise)."""
        return self.update_if(
            TableName=self.table,
            Key={"pk": s_attr(kid), "sk": s_attr(KEY_SK)},
            UpdateExpression="REMOVE pickup",
            ConditionExpression="attribute_exists(pickup)",
        )

    def record_access(self, audit: Item) -> None:
        """Write an access audit entry (see :func:`access_audit_item`) on its own."""
        self.client.put_item(TableName=self.table, Item=audit, ConditionExpression="attribute_not_exists(pk)")

    def set_pickup(self, kid: str, pickup: str | None) -> None:
        """Store (or erase, with None) the successor's one-time pickup ciphertext."""
        kwargs: Item = {
            "TableName": self.table,
            "Key": {"pk": s_attr(kid), "sk": s_attr(KEY_SK)},
            "ConditionExpression": "attribute_exists(pk)",
        }
        if pickup is None:
            kwargs["UpdateExpression"] = "REMOVE pickup"
        else:
            kwargs["UpdateExpression"] = "SET pickup = :p"
            kwargs["ExpressionAttributeValues"] = {":p": s_attr(pickup)}
        self.client.update_item(**kwargs)
