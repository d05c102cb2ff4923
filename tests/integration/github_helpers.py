"""GitHub's side of secret scanning, for tests: a key pair, its published document, signed reports."""

from __future__ import annotations

import base64
import hashlib
import json
from typing import Any

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

from tests.integration.api_helpers import call

URL = "https://github.com/o/r/blob/x/.env"


def new_signer() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def public_pem(private: ec.EllipticCurvePrivateKey) -> str:
    return (
        private.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )


def keys_document(private: ec.EllipticCurvePrivateKey, key_id: str = "test-key-1") -> dict[str, Any]:
    """What GitHub serves at /meta/public_keys/secret_scanning, for one key."""
    return {"public_keys": [{"key_identifier": key_id, "key": public_pem(private), "is_current": True}]}


def match(token: str, *, url: str = URL, source: str = "content") -> dict[str, str]:
    return {"token": token, "type": "keysentry_api_key", "url": url, "source": source}


def signed(private: ec.EllipticCurvePrivateKey, body: str, key_id: str = "test-key-1") -> dict[str, str]:
    signature = base64.b64encode(private.sign(body.encode(), ec.ECDSA(hashes.SHA256()))).decode()
    return {"Github-Public-Key-Identifier": key_id, "Github-Public-Key-Signature": signature}


def deliver(
    lambda_context: Any, private: ec.EllipticCurvePrivateKey, body: str, *, key_id: str = "test-key-1"
) -> tuple[int, Any]:
    """POST /leaks/github with ``body`` exactly as given, signed by ``private``."""
    return call("api_leaks_github", lambda_context, raw_body=body, headers=signed(private, body, key_id))


def report(
    lambda_context: Any, private: ec.EllipticCurvePrivateKey, matches: list[dict[str, str]]
) -> tuple[int, Any]:
    return deliver(lambda_context, private, json.dumps(matches))


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def publish(stack: Any, document: dict[str, Any] | str) -> None:
    """Put a keys document where the template keeps GitHub's, and drop the endpoint's cached copy."""
    from keysentry import aws
    from keysentry.api import leaks

    value = document if isinstance(document, str) else json.dumps(document)
    aws.client("ssm").put_parameter(Name=stack.refs["GitHubScanningKeys"], Value=value, Overwrite=True)
    leaks.keys_provider.cache_clear()
