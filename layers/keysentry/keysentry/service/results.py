"""What the service hands back when it mints a key: the plaintext, once."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from keysentry.model import KeyRecord


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
