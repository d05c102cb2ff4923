"""DynamoDB adapter for the keys table.

One table, two item kinds under the same partition (``pk`` = kid):
- the key item, ``sk = "KEY"``: read by the authorizer with one strongly consistent GetItem;
- audit entries, ``sk = "AUDIT#<at>#<version>"``: written in the same transaction as the change.

Indexes: ``owner-index`` (owner_id, created_at) and the sparse, write-sharded ``due-index``
(due_shard, due_at) that only live keys carry, so the schedule queries what is due; the sparse
``audit-owner-index`` (audit_owner, at) that only audit entries carry, so an owner's trail is a Query.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from typing import Any, Final

from botocore.exceptions import ClientError
from keysentry import aws
from keysentry.errors import ConflictError, KeyNotFoundError, KeysentryError
from keysentry.model import (
    DAY,
    DUE_SHARDS,
    Change,
    IssuedBy,
    KeyRecord,
    Signing,
    Status,
    due_shard,
    next_due,
)

KEY_SK: Final = "KEY"
AUDIT_PREFIX: Final = "AUDIT#"
OWNER_INDEX: Final = "owner-index"
DUE_INDEX: Final = "due-index"
AUDIT_OWNER_INDEX: Final = "audit-owner-index"
REHASH_ACTOR: Final = "keysentry:authorizer"
NEVER_DUE: Final = 99_999_999_999  # a live key the schedule has nothing to do for (suspended, no expiry)
# Attributes that change outside the lifecycle (usage, one-time pickup): never part of a diff.
_SIDE_ATTRS: Final = frozenset({"last_used_at", "pickup"})

Item = dict[str, Any]
MAX_CHAIN: Final = 1000  # a guard against a corrupt successor loop; real chains are a handful of keys


# ---------------------------------------------------------------- codec


def _s(value: str) -> dict[str, str]:
    return {"S": value}


def _n(value: int) -> dict[str, str]:
    return {"N": str(value)}


def to_item(record: KeyRecord) -> Item:
    item: Item = {
        "pk": _s(record.kid),
        "sk": _s(KEY_SK),
        "kid": _s(record.kid),
        "owner_id": _s(record.owner_id),
        "name": _s(record.name),
        "env": _s(record.env),
        "status": _s(str(record.status)),
        "digest": _s(record.digest),
        "pepper_version": _s(record.pepper_version),
        "created_at": _n(record.created_at),
        "rotation_days": _n(record.rotation_days),
        "rotate_after": _n(record.rotate_after),
        "scopes": {"L": [_s(s) for s in record.scopes]},
        "allow_cidrs": {"L": [_s(c) for c in record.allow_cidrs]},
        "deny_cidrs": {"L": [_s(c) for c in record.deny_cidrs]},
        "metadata": {"M": {k: _s(v) for k, v in record.metadata.items()}},
        "version": _n(record.version),
    }
    signing: Item = {"mode": _s(record.signing.mode)}
    if record.signing.secret_ciphertext:
        signing["secret_ciphertext"] = _s(record.signing.secret_ciphertext)
    if record.signing.public_key_pem:
        signing["public_key_pem"] = _s(record.signing.public_key_pem)
    item["signing"] = {"M": signing}
    for name in ("expires_at", "grace_until", "last_used_at", "leaked_at"):
        value = getattr(record, name)
        if value is not None:
            item[name] = _n(value)
    if record.sealed_successor:
        item["sealed_successor"] = {"M": {k: _s(v) for k, v in record.sealed_successor.items()}}
    for name in ("predecessor", "successor", "suspended_from", "reminded", "delivery_key", "issued_by"):
        value = getattr(record, name)
        if value is not None:
            item[name] = _s(str(value))
    if record.last_change is not None:
        c = record.last_change
        item["last_change"] = {
            "M": {"action": _s(c.action), "actor": _s(c.actor), "at": _n(c.at), "reason": _s(c.reason)}
        }
    due = next_due(record)
    if due is None and record.is_live:
        due = NEVER_DUE  # every live key is in the due index (peppers status counts them there)
    if due is not None:  # sparse: only live keys are in the due index
        item["due_shard"] = _s(due_shard(record.kid))
        item["due_at"] = _n(due)
    return item


def _opt_n(item: Item, name: str) -> int | None:
    value = item.get(name)
    return int(value["N"]) if value else None


def _opt_s(item: Item, name: str) -> str | None:
    value = item.get(name)
    return value["S"] if value else None


def from_item(item: Item) -> KeyRecord:
    """Decode a key item (GetItem or a stream image). Raises KeyError/ValueError on a bad record."""
    signing = item.get("signing", {}).get("M", {})
    change = item.get("last_change", {}).get("M")
    suspended_from = _opt_s(item, "suspended_from")
    issued_by = _opt_s(item, "issued_by")
    return KeyRecord(
        kid=item["kid"]["S"],
        owner_id=item["owner_id"]["S"],
        name=item.get("name", {}).get("S", ""),
        env=item["env"]["S"],
        status=Status(item["status"]["S"]),
        digest=item["digest"]["S"],
        pepper_version=item["pepper_version"]["S"],
        created_at=int(item["created_at"]["N"]),
        rotation_days=int(item["rotation_days"]["N"]),
        rotate_after=int(item["rotate_after"]["N"]),
        scopes=tuple(v["S"] for v in item.get("scopes", {}).get("L", [])),
        allow_cidrs=tuple(v["S"] for v in item.get("allow_cidrs", {}).get("L", [])),
        deny_cidrs=tuple(v["S"] for v in item.get("deny_cidrs", {}).get("L", [])),
        metadata={k: v["S"] for k, v in item.get("metadata", {}).get("M", {}).items()},
        version=int(item["version"]["N"]),
        signing=Signing(
            mode=signing.get("mode", {}).get("S", "bearer"),
            secret_ciphertext=_opt_s(signing, "secret_ciphertext"),
            public_key_pem=_opt_s(signing, "public_key_pem"),
        ),
        expires_at=_opt_n(item, "expires_at"),
        grace_until=_opt_n(item, "grace_until"),
        last_used_at=_opt_n(item, "last_used_at"),
        leaked_at=_opt_n(item, "leaked_at"),
        predecessor=_opt_s(item, "predecessor"),
        successor=_opt_s(item, "successor"),
        suspended_from=Status(suspended_from) if suspended_from else None,
        reminded=_opt_s(item, "reminded"),
        delivery_key=_opt_s(item, "delivery_key"),
        # Before it was kept: a first key is the owner's; a successor's minter is in its audit trail.
        issued_by=IssuedBy(issued_by)
        if issued_by
        else (IssuedBy.OWNER if "predecessor" not in item else None),
        sealed_successor={k: v["S"] for k, v in item["sealed_successor"]["M"].items()}
        if "sealed_successor" in item
        else None,
        last_change=Change(
            action=change["action"]["S"],
            actor=change["actor"]["S"],
            at=int(change["at"]["N"]),
            reason=change.get("reason", {}).get("S", ""),
        )
        if change
        else None,
    )


def is_key_item(item: Item) -> bool:
    return bool(item.get("sk", {}).get("S") == KEY_SK)


@dataclass(frozen=True)
class AuditEntry:
    kid: str
    at: int
    version: int
    action: str
    actor: str
    reason: str
    from_status: str
    to_status: str
    owner_id: str = ""  # entries written before the owner index carry none
    changes: dict[str, dict[str, Any]] = field(default_factory=dict)  # field -> {"from", "to"}

    def as_dict(self) -> dict[str, Any]:
        return {
            "kid": self.kid,
            "owner_id": self.owner_id,
            "at": self.at,
            "version": self.version,
            "action": self.action,
            "actor": self.actor,
            "reason": self.reason,
            "from_status": self.from_status,
            "to_status": self.to_status,
            "changes": self.changes,
        }


def fingerprint(pem: str | None) -> str | None:
    """SHA256:<base64> of a PEM public key's DER (SubjectPublicKeyInfo), as ``ssh-keygen -l`` shows."""
    if not pem:
        return None
    import base64
    import hashlib

    body = "".join(line.strip() for line in pem.strip().splitlines() if not line.startswith("-----"))
    digest = hashlib.sha256(base64.b64decode(body)).digest()
    return "SHA256:" + base64.b64encode(digest).decode().rstrip("=")


# What an audit entry records of a change, old -> new: non-secret fields only. Never the digest,
# a signing secret's ciphertext, a sealed or pickup successor; public keys by mode and fingerprint.
AUDITED_FIELDS: Final[dict[str, Callable[[KeyRecord], Any]]] = {
    "name": lambda r: r.name,
    "scopes": lambda r: list(r.scopes),
    "allow_cidrs": lambda r: list(r.allow_cidrs),
    "deny_cidrs": lambda r: list(r.deny_cidrs),
    "metadata": lambda r: dict(r.metadata),
    "rotation_days": lambda r: r.rotation_days,
    "rotate_after": lambda r: r.rotate_after,
    "expires_at": lambda r: r.expires_at,
    "signing_mode": lambda r: r.signing.mode,
    "public_key": lambda r: fingerprint(r.signing.public_key_pem),
    "delivery_key": lambda r: fingerprint(r.delivery_key),
    "pepper_version": lambda r: r.pepper_version,
}


def audit_changes(old: KeyRecord | None, new: KeyRecord) -> dict[str, dict[str, Any]]:
    """{field: {"from": old, "to": new}} for each audited field the change altered."""
    if old is None:
        return {}
    changes = {}
    for name, read in AUDITED_FIELDS.items():
        before, after = read(old), read(new)
        if before != after:
            changes[name] = {"from": before, "to": after}
    return changes


def _audit_entry_item(
    *,
    kid: str,
    owner_id: str,
    at: int,
    version: int,
    action: str,
    actor: str,
    reason: str,
    from_status: str,
    to_status: str,
    changes: dict[str, dict[str, Any]],
    retention_days: int,
    suffix: str = "",
) -> Item:
    import json

    item = {
        "pk": _s(kid),
        "sk": _s(f"{AUDIT_PREFIX}{at:012d}#{version:08d}{suffix}"),
        "kid": _s(kid),
        "audit_owner": _s(owner_id),  # the owner index's key: not owner_id, so the owner-index skips it
        "at": _n(at),
        "version": _n(version),
        "action": _s(action),
        "actor": _s(actor),
        "reason": _s(reason),
        "from_status": _s(from_status),
        "to_status": _s(to_status),
        "ttl": _n(at + retention_days * DAY),
    }
    if changes:
        item["changes"] = _s(json.dumps(changes, sort_keys=True, separators=(",", ":")))
    return item


def audit_item(old: KeyRecord | None, new: KeyRecord, retention_days: int) -> Item:
    change = new.last_change
    assert change is not None, "every write carries its change"
    return _audit_entry_item(
        kid=new.kid,
        owner_id=new.owner_id,
        at=change.at,
        version=new.version,
        action=change.action,
        actor=change.actor,
        reason=change.reason,
        from_status=str(old.status) if old else "",
        to_status=str(new.status),
        changes=audit_changes(old, new),
        retention_days=retention_days,
    )


def access_audit_item(
    record: KeyRecord, *, at: int, action: str, actor: str, reason: str, retention_days: int
) -> Item:
    """An audit entry for a read that hands a secret out (a successor's pickup): who and when, never
    the secret. Not a change: the key's version and status stay; the random suffix keeps two reads
    in the same second (or a transition in it) from overwriting each other."""
    import secrets

    return {
        "pk": _s(record.kid),
        "sk": _s(f"{AUDIT_PREFIX}{at:012d}#{record.version:08d}#{action}#{secrets.token_hex(4)}"),
        "kid": _s(record.kid),
        "audit_owner": _s(record.owner_id),  # on the owner's trail too
        "at": _n(at),
        "version": _n(record.version),
        "action": _s(action),
        "actor": _s(actor),
        "reason": _s(reason),
        "from_status": _s(str(record.status)),
        "to_status": _s(str(record.status)),
        "ttl": _n(at + retention_days * DAY),
    }


def _audit_from_item(item: Item) -> AuditEntry:
    import json

    return AuditEntry(
        kid=item["kid"]["S"],
        at=int(item["at"]["N"]),
        version=int(item["version"]["N"]),
        action=item["action"]["S"],
        actor=item["actor"]["S"],
        reason=item.get("reason", {}).get("S", ""),
        from_status=item.get("from_status", {}).get("S", ""),
        to_status=item.get("to_status", {}).get("S", ""),
        owner_id=item.get("audit_owner", {}).get("S", ""),
        changes=json.loads(item["changes"]["S"]) if "changes" in item else {},
    )


# ---------------------------------------------------------------- store


def _update_op(table: str, old: KeyRecord, new: KeyRecord) -> Item:
    """An Update that writes only what changed, conditioned on the status and version read."""
    before, after = to_item(old), to_item(new)
    names: dict[str, str] = {"#status": "status", "#version": "version"}
    values: Item = {":expected_status": _s(str(old.status)), ":expected_version": _n(old.version)}
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
    expression = "SET " + ", ".join(sets)
    if removes:
        expression += " REMOVE " + ", ".join(removes)
    return {
        "TableName": table,
        "Key": {"pk": _s(old.kid), "sk": _s(KEY_SK)},
        "UpdateExpression": expression,
        "ConditionExpression": "#status = :expected_status AND #version = :expected_version",
        "ExpressionAttributeNames": names,
        "ExpressionAttributeValues": values,
    }


class KeyStore:
    def __init__(self, table: str, client: Any = None, audit_retention_days: int = 400) -> None:
        self.table = table
        self._client = client
        self.audit_retention_days = audit_retention_days

    @property
    def client(self) -> Any:
        if self._client is None:
            self._client = aws.client("dynamodb")
        return self._client

    # -- reads

    def get_item(self, kid: str) -> Item | None:
        """The raw key item, strongly consistent: the authorizer's one read."""
        response = self.client.get_item(
            TableName=self.table, Key={"pk": _s(kid), "sk": _s(KEY_SK)}, ConsistentRead=True
        )
        item: Item | None = response.get("Item")
        return item

    def get(self, kid: str) -> KeyRecord:
        item = self.get_item(kid)
        if item is None:
            raise KeyNotFoundError(kid)
        return from_item(item)

    def list_by_owner(
        self, owner_id: str, *, limit: int = 100, start: str | None = None
    ) -> tuple[list[KeyRecord], str | None]:
        kwargs: Item = {
            "TableName": self.table,
            "IndexName": OWNER_INDEX,
            "KeyConditionExpression": "owner_id = :o",
            "ExpressionAttributeValues": {":o": _s(owner_id)},
            "Limit": limit,
        }
        if start:
            kwargs["ExclusiveStartKey"] = _decode_cursor(start, _OWNER_CURSOR, owner_id=owner_id)
        response = _paged(self.client.query, kwargs)
        records = [from_item(i) for i in response.get("Items", []) if is_key_item(i)]
        return records, _encode_cursor(response.get("LastEvaluatedKey"))

    def list_all(self, *, limit: int = 100, start: str | None = None) -> tuple[list[KeyRecord], str | None]:
        """Every key, for an operator's listing. A Scan: never on a request path."""
        kwargs: Item = {
            "TableName": self.table,
            "FilterExpression": "sk = :k",
            "ExpressionAttributeValues": {":k": _s(KEY_SK)},
            "Limit": limit,
        }
        if start:
            kwargs["ExclusiveStartKey"] = _decode_cursor(start, _TABLE_CURSOR)
        response = _paged(self.client.scan, kwargs)
        records = [from_item(i) for i in response.get("Items", [])]
        return records, _encode_cursor(response.get("LastEvaluatedKey"))

    def next_in_chain(self, record: KeyRecord) -> KeyRecord | None:
        """``record``'s successor when it is in the same chain (minted by the holder or the schedule,
        not issued by the owner), read strongly consistent; None at the end of the chain."""
        if not record.successor:
            return None
        item = self.get_item(record.successor)
        if item is None:
            return None
        successor = from_item(item)
        if successor.issued_by is None:  # a record from before the minter was kept: ask its audit trail
            successor = replace(successor, issued_by=self._minted_by(successor.kid))
        return successor if successor.issued_by is not IssuedBy.OWNER else None

    def chain(self, record: KeyRecord, *, action: str = "walk") -> list[KeyRecord]:
        """Every successor minted from ``record`` since the last owner-issued key, in order; a chain
        longer than MAX_CHAIN is ChainIncompleteError (for ``action``), never a silent cut."""
        from keysentry.errors import ChainIncompleteError

        out: list[KeyRecord] = []
        seen = {record.kid}
        current: KeyRecord | None = record
        while current is not None:
            current = self.next_in_chain(current)
            if current is None or current.kid in seen:
                break
            if len(out) >= MAX_CHAIN:
                beyond = f"{current.kid} and any after it (beyond the {MAX_CHAIN}-key walk: act on it by kid)"
                raise ChainIncompleteError(record.kid, action, [beyond])
            seen.add(current.kid)
            out.append(current)
        return out

    def _minted_by(self, kid: str) -> IssuedBy:
        """Who created ``kid``, from its audit trail; when that has aged out, assume the holder: a
        leak response then reaches too far rather than not far enough."""
        for entry in self.audit(kid):
            if entry.action == "create":
                if entry.actor.startswith("key:"):
                    return IssuedBy.HOLDER
                return IssuedBy.SCHEDULE if entry.actor == "schedule" else IssuedBy.OWNER
        return IssuedBy.HOLDER

    def audit(self, kid: str) -> list[AuditEntry]:
        paginator = self.client.get_paginator("query")
        entries: list[AuditEntry] = []
        for page in paginator.paginate(
            TableName=self.table,
            KeyConditionExpression="pk = :k AND begins_with(sk, :a)",
            ExpressionAttributeValues={":k": _s(kid), ":a": _s(AUDIT_PREFIX)},
        ):
            entries.extend(_audit_from_item(i) for i in page.get("Items", []))
        return entries

    def audit_by_owner(
        self, owner_id: str, *, limit: int = 50, start: str | None = None
    ) -> tuple[list[AuditEntry], str | None]:
        """An owner's trail across all their keys, newest first: one Query on the owner audit index."""
        kwargs: Item = {
            "TableName": self.table,
            "IndexName": AUDIT_OWNER_INDEX,
            "KeyConditionExpression": "audit_owner = :o",
            "ExpressionAttributeValues": {":o": _s(owner_id)},
            "ScanIndexForward": False,
            "Limit": limit,
        }
        if start:
            key = _decode_cursor(start, _AUDIT_OWNER_CURSOR)
            if key["audit_owner"] != _s(owner_id):
                from keysentry.errors import ValidationError

                raise ValidationError("invalid pagination cursor")
            kwargs["ExclusiveStartKey"] = key
        response = _paged(self.client.query, kwargs)
        entries = [_audit_from_item(i) for i in response.get("Items", [])]
        return entries, _encode_cursor(response.get("LastEvaluatedKey"))

    def due(self, now: int, *, per_shard: int = 100) -> Iterator[str]:
        """Kids whose next action time has come, shard by shard: a Query each, never a Scan."""
        for shard in range(DUE_SHARDS):
            start: Item | None = None
            while True:
                kwargs: Item = {
                    "TableName": self.table,
                    "IndexName": DUE_INDEX,
                    "KeyConditionExpression": "due_shard = :s AND due_at <= :now",
                    "ExpressionAttributeValues": {":s": _s(str(shard)), ":now": _n(now)},
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
                ExpressionAttributeValues={":s": _s(str(shard))},
            )
            kids += [item["pk"]["S"] for page in pages for item in page.get("Items", [])]
        by_version: dict[str, list[str]] = {}
        live = {str(s) for s in (Status.ACTIVE, Status.ROTATING, Status.SUSPENDED)}
        for start in range(0, len(kids), 100):
            request: Item = {
                self.table: {
                    "Keys": [{"pk": _s(kid), "sk": _s(KEY_SK)} for kid in kids[start : start + 100]],
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
                {"Update": _update_op(self.table, old, new)},
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
        update = _update_op(self.table, old, predecessor)
        update["ConditionExpression"] += " AND attribute_not_exists(successor)"
        successor_item = to_item(successor)
        if pickup is not None:  # the successor, KMS-encrypted, for one-time pickup
            successor_item["pickup"] = _s(pickup)
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
        values: Item = {":now": _n(now), ":stale": _n(stale_before)}
        expression = "SET #lu = :now"
        condition = "attribute_exists(pk) AND (attribute_not_exists(#lu) OR #lu < :stale)"
        try:
            self.client.update_item(
                TableName=self.table,
                Key={"pk": _s(kid), "sk": _s(KEY_SK)},
                UpdateExpression=expression,
                ConditionExpression=condition,
                ExpressionAttributeNames=names,
                ExpressionAttributeValues=values,
            )
        except ClientError as error:
            if error.response["Error"]["Code"] == "ConditionalCheckFailedException":
                return False
            raise
        return True

    def rehash(self, record: KeyRecord, digest: str, pepper_version: str, now: int) -> bool:
        """Re-hash ``record`` under ``pepper_version`` (and record its use), with an audit entry
        (action ``rehash``, pepper version from -> to), in one transaction. Only if the stored
        digest is still the one read: of racing containers one wins, the others change nothing.

        Not a lifecycle change: no version bump, so no alert and no conflict with an operator's change.
        Two updates (an update creates the audit item): the authorizer needs no PutItem on the table.
        """
        entry = _audit_entry_item(
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
        audit_attrs = {k: v for k, v in entry.items() if k not in ("pk", "sk")}
        try:
            self._transact(
                [
                    {
                        "Update": {
                            "TableName": self.table,
                            "Key": {"pk": _s(record.kid), "sk": _s(KEY_SK)},
                            "UpdateExpression": "SET #d = :new, #pv = :pv, #lu = :now",
                            "ConditionExpression": "attribute_exists(pk) AND #d = :old AND #pv = :oldpv",
                            "ExpressionAttributeNames": {
                                "#d": "digest",
                                "#pv": "pepper_version",
                                "#lu": "last_used_at",
                            },
                            "ExpressionAttributeValues": {
                                ":new": _s(digest),
                                ":old": _s(record.digest),
                                ":pv": _s(pepper_version),
                                ":oldpv": _s(record.pepper_version),
                                ":now": _n(now),
                            },
                        }
                    },
                    {
                        "Update": {
                            "TableName": self.table,
                            "Key": {"pk": entry["pk"], "sk": entry["sk"]},
                            "UpdateExpression": "SET "
                            + ", ".join(f"#a{i} = :a{i}" for i in range(len(audit_attrs))),
                            "ConditionExpression": "attribute_not_exists(pk)",
                            "ExpressionAttributeNames": {f"#a{i}": k for i, k in enumerate(audit_attrs)},
                            "ExpressionAttributeValues": {
                                f":a{i}": v for i, v in enumerate(audit_attrs.values())
                            },
                        }
                    },
                ],
                record.kid,
            )
        except ConflictError:
            return False
        return True

    def claim_pickup(self, kid: str, ciphertext: str, audit: Item | None = None) -> bool:
        """Erase the pickup copy if it is still ``ciphertext``: exactly one caller wins it.

        With ``audit`` (see :func:`access_audit_item`) the erase and its audit entry are one
        transaction: a pickup is never spent unrecorded, nor recorded unspent.
        """
        erase: Item = {
            "TableName": self.table,
            "Key": {"pk": _s(kid), "sk": _s(KEY_SK)},
            "UpdateExpression": "REMOVE pickup",
            "ConditionExpression": "pickup = :p",
            "ExpressionAttributeValues": {":p": _s(ciphertext)},
        }
        if audit is not None:
            put = {"TableName": self.table, "Item": audit, "ConditionExpression": "attribute_not_exists(pk)"}
            try:
                self._transact([{"Update": erase}, {"Put": put}], kid)
            except ConflictError:
                return False
            return True
        try:
            self.client.update_item(**erase)
        except ClientError as error:
            if error.response["Error"]["Code"] == "ConditionalCheckFailedException":
                return False
            raise
        return True

    def drop_pickup(self, kid: str) -> bool:
        """Erase the one-time pickup copy if there is one (a conditional REMOVE: no write otherwise)."""
        try:
            self.client.update_item(
                TableName=self.table,
                Key={"pk": _s(kid), "sk": _s(KEY_SK)},
                UpdateExpression="REMOVE pickup",
                ConditionExpression="attribute_exists(pickup)",
            )
        except ClientError as error:
            if error.response["Error"]["Code"] == "ConditionalCheckFailedException":
                return False
            raise
        return True

    def record_access(self, audit: Item) -> None:
        """Write an access audit entry (see :func:`access_audit_item`) on its own."""
        self.client.put_item(TableName=self.table, Item=audit, ConditionExpression="attribute_not_exists(pk)")

    def set_pickup(self, kid: str, pickup: str | None) -> None:
        """Store (or erase, with None) the successor's one-time pickup ciphertext."""
        kwargs: Item = {
            "TableName": self.table,
            "Key": {"pk": _s(kid), "sk": _s(KEY_SK)},
            "ConditionExpression": "attribute_exists(pk)",
        }
        if pickup is None:
            kwargs["UpdateExpression"] = "REMOVE pickup"
        else:
            kwargs["UpdateExpression"] = "SET pickup = :p"
            kwargs["ExpressionAttributeValues"] = {":p": _s(pickup)}
        self.client.update_item(**kwargs)

    def _transact(self, items: list[Item], kid: str) -> None:
        try:
            self.client.transact_write_items(TransactItems=items)
        except ClientError as error:
            code = error.response["Error"]["Code"]
            if code == "TransactionCanceledException":
                reasons = error.response.get("CancellationReasons") or []
                if any(r.get("Code") == "ConditionalCheckFailed" for r in reasons) or not reasons:
                    raise ConflictError(kid) from None
            raise


def _encode_cursor(key: Item | None) -> str | None:
    if not key:
        return None
    import base64
    import json

    return base64.urlsafe_b64encode(json.dumps(key, sort_keys=True).encode()).decode()


# The attributes (and their DynamoDB types) of a LastEvaluatedKey: the table's key, plus the index's.
_TABLE_CURSOR: Final = {"pk": "S", "sk": "S"}
_OWNER_CURSOR: Final = {**_TABLE_CURSOR, "owner_id": "S", "created_at": "N"}
_AUDIT_OWNER_CURSOR: Final = {**_TABLE_CURSOR, "audit_owner": "S", "at": "N"}
_CURSOR_MAX_S: Final = 1024
# A cursor's number as DynamoDB accepts it and this listing hands it out: ASCII digits, at most 20
# (str.isdecimal would pass other scripts' digits and 60-digit numbers, which DynamoDB refuses).
_CURSOR_NUMBER: Final = re.compile(r"[0-9]{1,20}")


def _decode_cursor(cursor: str, shape: dict[str, str], *, owner_id: str | None = None) -> Item:
    """A cursor this listing handed out, or ValidationError: exactly its key attributes, each of the
    key's type, a non-empty string or an integer; for an owner's listing, that owner's."""
    import base64
    import binascii
    import json

    from keysentry.errors import ValidationError

    invalid = ValidationError("invalid pagination cursor")
    try:
        key = json.loads(base64.urlsafe_b64decode(cursor.encode()))
    except (ValueError, binascii.Error, RecursionError):
        raise invalid from None
    if not isinstance(key, dict) or set(key) != set(shape):
        raise invalid
    for name, kind in shape.items():
        value = key[name]
        if not isinstance(value, dict) or list(value) != [kind] or not isinstance(value[kind], str):
            raise invalid
        text = value[kind]
        if not 0 < len(text) <= _CURSOR_MAX_S or (kind == "N" and not _CURSOR_NUMBER.fullmatch(text)):
            raise invalid
    if owner_id is not None and key["owner_id"]["S"] != owner_id:
        raise invalid
    return key


def _paged(operation: Any, kwargs: Item) -> Item:
    """Query or Scan; DynamoDB's refusal of a start key (a cursor that passed the shape check but
    names no place in this listing) is the caller's bad input, not a server error."""
    from keysentry.errors import ValidationError

    try:
        response: Item = operation(**kwargs)
    except ClientError as error:
        if "ExclusiveStartKey" in kwargs and error.response["Error"]["Code"] == "ValidationException":
            raise ValidationError("invalid pagination cursor") from None
        raise
    return response
