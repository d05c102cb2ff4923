"""The operations on keys, shared by the CLI, the management API and the schedule.

Each operation reads the key, asks the domain (:mod:`keysentry.model`) for the next record, and
writes it with one conditional transaction. Nothing here is reachable from only one entry point.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

from keysentry import keyformat, model
from keysentry.envelope import KmsBox
from keysentry.errors import ChainIncompleteError, ConflictError, TransitionError, ValidationError
from keysentry.model import Action, IssuedBy, KeyRecord, Signing, Status
from keysentry.peppers import PepperSource
from keysentry.settings import Settings
from keysentry.signing import MODES, load_public_key
from keysentry.store import MAX_CHAIN, AuditEntry, KeyStore, access_audit_item, from_item

Clock = Callable[[], int]
REVOKE_ATTEMPTS = 5
# At most this many keys minted by holders (or the schedule) since the owner last issued one: a
# self-rotation past it is refused, so a chain walk (suspend, revoke, leak) stays far under MAX_CHAIN.
MAX_HOLDER_CHAIN = 50


def system_clock() -> int:
    return int(time.time())


@dataclass(frozen=True)
class Issued:
    """A key as minted: ``token`` (and an hmac key's ``signing_secret``) are plaintext, shown once,
    never stored or logged."""

    record: KeyRecord
    token: str = field(repr=False)
    signing_secret: str | None = field(default=None, repr=False)

    NOTICE = "The key is shown once: store it now."
    SECRET_FIELDS = ("key", "signing_secret")  # the plaintext parts of its document

    def document(self) -> dict[str, Any]:
        """What its holder is shown, the one time: the public view, the key, an hmac key's signing
        secret, and the notice. The API's responses and the CLI's output are this document."""
        doc: dict[str, Any] = {**self.record.public_view(), "key": self.token}
        if self.signing_secret:
            doc["signing_secret"] = self.signing_secret
        doc["notice"] = self.NOTICE
        return doc


@dataclass(frozen=True)
class SealedSuccessor:
    """A scheduled successor sealed to the consumer's X25519 delivery key (:func:`keysentry.envelope.seal`):
    only the consumer's private key opens ``sealed``, so it may be handed out more than once."""

    record: KeyRecord
    sealed: dict[str, str] = field(repr=False)


SIGNING_SECRET_LEN = 43  # base62: 256 bits


class KeyService:
    def __init__(
        self,
        store: KeyStore,
        peppers: PepperSource,
        *,
        settings: Settings | None = None,
        clock: Clock = system_clock,
    ) -> None:
        self.store = store
        self.peppers = peppers
        self.settings = settings or Settings()
        self.clock = clock
        self._kms: KmsBox | None = None

    @property
    def kms(self) -> KmsBox:
        if self._kms is None:
            self._kms = KmsBox(self.settings.kms_key_id)
        return self._kms

    @classmethod
    def from_settings(cls, settings: Settings | None = None, clock: Clock = system_clock) -> KeyService:
        settings = settings or Settings.from_env()
        return cls(
            KeyStore(settings.keys_table, audit_retention_days=settings.audit_retention_days),
            PepperSource(settings.pepper_secret_id),
            settings=settings,
            clock=clock,
        )

    # -- issue

    def create(
        self,
        owner_id: str,
        *,
        actor: str,
        name: str = "",
        scopes: list[str] | tuple[str, ...] = (),
        allow_cidrs: list[str] | tuple[str, ...] = (),
        deny_cidrs: list[str] | tuple[str, ...] = (),
        rotation_days: int | None = None,
        expires_in_days: int | None = None,
        expires_in: int | str | None = None,
        env: str = "live",
        metadata: dict[str, str] | None = None,
        signing: str = "bearer",
        public_key_pem: str | None = None,
        delivery_key_pem: str | None = None,
    ) -> Issued:
        if env not in keyformat.ENVS:
            raise ValidationError(f"env must be one of {', '.join(keyformat.ENVS)}")
        if signing not in MODES:
            raise ValidationError(f"signing must be one of {', '.join(MODES)}")
        delivery_key = None
        if delivery_key_pem:
            from keysentry.envelope import load_delivery_key

            delivery_key = load_delivery_key(delivery_key_pem)
        peppers = self.peppers.get()
        minted = keyformat.generate(env)
        signing_config, secret = self._signing_for(minted.kid, signing, public_key_pem)
        record = model.new_record(
            kid=minted.kid,
            owner_id=owner_id,
            env=env,
            digest=peppers.digest(minted.token),
            pepper_version=peppers.current,
            now=self.clock(),
            actor=actor,
            name=name,
            scopes=scopes,
            allow_cidrs=allow_cidrs,
            deny_cidrs=deny_cidrs,
            rotation_days=self.settings.default_rotation_days if rotation_days is None else rotation_days,
            expires_in_days=expires_in_days,
            expires_in=expires_in,
            max_lifetime_days=self.settings.max_lifetime_days,
            metadata=metadata,
            signing=signing_config,
        )
        if delivery_key:
            record = replace(record, delivery_key=delivery_key)
        self.store.create(record)
        return Issued(record, minted.token, secret)

    def _signing_for(self, kid: str, mode: str, public_key_pem: str | None) -> tuple[Signing, str | None]:
        """The signing configuration of a new key, and the hmac secret to show once."""
        if mode == "bearer":
            if public_key_pem:
                raise ValidationError("a public key needs --signing ed25519 or rsa")
            return Signing(), None
        if mode == "hmac":
            if public_key_pem:
                raise ValidationError("hmac signing uses a generated secret, not a public key")
            secret = keyformat.random_base62(SIGNING_SECRET_LEN)
            return Signing("hmac", secret_ciphertext=self.kms.encrypt(kid, "signing", secret)), secret
        if not public_key_pem:
            raise ValidationError(f"{mode} signing needs the consumer's public key")
        key_mode, pem = load_public_key(public_key_pem)
        if key_mode != mode:
            raise ValidationError(f"the public key is {key_mode}, not {mode}")
        return Signing(mode, public_key_pem=pem), None

    def set_public_key(self, kid: str, pem: str, *, actor: str) -> KeyRecord:
        """Register (or replace) the consumer's public key; the key then requires signed requests."""
        return self.update(kid, actor=actor, public_key=pem)

    # -- read

    def get(self, kid: str) -> KeyRecord:
        _check_kid(kid)
        return self.store.get(kid)

    def list_keys(
        self,
        owner_id: str | None = None,
        *,
        status: str | None = None,
        limit: int = 100,
        cursor: str | None = None,
    ) -> tuple[list[KeyRecord], str | None]:
        if status is not None and status not in set(Status):
            raise ValidationError(f"status must be one of {', '.join(Status)}")
        if not 1 <= limit <= 1000:
            raise ValidationError("limit must be between 1 and 1000")
        if owner_id is not None:
            records, cursor = self.store.list_by_owner(
                model.validate_owner(owner_id), limit=limit, start=cursor
            )
        else:
            records, cursor = self.store.list_all(limit=limit, start=cursor)
        if status is not None:
            records = [r for r in records if r.status == status]
        return records, cursor

    def audit(self, kid: str) -> list[AuditEntry]:
        self.get(kid)  # 404 for an unknown kid rather than an empty trail
        return self.store.audit(kid)

    def owner_audit(
        self, owner_id: str, *, limit: int = 50, cursor: str | None = None
    ) -> tuple[list[AuditEntry], str | None]:
        """Every audit entry of an owner's keys, newest first, a page at a time."""
        if not 1 <= limit <= 1000:
            raise ValidationError("limit must be between 1 and 1000")
        return self.store.audit_by_owner(model.validate_owner(owner_id), limit=limit, start=cursor)

    def pepper_status(self, *, with_kids: bool = False) -> dict[str, Any]:
        """Live keys per pepper version, and which old versions no live key needs any more.
        ``with_kids``: the ids of the live keys still under an old version."""
        peppers = self.peppers.get()
        kids = self.store.live_pepper_versions()
        versions = sorted(set(peppers.versions) | set(kids), key=lambda v: (len(v), v))
        rows = []
        for v in versions:
            row: dict[str, Any] = {
                "version": v,
                "live_keys": len(kids.get(v, [])),
                "current": v == peppers.current,
                "in_secret": peppers.knows(v),
            }
            if with_kids and v != peppers.current:
                row["kids"] = kids.get(v, [])
            rows.append(row)
        return {
            "current": peppers.current,
            "versions": rows,
            "removable": [v for v in versions if v != peppers.current and peppers.knows(v) and v not in kids],
        }

    # -- lifecycle

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
        changed, pending = 0, list[str]()
        self._drop_pickup(record, action, pending)
        chain_reason = f"{action} of {kid}" + (f": {reason}" if reason else "")
        current: KeyRecord | None = record
        seen = {kid}
        while current is not None:
            try:
                successor = self.store.next_in_chain(current)
            except Exception as error:  # unreadable: the rest of the chain is out of reach
                pending.append(f"{current.successor} ({_describe(error)}) and any after it")
                break
            if successor is None or successor.kid in seen:
                break
            if len(seen) > MAX_CHAIN:  # never a silent success: say what may still be live
                pending.append(
                    f"{successor.kid} and any after it (beyond the {MAX_CHAIN}-key walk: act on it by kid)"
                )
                break
            seen.add(successor.kid)
            current = successor
            try:
                current = self._apply(successor, action, actor=actor, reason=chain_reason[:512], retry=True)
                changed += 1
            except TransitionError:
                pass  # already in that state, or ended: nothing to do to it
            except Exception as error:  # e.g. still conflicting after the retries: carry on, then say so
                pending.append(f"{successor.kid} ({_describe(error)})")
            self._drop_pickup(successor, action, pending)
        if pending:
            raise ChainIncompleteError(kid, str(action), pending)
        if refused is not None and not changed:
            raise refused
        return record

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
            pending.append(f"{record.kid}'s pickup copy ({_describe(error)})")

    def update(self, kid: str, *, actor: str, **changes: Any) -> KeyRecord:
        """Change a key's policy, all or nothing: every field is checked before the one conditional
        write (one version bump, one audit entry). ``public_key`` (Ed25519/RSA) and ``delivery_key``
        (X25519) are PEM texts; registering a public key makes the key require signed requests."""
        if not changes:
            raise ValidationError("nothing to update")
        if "public_key" in changes:
            mode, normalised = load_public_key(changes.pop("public_key"))
            changes["signing"] = Signing(mode, public_key_pem=normalised)
        if "delivery_key" in changes:
            from keysentry.envelope import load_delivery_key

            changes["delivery_key"] = load_delivery_key(changes.pop("delivery_key"))
        record = self.get(kid)
        new = model.update(record, now=self.clock(), actor=actor, **changes)
        return self.store.apply(record, new)

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
            if tip.status is not Status.SUSPENDED:
                advice = "suspend it first" if tip.is_live else "issue a new key instead"
                raise TransitionError(
                    kid, "replace", f"its chain ends with {tip.kid}, which is {tip.status}: {advice}"
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
        if not (record.status is Status.SUSPENDED and issued_by is IssuedBy.OWNER):
            model.check_allowed(record, Action.ROTATE)
        peppers = self.peppers.get()
        minted = keyformat.generate(record.env)
        successor_signing, secret = record.signing, None
        if record.signing.mode == "hmac":  # a successor never shares its predecessor's secret
            secret = keyformat.random_base62(SIGNING_SECRET_LEN)
            successor_signing = Signing(
                "hmac", secret_ciphertext=self.kms.encrypt(minted.kid, "signing", secret)
            )
        payload = {"kid": minted.kid, "key": minted.token, **({"signing_secret": secret} if secret else {})}
        sealed, pickup = None, None
        if deliver and record.delivery_key:
            from keysentry.envelope import seal

            sealed = seal(record.delivery_key, payload, aad=minted.kid)
        elif deliver:
            pickup = self.kms.encrypt(minted.kid, "pickup", json.dumps(payload))
        predecessor, successor = model.rotate(
            record,
            now=self.clock(),
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

    def pick_up_successor(self, kid: str, *, actor: str | None = None) -> Issued | SealedSuccessor | None:
        """The predecessor's holder collects the successor the schedule minted for it.

        Sealed to the key's delivery key: the sealed blob, as often as asked during the grace (only
        the consumer's private key opens it). Otherwise the KMS-encrypted copy, once: it is erased
        as it is read. Each pickup leaves an audit entry on the successor (who, when; no secret).
        """
        record = self.get(kid)
        if record.successor is None or record.status is not Status.ROTATING:
            return None
        actor = actor or f"key:{kid}"
        item = self.store.get_item(record.successor)
        if item is None:
            return None
        successor = from_item(item)
        if successor.status not in (Status.ACTIVE, Status.ROTATING):
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

    def set_delivery_key(self, kid: str, pem: str, *, actor: str) -> KeyRecord:
        return self.update(kid, actor=actor, delivery_key=pem)

    def _transition(self, kid: str, action: Action, *, actor: str, reason: str) -> KeyRecord:
        record = self.get(kid)
        new = model.transition(record, action, now=self.clock(), actor=actor, reason=reason)
        return self.store.apply(record, new)


def _describe(error: Exception) -> str:
    """A short, secret-free word on why a key in a chain could not be changed."""
    if isinstance(error, ConflictError):
        return "changed concurrently"
    response = getattr(error, "response", None)
    if isinstance(response, dict):
        return str(response.get("Error", {}).get("Code", type(error).__name__))
    return type(error).__name__


def _check_kid(kid: str) -> None:
    if not keyformat.is_kid(kid):
        raise ValidationError("a key id is 12 letters and digits")


__all__ = ["ConflictError", "Issued", "KeyService", "SealedSuccessor", "TransitionError"]
