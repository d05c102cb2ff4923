"""Signed requests: each algorithm's whole per-request verification, next to its bare primitive."""

from __future__ import annotations

import hmac
from collections.abc import Callable
from typing import Any

from bench.common import per_call, row

TOKEN = "ks_test_EXAMPLEKEY00000000000000000000000000000000001gKwCs"
SECRET = "s" * 43
BODY = b'{"symbol":"BTC","qty":"1"}'
QUERY = {"account": ["main"], "tag": ["b", "a b"]}
MESSAGE = b"x" * 200


def _pem(key: Any) -> str:
    from cryptography.hazmat.primitives import serialization

    public = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return str(public.decode())


def _keys() -> list[tuple[str, Any, dict[str, Any], Callable[[], None]]]:
    """(mode, verifier, what the client signs with, the bare verification of MESSAGE) per algorithm."""
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ed25519, padding, rsa
    from keysentry.signing import Verifier

    ed = ed25519.Ed25519PrivateKey.generate()
    rs = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pss = padding.PSS(mgf=padding.MGF1(hashes.SHA256()), salt_length=32)
    mac = hmac.digest(SECRET.encode(), MESSAGE, "sha256")
    ed_signature, rs_signature = ed.sign(MESSAGE), rs.sign(MESSAGE, pss, hashes.SHA256())
    ed_public, rs_public = ed.public_key(), rs.public_key()

    def bare_hmac() -> None:
        hmac.compare_digest(hmac.digest(SECRET.encode(), MESSAGE, "sha256"), mac)

    def bare_ed25519() -> None:
        ed_public.verify(ed_signature, MESSAGE)

    def bare_rsa() -> None:
        rs_public.verify(rs_signature, MESSAGE, pss, hashes.SHA256())

    return [
        ("hmac", Verifier("hmac", secret=SECRET), {"secret": SECRET}, bare_hmac),
        ("ed25519", Verifier("ed25519", public_key_pem=_pem(ed)), {"private_key": ed}, bare_ed25519),
        ("rsa", Verifier("rsa", public_key_pem=_pem(rs)), {"private_key": rs}, bare_rsa),
    ]


def _verify_request(verifier: Any, signer: dict[str, Any]) -> Callable[[], None]:
    """Per request: the signature headers, the canonical query, the Content-Type, the check."""
    from keysentry.client import sign
    from keysentry.signing import canonical_query, read_content_type, read_signed

    headers = sign(
        "POST",
        "/v1/orders",
        QUERY,
        BODY,
        key=TOKEN,
        timestamp_ms=1,
        nonce="n" * 20,
        content_type="application/json",
        **signer,
    )
    lowered = {k.lower(): [v] for k, v in headers.items()}

    def verify() -> None:
        verifier.verify(
            read_signed(lowered),
            "POST",
            "/v1/orders",
            canonical_query(QUERY),
            read_content_type(lowered["content-type"]),
        )

    return verify


def signing_figures(rows: list[dict[str, Any]]) -> None:
    for mode, verifier, signer, bare in _keys():
        verify = _verify_request(verifier, signer)
        verify()
        batch = 2000 if mode == "hmac" else 300
        rows.append(
            row(
                f"signed request verify, {mode}",
                per_call(verify, batch=batch),
                per_call(bare, batch=batch),
                None,
                f"floor: bare {mode} verify",
            )
        )
