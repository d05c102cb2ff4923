"""DynamoDB adapter for the keys table.

One table, two item kinds under the same partition (``pk`` = kid):
- the key item, ``sk = "KEY"``: read by the authorizer with one strongly consistent GetItem;
- audit entries, ``sk = "AUDIT#<at>#<version>"``: written in the same transaction as the change.

Indexes: ``owner-index`` (owner_id, created_at) and the sparse, write-sharded ``due-index``
(due_shard, due_at) that only live keys carry, so the schedule queries what is due; the sparse
``audit-owner-index`` (audit_owner, at) that only audit entries carry, so an owner's trail is a Query.

Modules: :mod:`.codec` (a key record to and from an item), :mod:`.audit` (audit entries and the
trails), :mod:`.chain` (a key's successors), :mod:`.due` (the due index), :mod:`.cursor`
(pagination), :mod:`.table` (the client, the one read, transactions) and :mod:`.keys`
(:class:`KeyStore`, which brings them together).
"""

from keysentry.store.audit import (
    AUDIT_OWNER_INDEX,
    AUDIT_PREFIX,
    AUDITED_FIELDS,
    AuditEntry,
    access_audit_item,
    audit_changes,
    audit_item,
    fingerprint,
)
from keysentry.store.chain import MAX_CHAIN
from keysentry.store.codec import KEY_SK, NEVER_DUE, Item, from_item, is_key_item, to_item
from keysentry.store.due import DUE_INDEX
from keysentry.store.keys import OWNER_INDEX, REHASH_ACTOR, KeyStore

__all__ = [
    "AUDITED_FIELDS",
    "AUDIT_OWNER_INDEX",
    "AUDIT_PREFIX",
    "DUE_INDEX",
    "KEY_SK",
    "MAX_CHAIN",
    "NEVER_DUE",
    "OWNER_INDEX",
    "REHASH_ACTOR",
    "AuditEntry",
    "Item",
    "KeyStore",
    "access_audit_item",
    "audit_changes",
    "audit_item",
    "fingerprint",
    "from_item",
    "is_key_item",
    "to_item",
]
