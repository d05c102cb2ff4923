"""Issuing a key, changing its policy, and telling which key a token is."""

from __future__ import annotations

from typing import Any

from keysentry import keyformat, model
from keysentry.errors import KeyNotFoundError, ValidationError
from keysentry.identify import Identified, identify_token
from keysentry.model import SIGNING_MODES, KeyRecord, KeySpec, Signing
from keysentry.service.base import SIGNING_SECRET_LEN, ServiceBase
from keysentry.service.results import Issued
from keysentry.signing import load_public_key


class Issuing(ServiceBase):
    def create(self, spec: KeySpec | str, *, actor: str, **fields: Any) -> Issued:
        """Issue the key ``spec`` asks for; its plaintext is in the answer only.
        ``create(owner, actor=..., scopes=...)`` is short for ``create(KeySpec(owner, scopes=...), ...)``."""
        if isinstance(spec, str):
            spec = KeySpec(spec, **fields)
        elif fields:
            raise TypeError("give the key's fields in its KeySpec")
        if spec.env not in keyformat.ENVS:
            raise ValidationError(f"env must be one of {', '.join(keyformat.ENVS)}")
        if spec.signing not in SIGNING_MODES:
            raise ValidationError(f"signing must be one of {', '.join(SIGNING_MODES)}")
        delivery_key = None
        if spec.delivery_key:
            from keysentry.envelope import load_delivery_key

            delivery_key = load_delivery_key(spec.delivery_key)
        peppers = self.peppers.get()
        minted = keyformat.generate(spec.env)
        signing, secret = self._signing_for(minted.kid, spec.signing, spec.public_key)
        record = model.issue(
            spec,
            kid=minted.kid,
            digest=peppers.digest(minted.token),
            pepper_version=peppers.current,
            now=self.clock(),
            actor=actor,
            signing=signing,
            default_rotation_days=self.settings.default_rotation_days,
            max_lifetime_days=self.settings.max_lifetime_days,
            delivery_key=delivery_key,
            plans=self.settings.plans(),
        )
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

    def update(self, kid: str, *, actor: str, **changes: Any) -> KeyRecord:
        """Change a key's policy, all or nothing: every field is checked before the one conditional
        write (one version bump, one audit entry). ``public_key`` (Ed25519/RSA) and ``delivery_key``
        (X25519) are PEM texts; registering a public key makes the key require signed requests.
        The API's PATCH and the CLI's ``keys update`` are this one call."""
        if not changes:
            raise ValidationError("nothing to update")
        if "public_key" in changes:
            mode, normalised = load_public_key(changes.pop("public_key"))
            changes["signing"] = Signing(mode, public_key_pem=normalised)
        if "delivery_key" in changes:
            from keysentry.envelope import load_delivery_key

            changes["delivery_key"] = load_delivery_key(changes.pop("delivery_key"))
        record = self.get(kid)
        new = model.update(record, now=self.clock(), actor=actor, plans=self.settings.plans(), **changes)
        return self.store.apply(record, new)

    def set_public_key(self, kid: str, pem: str, *, actor: str) -> KeyRecord:
        """Register (or replace) the consumer's public key; the key then requires signed requests."""
        return self.update(kid, actor=actor, public_key=pem)

    def set_delivery_key(self, kid: str, pem: str, *, actor: str) -> KeyRecord:
        return self.update(kid, actor=actor, delivery_key=pem)

    def identify(self, token: object) -> Identified[KeyRecord]:
        """The key ``token`` is (its record), or why it is none: malformed, unknown, wrong digest."""
        return identify_token(token, self._find, self.peppers.for_version)

    def _find(self, kid: str) -> KeyRecord | None:
        try:
            return self.get(kid)
        except KeyNotFoundError:
            return None
