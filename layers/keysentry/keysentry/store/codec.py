"""The key item's codec: a KeyRecord to and from DynamoDB's attribute-value form (GetItem or a
stream image). Pure: no client, no I/O."""

from __future__ import annotations

from typing import Any, Final

from keysentry.model import Change, IssuedBy, KeyRecord, Signing, Status, due_shard, next_due

KEY_SK: Final = "KEY"
NEVER_DUE: Final = 99_999_999_999  # a live key the schedule has nothing to do for (suspended, no expiry)

Item = dict[str, Any]


def s_attr(value: str) -> dict[str, str]:
    return {"S": value}


def n_attr(value: int) -> dict[str, str]:
    return {"N": str(value)}


# The optional string attributes: absent when unset.
_OPTIONAL_S = ("predecessor", "successor", "suspended_from", "reminded", "delivery_key", "issued_by", "meter")


def to_item(record: KeyRecord) -> Item:
    item: Item = {
        "pk": s_attr(record.kid),
        "sk": s_attr(KEY_SK),
        "kid": s_attr(record.kid),
        "owner_id": s_attr(record.owner_id),
        "name": s_attr(record.name),
        "env": s_attr(record.env),
        "status": s_attr(str(record.status)),
        "digest": s_attr(record.digest),
        "pepper_version": s_attr(record.pepper_version),
        "created_at": n_attr(record.created_at),
        "rotation_days": n_attr(record.rotation_days),
        "rotate_after": n_attr(record.rotate_after),
        "scopes": {"L": [s_attr(s) for s in record.scopes]},
        "allow_cidrs": {"L": [s_attr(c) for c in record.allow_cidrs]},
        "deny_cidrs": {"L": [s_attr(c) for c in record.deny_cidrs]},
        "metadata": {"M": {k: s_attr(v) for k, v in record.metadata.items()}},
        "version": n_attr(record.version),
    }
    signing: Item = {"mode": s_attr(record.signing.mode)}
    if record.signing.secret_ciphertext:
        signing["secret_ciphertext"] = s_attr(record.signing.secret_ciphertext)
    if record.signing.public_key_pem:
        signing["public_key_pem"] = s_attr(record.signing.public_key_pem)
    item["signing"] = {"M": signing}
    for name in ("expires_at", "grace_until", "last_used_at", "leaked_at", "quota_exhausted_until"):
        value = getattr(record, name)
        if value is not None:
            item[name] = n_attr(value)
    if record.sealed_successor:
        item["sealed_successor"] = {"M": {k: s_attr(v) for k, v in record.sealed_successor.items()}}
    for name in _OPTIONAL_S:
        value = getattr(record, name)
        if value is not None:
            item[name] = s_attr(str(value))
    if record.suspend_on_anomaly:  # absent: false (every key from before it was kept)
        item["suspend_on_anomaly"] = {"BOOL": True}
    if record.plan:  # absent: the default plan (every key from before plans were kept)
        item["plan"] = {"S": record.plan}
    if record.last_change is not None:
        c = record.last_change
        item["last_change"] = {
            "M": {
                "action": s_attr(c.action),
                "actor": s_attr(c.actor),
                "at": n_attr(c.at),
                "reason": s_attr(c.reason),
            }
        }
    due = next_due(record)
    if due is None and record.is_live:
        due = NEVER_DUE  # every live key is in the due index (peppers status counts them there)
    if due is not None:  # sparse: only live keys are in the due index
        item["due_shard"] = s_attr(due_shard(record.kid))
        item["due_at"] = n_attr(due)
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
        suspend_on_anomaly=bool(item.get("suspend_on_anomaly", {}).get("BOOL", False)),
        plan=item.get("plan", {}).get("S", ""),
        quota_exhausted_until=_opt_n(item, "quota_exhausted_until"),
        meter=_opt_s(item, "meter"),
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
