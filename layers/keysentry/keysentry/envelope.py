"""Secrets at rest: KMS encryption bound to a key id, and sealing to an owner's public key.

- :class:`KmsBox` encrypts small secrets (a successor waiting for pickup, an hmac signing secret)
  with KMS directly; the encryption context ``{"kid": ..., "purpose": ...}`` binds a ciphertext to
  the key it belongs to, so it cannot be replayed onto another key.
- :func:`seal` / :func:`open_sealed`: X25519 + HKDF-SHA256 + AES-256-GCM to a delivery public key
  (an anonymous "sealed box"): only the holder of the private key can open it.

``cryptography`` is imported inside the sealing functions only: nothing on the authorizer's
bearer path pays for it.
"""

from __future__ import annotations

import base64
import json
from typing import TYPE_CHECKING, Any

from keysentry.errors import ValidationError

if TYPE_CHECKING:
    from mypy_boto3_kms import KMSClient

SEAL_ALG = "X25519-HKDF-SHA256-A256GCM"


class KmsBox:
    def __init__(self, key_id: str, client: KMSClient | None = None) -> None:
        self.key_id = key_id
        self._client = client

    @property
    def client(self) -> KMSClient:
        from keysentry import (
            aws,
        )  # here, not at import: a consumer opening a sealed successor has no botocore

        return self._client or aws.client("kms")

    def encrypt(self, kid: str, purpose: str, plaintext: str) -> str:
        response = self.client.encrypt(
            KeyId=self.key_id,
            Plaintext=plaintext.encode(),
            EncryptionContext={"kid": kid, "purpose": purpose},
        )
        return base64.b64encode(response["CiphertextBlob"]).decode()

    def decrypt(self, kid: str, purpose: str, ciphertext: str) -> str:
        response = self.client.decrypt(
            CiphertextBlob=base64.b64decode(ciphertext),
            EncryptionContext={"kid": kid, "purpose": purpose},
            KeyId=self.key_id,
        )
        return bytes(response["Plaintext"]).decode()


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def load_delivery_key(pem: str) -> str:
    """Validate an X25519 public key (PEM) and return it normalised; refuse anything else."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PublicKey

    try:
        key = serialization.load_pem_public_key(pem.encode())
    except (ValueError, TypeError):
        raise ValidationError("delivery key must be a PEM public key") from None
    if not isinstance(key, X25519PublicKey):
        raise ValidationError("delivery key must be an X25519 public key")
    from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

    try:  # a point of small order gives an all-zero shared secret: seal could never use it
        X25519PrivateKey.generate().exchange(key)
    except ValueError:
        raise ValidationError(
            "delivery key must be an X25519 public key of full order (this one is a low-order point)"
        ) from None
    return key.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    ).decode()


def _derive(shared: bytes, epk: bytes, recipient: bytes, aad: bytes) -> bytes:
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.kdf.hkdf import HKDF

    return HKDF(
        algorithm=hashes.SHA256(), length=32, salt=epk + recipient, info=b"keysentry-seal-v1|" + aad
    ).derive(shared)


def seal(recipient_pem: str, payload: dict[str, str], aad: str) -> dict[str, str]:
    """Encrypt ``payload`` to the X25519 public key; ``aad`` (the key id) is authenticated."""
    import os

    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

    recipient = serialization.load_pem_public_key(recipient_pem.encode())
    assert isinstance(recipient, X25519PublicKey)
    ephemeral = X25519PrivateKey.generate()
    raw = serialization.Encoding.Raw, serialization.PublicFormat.Raw
    epk = ephemeral.public_key().public_bytes(*raw)
    key = _derive(ephemeral.exchange(recipient), epk, recipient.public_bytes(*raw), aad.encode())
    nonce = os.urandom(12)
    ciphertext = AESGCM(key).encrypt(nonce, json.dumps(payload, sort_keys=True).encode(), aad.encode())
    return {
        "alg": SEAL_ALG,
        "epk": _b64(epk),
        "nonce": _b64(nonce),
        "ciphertext": _b64(ciphertext),
        "aad": aad,
    }


def open_sealed(private_key: Any, sealed: dict[str, str]) -> dict[str, str]:
    """The consumer's side: open a sealed blob with the X25519 private key."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

    if sealed.get("alg") != SEAL_ALG:
        raise ValidationError("unknown sealing algorithm")
    epk = base64.b64decode(sealed["epk"])
    from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PublicKey

    shared = private_key.exchange(X25519PublicKey.from_public_bytes(epk))
    recipient = private_key.public_key().public_bytes(
        serialization.Encoding.Raw, serialization.PublicFormat.Raw
    )
    aad = sealed["aad"].encode()
    key = _derive(shared, epk, recipient, aad)
    plaintext = AESGCM(key).decrypt(
        base64.b64decode(sealed["nonce"]), base64.b64decode(sealed["ciphertext"]), aad
    )
    doc: dict[str, str] = json.loads(plaintext)
    return doc
