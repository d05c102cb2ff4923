"""Audit entries: items in the keys table (``sk = "AUDIT#<at>#<version>"``), written in the same
transaction as the change they record, read per key or per owner (the sparse audit owner index)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Final

from keysentry.model import DAY, KeyRecord
from keysentry.store.codec import Item, n_attr, s_attr
from keysentry.store.cursor import AUDIT_OWNER_CURSOR, decode_cursor, encode_cursor, paged
from keysentry.store.table import Table

AUDIT_PREFIX: Final = "AUDIT#"
AUDIT_OWNER_INDEX: Final = "audit-owner-index"


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
    "suspend_on_anomaly": lambda r: r.suspend_on_anomaly,
    "plan": lambda r: r.plan or None,  # None: the default plan (a key from before plans were kept)
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


def audit_entry_item(
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
        "pk": s_attr(kid),
        "sk": s_attr(f"{AUDIT_PREFIX}{at:012d}#{version:08d}{suffix}"),
        "kid": s_attr(kid),
        "audit_owner": s_attr(owner_id),  # the owner index's key: not owner_id, so the owner-index skips it
        "at": n_attr(at),
        "version": n_attr(version),
        "action": s_attr(action),
        "actor": s_attr(actor),
        "reason": s_attr(reason),
        "from_status": s_attr(from_status),
        "to_status": s_attr(to_status),
        "ttl": n_attr(at + retention_days * DAY),
    }
    if changes:
        item["changes"] = s_attr(json.dumps(changes, sort_keys=True, separators=(",", ":")))
    return item


def audit_item(old: KeyRecord | None, new: KeyRecord, retention_days: int) -> Item:
    change = new.last_change
    assert change is not None, "every write carries its change"
    return audit_entry_item(
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
        "pk": s_attr(record.kid),
        "sk": s_attr(f"{AUDIT_PREFIX}{at:012d}#{record.version:08d}#{action}#{secrets.token_hex(4)}"),
        "kid": s_attr(record.kid),
        "audit_owner": s_attr(record.owner_id),  # on the owner's trail too
        "at": n_attr(at),
        "version": n_attr(record.version),
        "action": s_attr(action),
        "actor": s_attr(actor),
        "reason": s_attr(reason),
        "from_status": s_attr(str(record.status)),
        "to_status": s_attr(str(record.status)),
        "ttl": n_attr(at + retention_days * DAY),
    }


def audit_from_item(item: Item) -> AuditEntry:
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


class AuditTrail(Table):
    """The audit reads: one key's trail, an owner's trail."""

    def audit(self, kid: str) -> list[AuditEntry]:
        paginator = self.client.get_paginator("query")
        entries: list[AuditEntry] = []
        for page in paginator.paginate(
            TableName=self.table,
            KeyConditionExpression="pk = :k AND begins_with(sk, :a)",
            ExpressionAttributeValues={":k": s_attr(kid), ":a": s_attr(AUDIT_PREFIX)},
        ):
            entries.extend(audit_from_item(i) for i in page.get("Items", []))
        return entries

    def audit_by_owner(
        self, owner_id: str, *, limit: int = 50, start: str | None = None
    ) -> tuple[list[AuditEntry], str | None]:
        """An owner's trail across all their keys, newest first: one Query on the owner audit index."""
        kwargs: Item = {
            "TableName": self.table,
            "IndexName": AUDIT_OWNER_INDEX,
            "KeyConditionExpression": "audit_owner = :o",
            "ExpressionAttributeValues": {":o": s_attr(owner_id)},
            "ScanIndexForward": False,
            "Limit": limit,
        }
        if start:
            key = decode_cursor(start, AUDIT_OWNER_CURSOR)
            if key["audit_owner"] != s_attr(owner_id):
                from keysentry.errors import ValidationError

                raise ValidationError("invalid pagination cursor")
            kwargs["ExclusiveStartKey"] = key
        response = paged(self.client.query, kwargs)
        entries = [audit_from_item(i) for i in response.get("Items", [])]
        return entries, encode_cursor(response.get("LastEvaluatedKey"))
