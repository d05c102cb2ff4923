"""Sign a request the way keysentry's authorizer verifies it (scheme KS2), with any HTTP client.

``sign`` returns the headers to send (Content-Type among them, when given: it is signed), and
``query_string`` gives the query to send, in the one spelling an HTTP API accepts (a REST API
accepts any spelling that decodes to the same parameters). ``open_successor`` opens a successor
sealed to the consumer's X25519 delivery key. The auth classes of :mod:`keysentry.client.requests`
and :mod:`keysentry.client.httpx` do all of this for each request.
"""

from __future__ import annotations

import base64
import secrets
import time
from collections.abc import Iterable, Mapping
from typing import Any

from keysentry.signing import (
    ALGORITHMS,
    RSA_SALT_LENGTH,
    body_sha256,
    canonical_query,
    hmac_signature,
    signed_header_names,
    string_to_sign,
)


def query_string(query: str | Mapping[str, Any] | Iterable[tuple[str, Any]] | None) -> str:
    """The query to send (without ``?``): the canonical form that is signed."""
    return canonical_query(query)


def new_nonce() -> str:
    return secrets.token_urlsafe(18)  # 24 characters of [A-Za-z0-9_-]


def _load_private(private_key: Any) -> Any:
    if isinstance(private_key, bytes | str):
        from cryptography.hazmat.primitives import serialization

        data = private_key.encode() if isinstance(private_key, str) else private_key
        return serialization.load_pem_private_key(data, password=None)
    return private_key


def load_signing(signing: Any) -> tuple[str | None, Any]:
    """(hmac secret, private key) from what a consumer signs with: None (a bearer key), the hmac
    signing secret (a string), or an Ed25519 or RSA private key (a ``cryptography`` object, or
    PEM bytes or text). Refuses anything else, naming what it got but never its value."""
    if signing is None:
        return None, None
    if isinstance(signing, str) and not signing.lstrip().startswith("-----BEGIN"):
        if not signing.strip():
            raise ValueError("signing: the hmac signing secret is empty")
        return signing, None
    try:
        _, private_key = _mode(None, signing)
    except (ValueError, TypeError):
        raise ValueError(
            "signing must be the hmac signing secret, or an Ed25519 or RSA private key "
            f"(object or unencrypted PEM); got an unusable {type(signing).__name__}"
        ) from None
    return None, private_key


def open_successor(sealed: Mapping[str, str], *, private_key: Any) -> dict[str, str]:
    """Open a sealed successor with the consumer's X25519 private key (object or PEM).

    Raises ``cryptography.exceptions.InvalidTag`` when the blob was not sealed to this key or was
    altered; a ValidationError for an unknown sealing algorithm.
    """
    from keysentry.envelope import open_sealed

    return open_sealed(_load_private(private_key), dict(sealed))


def sign(
    method: str,
    path: str,
    query: str | Mapping[str, Any] | Iterable[tuple[str, Any]] | None = None,
    body: bytes | str | None = None,
    *,
    key: str,
    secret: str | None = None,
    private_key: Any = None,
    content_type: str | None = None,
    timestamp_ms: int | None = None,
    nonce: str | None = None,
    headers: Mapping[str, str] | None = None,
) -> dict[str, str]:
    """Headers for one signed request: the key, algorithm, timestamp, nonce, body digest, signature,
    and the Content-Type when there is one (sent exactly as signed; none is signed as empty).

    ``query`` is the parameters in the order they are sent: a raw query string, a mapping (a list
    value is a name's repeated values, in order) or (name, value) pairs. ``headers``: other headers
    the request sends that the signature is to cover (name: value); ``X-Ks-Signed-Headers`` lists
    them (the request must send them exactly as given, each once)."""
    if content_type == "":
        raise ValueError("send no Content-Type rather than an empty one")
    timestamp_ms = int(time.time() * 1000) if timestamp_ms is None else timestamp_ms
    nonce = nonce or new_nonce()
    digest = body_sha256(body)
    mode, private_key = _mode(secret, private_key)
    algorithm = ALGORITHMS[mode]
    listed = sorted((name.lower(), value) for name, value in (headers or {}).items())
    if listed:
        signed_header_names(";".join(name for name, _ in listed))  # SignatureError: not a list to sign
        if any("," in value for _, value in listed):
            raise ValueError("a signed header's value has a comma: HTTP APIs would read it as two")
    message = string_to_sign(
        algorithm,
        timestamp_ms,
        nonce,
        method,
        path,
        canonical_query(query),
        content_type or "",
        digest,
        listed,
    )
    signature = _signature(mode, message, secret, private_key)
    signature_headers = {
        "X-Api-Key": key,
        "X-Ks-Algorithm": algorithm,
        "X-Ks-Timestamp": str(timestamp_ms),
        "X-Ks-Nonce": nonce,
        "X-Ks-Content-Sha256": digest,
        "X-Ks-Signature": signature,
    }
    if listed:
        signature_headers["X-Ks-Signed-Headers"] = ";".join(name for name, _ in listed)
    if content_type is not None:
        signature_headers["Content-Type"] = content_type
    return signature_headers


def _mode(secret: str | None, private_key: Any) -> tuple[str, Any]:
    """The signing mode the credentials given call for, and the private key loaded (if one)."""
    if secret is not None:
        return "hmac", None
    if private_key is None:
        raise ValueError("sign needs the hmac secret or the private key")
    private_key = _load_private(private_key)
    from cryptography.hazmat.primitives.asymmetric import ed25519, rsa

    if isinstance(private_key, ed25519.Ed25519PrivateKey):
        return "ed25519", private_key
    if isinstance(private_key, rsa.RSAPrivateKey):
        return "rsa", private_key
    raise ValueError("private_key must be Ed25519 or RSA")


def _signature(mode: str, message: str, secret: str | None, private_key: Any) -> str:
    if mode == "hmac":
        assert secret is not None
        return hmac_signature(secret, message)
    if mode == "ed25519":
        return base64.b64encode(private_key.sign(message.encode())).decode()
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import padding

    pss = padding.PSS(mgf=padding.MGF1(hashes.SHA256()), salt_length=RSA_SALT_LENGTH)
    return base64.b64encode(private_key.sign(message.encode(), pss, hashes.SHA256())).decode()
