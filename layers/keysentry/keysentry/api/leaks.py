"""GitHub secret scanning partner endpoint: suspend live keys found in public code.

GitHub signs the raw body with ECDSA P-256 / SHA-256; its public keys (the document served at
GitHub's ``/meta/public_keys/secret_scanning``) are read from the SSM parameter named by
``GITHUB_SCANNING_KEYS_PARAMETER`` and cached. A matching live key is suspended, not revoked: a
report can then never be used to destroy a key, and the owner decides. The response is the
false-positive feedback GitHub accepts: one ``{token_hash, token_type, label}`` per token.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import json
import os
from typing import Any

from aws_lambda_powertools.event_handler.api_gateway import Response, Router
from keysentry import keyformat
from keysentry.api import context
from keysentry.errors import KeyNotFoundError, MalformedKeyError, TransitionError

router = Router()
ACTOR = "github-secret-scanning"
MAX_TOKENS = 100
KEYS_MAX_AGE_S = 3600


def github_public_keys() -> dict[str, str]:
    """key_identifier -> PEM, from SSM (Powertools parameters, cached)."""
    name = os.environ.get("GITHUB_SCANNING_KEYS_PARAMETER", "")
    if not name:
        return {}
    from aws_lambda_powertools.utilities import parameters
    from keysentry import aws

    provider = parameters.SSMProvider(boto3_client=aws.client("ssm"))
    doc = provider.get(name, transform="json", max_age=KEYS_MAX_AGE_S)
    keys = doc.get("public_keys", []) if isinstance(doc, dict) else []
    return {str(k["key_identifier"]): str(k["key"]) for k in keys if "key_identifier" in k and "key" in k}


def signature_is_valid(body: bytes, key_id: str | None, signature_b64: str | None) -> bool:
    if not key_id or not signature_b64:
        return False
    pem = github_public_keys().get(key_id)
    if pem is None:
        return False
    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    try:
        public_key = serialization.load_pem_public_key(pem.encode())
        if not isinstance(public_key, ec.EllipticCurvePublicKey):
            return False
        public_key.verify(base64.b64decode(signature_b64, validate=True), body, ec.ECDSA(hashes.SHA256()))
    except (InvalidSignature, ValueError):
        return False
    return True


def _label(token: str, url: str) -> str:
    """true_positive for a real keysentry key (suspending it while live); false_positive otherwise."""
    try:
        parsed = keyformat.parse(token)
    except MalformedKeyError:
        return "false_positive"
    svc = context.service()
    try:
        record = svc.get(parsed.kid)
    except KeyNotFoundError:
        return "false_positive"
    peppers = svc.peppers.for_version(record.pepper_version)
    if not peppers.verify(parsed.token, record.digest, record.pepper_version):
        return "false_positive"
    # Even a key that is suspended or has ended may have successors its holder minted: they are
    # leaked with it. What has nothing left to change answers TransitionError.
    with contextlib.suppress(TransitionError):
        svc.report_leak(record.kid, actor=ACTOR, reason=f"found in public: {url}"[:512])
    return "true_positive"


@router.post(
    "/leaks/github", summary="GitHub secret scanning partner endpoint (ECDSA-signed)", tags=["leaks"]
)
def github_leaks() -> Response[Any]:
    event = router.current_event
    body = (event.decoded_body or "").encode()
    key_id = event.get_header_value("Github-Public-Key-Identifier", case_sensitive=False)
    signature = event.get_header_value("Github-Public-Key-Signature", case_sensitive=False)
    if not signature_is_valid(body, key_id, signature):
        return Response(401, "application/json", json.dumps({"message": "invalid or missing signature"}))
    try:
        reports = json.loads(body)
    except ValueError:
        reports = None
    if (
        not isinstance(reports, list)
        or len(reports) > MAX_TOKENS
        or not all(isinstance(r, dict) for r in reports)
    ):
        return Response(
            400,
            "application/json",
            json.dumps({"message": f"expected a JSON array of at most {MAX_TOKENS} matches"}),
        )
    feedback = []
    for report in reports:
        token, url = report.get("token"), str(report.get("url", ""))
        if not isinstance(token, str):
            continue
        feedback.append(
            {
                "token_hash": hashlib.sha256(token.encode()).hexdigest(),
                "token_type": str(report.get("type", "")),
                "label": _label(token, url),
            }
        )
    return Response(200, "application/json", json.dumps(feedback))
