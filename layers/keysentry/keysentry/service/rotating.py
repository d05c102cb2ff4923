"""Rotation: by the owner, by the key's holder, or by the schedule; and collecting a successor."""

from __future__ import annotations

import json
from typing import Any

from keysentry import keyformat, model
from keysentry.errors import TransitionError
from keysentry.model import Action, IssuedBy, KeyRecord, Signing, Status
from keysentry.service.base import SIGNING_SECRET_LEN, ServiceBase
from keysentry.service.results import Issued, SealedSuccessor
from keysentry.store import access_audit_item, from_item

# At most this many keys minted by holders (or the schedule) since the owner last issued one: a
# self-rotation past it is refused, so a chain walk (suspend, revoke, leak) stays far under MAX_CHAIN.
MAX_HOLDER_CHAIN = 50


class Rotating(ServiceBase):
    def rotate(self, kid: str, *, actor: str, reason: str = "", grace_days: int | None = None) -> Issued:
        """The owner mints a successor with the same policy; the predecessor works until its grace ends.

        On a suspended key this is its replacement: the key stays suspended. When the key's holder
        (or the schedule) had already minted successors, now suspended with it, the replacement
        follows the last of them, so that revoking the key later reaches the whole chain but not
        the replacement.
        """
        record = self.get(kid)
        if record.status is Status.SUSPENDED and record.successor:
            chain = self.store.chain(record, action="suspend")
            tip = chain[-1] if chain else record
            if tip.successor:
                raise TransitionError(kid, "replace", f"already replaced (successor {tip.successor})")
            status = tip.status_at(self.clock())
            if status is not Status.SUSPENDED:
                advice = "suspend it first" if status in model.LIVE else "issue a new key instead"
                raise TransitionError(
                    kid, "replace", f"its chain ends with {tip.kid}, which is {status}: {advice}"
                )
            record = tip
        return self.rotate_record(
            record, actor=actor, reason=reason, grace_days=grace_days, issued_by=IssuedBy.OWNER
        )

    def rotate_self(self, kid: str) -> Issued:
        """The key's holder mints its successor: only with the scope for it, never under a leak report."""
        record = self.get(kid)
        model.check_self_rotation(record)
        self._check_holder_chain(record)
        return self.rotate_record(
            record, actor=f"key:{kid}", reason="rotated by its holder", issued_by=IssuedBy.HOLDER
        )

    def _check_holder_chain(self, record: KeyRecord) -> None:
        """Refuse a self-rotation when MAX_HOLDER_CHAIN keys were already minted (by holders or the
        schedule) since the owner last issued one: a suspension, revocation or leak report walks the
        whole chain, and that walk must stay far under MAX_CHAIN."""
        links, current = 0, record
        while links < MAX_HOLDER_CHAIN and current.predecessor:
            minted_by = current.issued_by or self.store._minted_by(current.kid)  # None: an old record
            if minted_by is IssuedBy.OWNER:
                break
            previous = self.store.get_item(current.predecessor)
            if previous is None:
                break
            links, current = links + 1, from_item(previous)
        if links >= MAX_HOLDER_CHAIN:
            raise TransitionError(
                record.kid,
                "rotate",
                f"{MAX_HOLDER_CHAIN} keys have been minted in this chain since its owner last issued one "
                f"(at most {MAX_HOLDER_CHAIN}, so that a suspension, revocation or leak report reaches them "
                f"all): its owner can rotate it (POST /keys/{record.kid}/rotate) to start a new chain",
            )

    def rotate_record(
        self,
        record: KeyRecord,
        *,
        actor: str,
        reason: str = "",
        grace_days: int | None = None,
        deliver: bool = False,
        issued_by: IssuedBy | None = None,
    ) -> Issued:
        """Rotate ``record``. With ``deliver`` (nobody is there to be shown the successor, as on the
        schedule), the successor is sealed to the key's delivery public key when it has one, and
        otherwise kept KMS-encrypted on the successor for one-time pickup by the predecessor's holder.
        ``issued_by`` defaults to the schedule with ``deliver``, else the owner.
        """
        if issued_by is None:
            issued_by = IssuedBy.SCHEDULE if deliver else IssuedBy.OWNER
        now = self.clock()
        if not (record.status is Status.SUSPENDED and issued_by is IssuedBy.OWNER):
            model.check_allowed(record, Action.ROTATE, now)
        peppers = self.peppers.get()
        minted = keyformat.generate(record.env)
        successor_signing, secret = record.signing, None
        if record.signing.mode == "hmac":  # a successor never shares its predecessor's secret
            secret = keyformat.random_base62(SIGNING_SECRET_LEN)
            successor_signing = Signing(
                "hmac", secret_ciphertext=self.kms.encrypt(minted.kid, "signing", secret)
            )
        payload = {"kid": minted.kid, "key": minted.token, **({"signing_secret": secret} if secret else {})}
        sealed, pickup = self._delivery(record, payload) if deliver else (None, None)
        predecessor, successor = model.rotate(
            record,
            now=now,
            actor=actor,
            grace_days=self.settings.grace_days if grace_days is None else grace_days,
            successor_kid=minted.kid,
            successor_digest=peppers.digest(minted.token),
            pepper_version=peppers.current,
            reason=model.validate_reason(reason),
            max_lifetime_days=self.settings.max_lifetime_days,
            sealed_successor=sealed,
            successor_signing=successor_signing,
            issued_by=issued_by,
        )
        self.store.rotate(record, predecessor, successor, pickup=pickup)
        return Issued(successor, minted.token, secret)

    def _delivery(
        self, record: KeyRecord, payload: dict[str, str]
    ) -> tuple[dict[str, str] | None, str | None]:
        """(sealed to the key's delivery key, or KMS-encrypted for one-time pickup): one of the two."""
        if record.delivery_key:
            from keysentry.envelope import seal

            return seal(record.delivery_key, payload, aad=payload["kid"]), None
        return None, self.kms.encrypt(payload["kid"], "pickup", json.dumps(payload))

    def pick_up_successor(self, kid: str, *, actor: str | None = None) -> Issued | SealedSuccessor | None:
        """The predecessor's holder collects the successor the schedule minted for it.

        Sealed to the key's delivery key: the sealed blob, as often as asked during the grace (only
        the consumer's private key opens it). Otherwise the KMS-encrypted copy, once: it is erased
        as it is read. Each pickup leaves an audit entry on the successor (who, when; no secret).
        """
        record = self.get(kid)
        now = self.clock()
        if record.successor is None or record.status_at(now) is not Status.ROTATING:
            return None  # past its grace: the copy ends with it
        actor = actor or f"key:{kid}"
        item = self.store.get_item(record.successor)
        if item is None:
            return None
        successor = from_item(item)
        if successor.status_at(now) not in (Status.ACTIVE, Status.ROTATING):
            return None  # suspended, revoked or expired since: nothing to collect
        if record.sealed_successor:
            self.store.record_access(
                self._pickup_audit(successor, "successor_sealed_fetched", actor, f"sealed successor of {kid}")
            )
            return SealedSuccessor(successor, dict(record.sealed_successor))
        ciphertext = item.get("pickup", {}).get("S")
        if ciphertext is None:
            return None
        payload = json.loads(self.kms.decrypt(record.successor, "pickup", ciphertext))  # before erasing
        audit = self._pickup_audit(
            successor, "successor_picked_up", actor, f"one-time pickup by the holder of {kid}"
        )
        if not self.store.claim_pickup(record.successor, ciphertext, audit):
            return None  # someone else picked it up between our read and our erase
        return Issued(successor, payload["key"], payload.get("signing_secret"))

    def _pickup_audit(self, successor: KeyRecord, action: str, actor: str, reason: str) -> dict[str, Any]:
        return access_audit_item(
            successor,
            at=self.clock(),
            action=action,
            actor=actor,
            reason=reason,
            retention_days=self.store.audit_retention_days,
        )

    def erase_pickup(self, successor_kid: str) -> None:
        self.store.set_pickup(successor_kid, None)
