"""Suspending, resuming, revoking, reporting a leak, expiring: one key, or a key and its chain.

A key's successors minted by its holder or the schedule share its fate: a suspension, revocation or
leak report walks the chain, each key its own conditional write, audit entry and alert.
"""

from __future__ import annotations

from keysentry import model
from keysentry.errors import ChainIncompleteError, ConflictError, TransitionError
from keysentry.model import Action, IssuedBy, KeyRecord
from keysentry.service.base import ServiceBase, describe
from keysentry.store import MAX_CHAIN

REVOKE_ATTEMPTS = 5


class Lifecycle(ServiceBase):
    def suspend(self, kid: str, *, actor: str, reason: str = "") -> KeyRecord:
        """Suspend the key and every successor minted from it since the owner last issued one."""
        return self._on_chain(kid, Action.SUSPEND, actor=actor, reason=model.validate_reason(reason))

    def resume(self, kid: str, *, actor: str, reason: str = "") -> KeyRecord:
        return self._transition(kid, Action.RESUME, actor=actor, reason=model.validate_reason(reason))

    def report_leak(self, kid: str, *, actor: str, reason: str) -> KeyRecord:
        """Suspend the key as leaked, and its chain: a successor of a leaked key is as leaked as the key.

        A key that has already ended (its grace over, say) may still have live successors: they are
        reported all the same.
        """
        return self._on_chain(kid, Action.LEAK, actor=actor, reason=model.validate_reason(reason))

    def expire(self, record: KeyRecord, *, actor: str, reason: str) -> KeyRecord:
        new = model.transition(record, Action.EXPIRE, now=self.clock(), actor=actor, reason=reason)
        return self.store.apply(record, new)

    def revoke(self, kid: str, *, actor: str, reason: str) -> KeyRecord:
        """Revoke from any live state, with the key's chain. A revoke always wins: on a lost race it
        re-reads and retries, key by key (so do a suspension and a leak report)."""
        reason = model.validate_reason(reason, required=True)
        return self._on_chain(kid, Action.REVOKE, actor=actor, reason=reason)

    def _on_chain(self, kid: str, action: Action, *, actor: str, reason: str) -> KeyRecord:
        """Apply ``action`` to the key, then to each successor in its chain (each its own conditional
        write, audit entry and alert, with a reason naming the key acted on), and erase any one-time
        pickup copy on the way. A successor that cannot be changed after the retries does not stop
        the others; the error then names what is still live, and running the same action again
        finishes the chain. A key with nothing left to change answers as the lifecycle does."""
        record = self.get(kid)
        refused: TransitionError | None = None
        try:
            record = self._apply(record, action, actor=actor, reason=reason, retry=True)
        except TransitionError as error:
            refused = error  # it may have ended, or be suspended already: its successors may not be
        pending: list[str] = []
        self._drop_pickup(record, action, pending)
        chain_reason = (f"{action} of {kid}" + (f": {reason}" if reason else ""))[:512]
        changed = self._walk(record, action, actor=actor, reason=chain_reason, pending=pending)
        if pending:
            raise ChainIncompleteError(kid, str(action), pending)
        if refused is not None and not changed:
            raise refused
        return record

    def _walk(self, record: KeyRecord, action: Action, *, actor: str, reason: str, pending: list[str]) -> int:
        """Apply ``action`` to each successor after ``record``; how many changed. What could not be
        reached or changed is added to ``pending``."""
        changed, current, seen = 0, record, {record.kid}
        while True:
            try:
                successor = self.store.next_in_chain(current)
            except Exception as error:  # unreadable: the rest of the chain is out of reach
                pending.append(f"{current.successor} ({describe(error)}) and any after it")
                return changed
            if successor is None or successor.kid in seen:
                return changed
            if len(seen) > MAX_CHAIN:  # never a silent success: say what may still be live
                pending.append(
                    f"{successor.kid} and any after it (beyond the {MAX_CHAIN}-key walk: act on it by kid)"
                )
                return changed
            seen.add(successor.kid)
            current = successor
            try:
                current = self._apply(successor, action, actor=actor, reason=reason, retry=True)
                changed += 1
            except TransitionError:
                pass  # already in that state, or ended: nothing to do to it
            except Exception as error:  # e.g. still conflicting after the retries: carry on, then say so
                pending.append(f"{successor.kid} ({describe(error)})")
            self._drop_pickup(successor, action, pending)

    def _apply(self, record: KeyRecord, action: Action, *, actor: str, reason: str, retry: bool) -> KeyRecord:
        """One key's transition, re-read and retried on a lost race when ``retry``."""
        for attempt in range(REVOKE_ATTEMPTS if retry else 1):
            if attempt:
                record = self.get(record.kid)
            new = model.transition(record, action, now=self.clock(), actor=actor, reason=reason)
            try:
                return self.store.apply(record, new)
            except ConflictError:
                continue
        raise ConflictError(record.kid)

    def _drop_pickup(self, record: KeyRecord, action: Action, pending: list[str]) -> None:
        """A suspended, leaked or revoked key's one-time pickup copy goes: nobody may collect it.
        Only the schedule leaves one (on the successor it mints)."""
        if action not in (Action.SUSPEND, Action.LEAK, Action.REVOKE):
            return
        if record.issued_by not in (IssuedBy.SCHEDULE, None):
            return
        try:
            self.store.drop_pickup(record.kid)
        except Exception as error:  # the transition stands; say the copy is still there
            pending.append(f"{record.kid}'s pickup copy ({describe(error)})")

    def _transition(self, kid: str, action: Action, *, actor: str, reason: str) -> KeyRecord:
        record = self.get(kid)
        new = model.transition(record, action, now=self.clock(), actor=actor, reason=reason)
        return self.store.apply(record, new)
