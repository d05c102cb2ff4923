"""A key's chain: the successors its holder (or the schedule) minted from it, in order."""

from __future__ import annotations

from dataclasses import replace
from typing import Final

from keysentry.model import IssuedBy, KeyRecord
from keysentry.store.audit import AuditTrail
from keysentry.store.codec import from_item

MAX_CHAIN: Final = 1000  # a guard against a corrupt successor loop; real chains are a handful of keys


class Chains(AuditTrail):
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
