"""GitHub secret scanning partner endpoint: suspend live keys found in public code.

GitHub signs the raw body with ECDSA P-256 / SHA-256; its public keys (the document served at
GitHub's ``/meta/public_keys/secret_scanning``) are read from the SSM parameter named by
``GITHUB_SCANNING_KEYS_PARAMETER`` and cached. A matching live key is suspended, not revoked: a
report can then never be used to destroy a key, and the owner decides. The response is the
false-positive feedback GitHub accepts: one ``{token_hash, token_type, label}`` per token.

A signed report carries no timestamp, so anyone who captured one could deliver it again. Each
match that names a real key is remembered (in the nonce table, by the token's SHA-256 and a hash
of the match's type, url and source, never the token) for as long as the key can be live: a
replay answers as the first delivery did and changes nothing, so a key its owner resumed stays
resumed. A new sighting of the same token (another url or source) acts again.

A remembered report is ``pending`` until its action (the walk of the key's chain) has completed,
then ``done``. An invocation killed midway (a Lambda timeout) leaves it ``pending``: GitHub's
redelivery, once the report has been pending longer than the API function may run, acts again
(the walk is idempotent: a key already suspended as leaked is not changed again). Only a ``done``
report is a replay.
"""

from __future__ import annotations

import base64
import hashlib
import json
from functools import cache
from typing import Any

from aws_lambda_powertools import Logger
from aws_lambda_powertools.event_handler.api_gateway import Response, Router
from keysentry.api import context
from keysentry.errors import ConfigurationError, TransitionError
from keysentry.model import DAY, LONGEST_LIFETIME_DAYS, MAX_REASON, KeyRecord
from keysentry.nonces import NonceTable
from keysentry.settings import ApiSettings

router = Router()
logger = Logger(child=True)
ACTOR = "github-secret-scanning"
MAX_TOKENS = 100
KEYS_MAX_AGE_S = 300  # a refreshed keys document is used within five minutes
MATCH_FIELDS = ("token", "type", "url", "source")
SEEN_PREFIX = "github-report#"
SEEN_WITHOUT_EXPIRY_S = (
    LONGEST_LIFETIME_DAYS * DAY
)  # a key with no expiry: the longest lifetime a key may be given
# A pending report older than this was left by an invocation that cannot still be running: the
# ApiFunction's Timeout in template.yaml (15 s), plus a margin. Keep it at least that Timeout.
PENDING_AFTER_S = 20


@cache
def keys_provider() -> Any:
    """One Powertools SSM provider per process, so its cache outlives a request."""
    from aws_lambda_powertools.utilities import parameters
    from keysentry import aws

    return parameters.SSMProvider(boto3_client=aws.client("ssm"))


def github_public_keys() -> dict[str, str]:
    """key_identifier -> PEM, from SSM (Powertools parameters, cached)."""
    name = ApiSettings.load().github_scanning_keys_parameter
    if not name:
        return {}
    from aws_lambda_powertools.utilities.parameters.exceptions import TransformParameterError

    try:
        doc = keys_provider().get(name, transform="json", max_age=KEYS_MAX_AGE_S)
    except TransformParameterError:
        raise ConfigurationError(f"SSM parameter {name} does not hold a JSON document") from None
    keys = doc.get("public_keys") if isinstance(doc, dict) else None
    return {
        str(k["key_identifier"]): str(k["key"])
        for k in (keys if isinstance(keys, list) else [])
        if isinstance(k, dict) and "key_identifier" in k and "key" in k
    }


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


def _seen_key(match: dict[str, str]) -> str:
    """The report's identity: the token's SHA-256 and a hash of what GitHub says about the sighting."""
    sighting = json.dumps([match.get("type", ""), match.get("url", ""), match.get("source", "")])
    token_hash = hashlib.sha256(match["token"].encode()).hexdigest()
    return f"{SEEN_PREFIX}{token_hash}#{hashlib.sha256(sighting.encode()).hexdigest()}"


def _first_sighting(nonces: NonceTable, seen: str, record: KeyRecord, now: int) -> bool:
    """Remember a report as pending until its key can no longer be live: False if it is already
    remembered as done (a replay), or as pending by a delivery that may still be running. A report
    pending for longer than any invocation runs was abandoned: it acts again."""
    until = (record.expires_at if record.expires_at is not None else now + SEEN_WITHOUT_EXPIRY_S) + DAY
    return nonces.begin(seen, max(until, now + DAY), now=now, abandoned_before=now - PENDING_AFTER_S)


def _label(match: dict[str, str]) -> str:
    """true_positive for a real keysentry key (suspending it while live, once per report);
    false_positive otherwise."""
    svc = context.service()
    record = svc.identify(match["token"]).record
    if record is None:  # not a keysentry key, or not one that exists
        return "false_positive"
    seen = _seen_key(match)
    nonces = NonceTable(svc.settings.nonce_table, svc.store.client)
    if not _first_sighting(nonces, seen, record, svc.clock()):
        logger.warning("replayed leak report ignored", key_id=record.kid)
        return "true_positive"
    # Even a key that is suspended or has ended may have successors its holder minted: they are
    # leaked with it. What has nothing left to change answers TransitionError.
    try:
        svc.report_leak(
            record.kid, actor=ACTOR, reason=f"found in public: {match.get('url', '')}"[:MAX_REASON]
        )
    except TransitionError:
        pass
    except Exception:
        nonces.forget(seen)  # the next delivery of this report acts
        raise
    nonces.finish(seen)
    return "true_positive"


def _matches(body: bytes) -> list[dict[str, str]] | None:
    """GitHub's matches, or None unless the body is a JSON array of at most MAX_TOKENS objects, each
    with a string token and no non-string type, url or source."""
    try:
        reports = json.loads(body)
    except (ValueError, RecursionError):
        return None
    if not isinstance(reports, list) or len(reports) > MAX_TOKENS:
        return None
    matches = []
    for report in reports:
        if not isinstance(report, dict) or not isinstance(report.get("token"), str):
            return None
        if any(not isinstance(report.get(name, ""), str) for name in MATCH_FIELDS):
            return None
        matches.append({name: report[name] for name in MATCH_FIELDS if name in report})
    return matches


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
    matches = _matches(body)
    if matches is None:
        message = (
            f"expected a JSON array of at most {MAX_TOKENS} matches, each an object with a string "
            "token and string type, url and source"
        )
        return Response(400, "application/json", json.dumps({"message": message}))
    feedback = [
        {
            "token_hash": hashlib.sha256(match["token"].encode()).hexdigest(),
            "token_type": match.get("type", ""),
            "label": _label(match),
        }
        for match in matches
    ]
    return Response(200, "application/json", json.dumps(feedback))
