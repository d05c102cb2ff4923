"""The examples' backend: your API's own code, behind keysentry's authorizer.

It imports nothing of keysentry (this function has no keysentry layer): API Gateway has already
decided, and hands the backend the authorizer's context (REST: ``requestContext.authorizer``; HTTP
API payload 2.0: ``requestContext.authorizer.lambda``). The key itself never reaches the backend's
answer. The backend does the two things the authorizer cannot:

- a signed request's body: API Gateway gives the authorizer no body, so the authorizer checked the
  signature over the ``X-Ks-Content-Sha256`` header, and the backend checks the body it received
  has that SHA-256 (400 otherwise);
- the rotation notice: a caller whose key is rotating gets ``Keysentry-Rotate: key=<kid>;
  successor=<kid>; in=<seconds>``, from which keysentry's client collects the successor.

The same as ``keysentry.signing.body_matches`` and ``keysentry.client.rotation_headers``, in a few
lines of the standard library.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import re
from typing import Any

CALLER_FIELDS = ("key_id", "owner_id", "scopes", "plan")
DIGEST_HEADER = "x-ks-content-sha256"
_KID = re.compile(r"\A[0-9A-Za-z]{12}\Z")
_SECONDS = re.compile(r"\A[0-9]{1,10}\Z")


def lambda_handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    request = event.get("requestContext") or {}
    authorizer = request.get("authorizer") or {}
    authorizer = authorizer.get("lambda", authorizer)  # HTTP APIs nest the context under "lambda"
    caller = {name: authorizer[name] for name in CALLER_FIELDS if name in authorizer}
    route = event.get("routeKey") or f"{event.get('httpMethod')} {event.get('resource')}"
    headers = {"Content-Type": "application/json", **rotation_notice(authorizer)}
    if str(authorizer.get("signing", "bearer")) != "bearer" and not body_matches(event):
        message = "the body does not match X-Ks-Content-Sha256"
        return {"statusCode": 400, "headers": headers, "body": json.dumps({"message": message})}
    return {"statusCode": 200, "headers": headers, "body": json.dumps({"route": route, "caller": caller})}


def rotation_notice(context: dict[str, Any]) -> dict[str, str]:
    """``Keysentry-Rotate`` for a caller whose key is rotating (REST passes every value as a string)."""
    if str(context.get("status", "")) != "rotating":
        return {}
    key, successor = str(context.get("key_id", "")), str(context.get("successor", ""))
    seconds = str(context.get("rotate_in_seconds", ""))
    if not (_KID.match(key) and _KID.match(successor) and _SECONDS.match(seconds)) or key == successor:
        return {}
    return {"Keysentry-Rotate": f"key={key}; successor={successor}; in={int(seconds)}"}


def body_matches(event: dict[str, Any]) -> bool:
    """Whether the body received has the SHA-256 the signed ``X-Ks-Content-Sha256`` header says."""
    claimed = [value for name, value in (event.get("headers") or {}).items() if name.lower() == DIGEST_HEADER]
    if len(claimed) != 1:
        return False
    body = event.get("body") or ""
    try:
        raw = base64.b64decode(body, validate=True) if event.get("isBase64Encoded") else body.encode()
    except (binascii.Error, ValueError):
        return False
    return hmac.compare_digest(hashlib.sha256(raw).hexdigest(), claimed[0].strip().lower())
