"""GitHub's secret scanning public keys: fetched from GitHub, checked, and kept in SSM.

The leak endpoint verifies every report against the document in the SSM parameter; this module
keeps that document current. A document is stored only when it is whole: a JSON object whose
``public_keys`` is a non-empty list of ``{key_identifier, key, is_current}``, each key a PEM that
loads as an ECDSA P-256 public key. On any failure (network, timeout, HTTP error, bad shape) the
parameter keeps what it held: a stale key set still verifies reports, an empty one refuses all.
"""

from __future__ import annotations

import http.client
import ipaddress
import json
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final

from keysentry import aws
from keysentry.settings import GITHUB_SCANNING_KEYS_URL

if TYPE_CHECKING:
    from mypy_boto3_ssm import SSMClient

DEFAULT_URL: Final = GITHUB_SCANNING_KEYS_URL.default  # written once, in settings
TIMEOUT_S: Final = 5.0
MAX_BYTES: Final = 256 * 1024  # GitHub's document is a few kilobytes
MAX_KEYS: Final = 50
MAX_IDENTIFIER: Final = 256
MAX_STORED: Final = 4096  # a standard SSM parameter's limit


class KeysDocumentError(ValueError):
    """What was fetched is not a usable keys document (the message says why; it quotes nothing)."""


@dataclass(frozen=True)
class Outcome:
    stored: bool
    keys: int = 0
    current: int = 0
    reason: str = ""

    def as_dict(self) -> dict[str, Any]:
        return {"stored": self.stored, "keys": self.keys, "current": self.current, "reason": self.reason}


def _check_url(url: str, what: str = "the keys URL") -> None:
    """https, or http to a loopback address only (a local stand-in); nothing else urllib would
    open (file:, ftp:, data:)."""
    parts = urllib.parse.urlsplit(url)
    if parts.scheme == "https" and parts.hostname:
        return
    if parts.scheme == "http" and parts.hostname:
        try:
            if ipaddress.ip_address(parts.hostname).is_loopback:
                return
        except ValueError:
            if parts.hostname == "localhost":
                return
    raise KeysDocumentError(f"{what} must be https (or http to a loopback address)")


class _CheckedRedirects(urllib.request.HTTPRedirectHandler):
    """Follow a redirect only to a URL the first one could have been (never down to plain http)."""

    def redirect_request(
        self, req: urllib.request.Request, fp: Any, code: int, msg: str, headers: Any, newurl: str
    ) -> urllib.request.Request | None:
        _check_url(newurl, "a redirect")
        return super().redirect_request(req, fp, code, msg, headers, newurl)


def fetch(url: str, *, timeout: float = TIMEOUT_S) -> bytes:
    """GET the keys document (at most MAX_BYTES). Raises OSError (URLError, HTTPError, timeout)."""
    _check_url(url)
    request = urllib.request.Request(  # noqa: S310 - the scheme is checked above
        url,
        headers={
            "Accept": "application/vnd.github+json",
            "X-GitHub-Api-Version": "2022-11-28",
            "User-Agent": "keysentry-scanning-keys",
        },
    )
    opener = urllib.request.build_opener(_CheckedRedirects)
    with opener.open(request, timeout=timeout) as response:
        body: bytes = response.read(MAX_BYTES + 1)
    if len(body) > MAX_BYTES:
        raise KeysDocumentError(f"the keys document is larger than {MAX_BYTES} bytes")
    return body


def _p256_public_key(pem: str) -> None:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    try:
        key = serialization.load_pem_public_key(pem.encode())
    except (ValueError, TypeError, UnicodeError):
        raise KeysDocumentError("a key is not a PEM public key") from None
    if not isinstance(key, ec.EllipticCurvePublicKey) or not isinstance(key.curve, ec.SECP256R1):
        raise KeysDocumentError("a key is not an ECDSA P-256 public key")


def parse(raw: bytes) -> dict[str, Any]:
    """The document to store (only the fields the endpoint reads), or KeysDocumentError."""
    try:
        doc = json.loads(raw)
    except (ValueError, RecursionError):
        raise KeysDocumentError("the keys document is not JSON") from None
    if not isinstance(doc, dict) or not isinstance(doc.get("public_keys"), list):
        raise KeysDocumentError("the keys document has no public_keys list")
    entries = doc["public_keys"]
    if not 0 < len(entries) <= MAX_KEYS:
        raise KeysDocumentError(f"the keys document must list 1 to {MAX_KEYS} keys")
    keys: list[dict[str, Any]] = []
    for entry in entries:
        if not isinstance(entry, dict):
            raise KeysDocumentError("a public_keys entry is not an object")
        key_id, pem, current = entry.get("key_identifier"), entry.get("key"), entry.get("is_current")
        if not isinstance(key_id, str) or not 0 < len(key_id) <= MAX_IDENTIFIER:
            raise KeysDocumentError("a key_identifier is missing or not a short string")
        if not isinstance(pem, str):
            raise KeysDocumentError("a key is missing or not a string")
        if not isinstance(current, bool):
            raise KeysDocumentError("an is_current is missing or not a boolean")
        _p256_public_key(pem)
        keys.append({"key_identifier": key_id, "key": pem, "is_current": current})
    if len({k["key_identifier"] for k in keys}) != len(keys):
        raise KeysDocumentError("two keys share a key_identifier")
    stored = {"public_keys": keys}
    if len(json.dumps(stored)) > MAX_STORED:
        raise KeysDocumentError(
            f"the keys document is larger than an SSM parameter's {MAX_STORED} characters"
        )
    return stored


def refresh(*, url: str, parameter: str, ssm: SSMClient | None = None, timeout: float = TIMEOUT_S) -> Outcome:
    """Fetch, check and store GitHub's keys. Network and document failures are an Outcome that
    stored nothing; a failure to write the parameter raises (it is keysentry's own)."""
    try:
        doc = parse(fetch(url, timeout=timeout))
    except urllib.error.HTTPError as error:
        return Outcome(stored=False, reason=f"GitHub answered HTTP {error.code}")
    except KeysDocumentError as error:
        return Outcome(stored=False, reason=str(error))
    except (OSError, ValueError, http.client.HTTPException) as error:  # URLError, timeouts, refused
        return Outcome(stored=False, reason=f"could not fetch the keys document: {type(error).__name__}")
    (ssm or aws.client("ssm")).put_parameter(Name=parameter, Value=json.dumps(doc), Overwrite=True)
    keys = doc["public_keys"]
    return Outcome(stored=True, keys=len(keys), current=sum(1 for k in keys if k["is_current"]))


# ---------------------------------------------------------------- at deploy (a CloudFormation custom resource)


def is_deploy_request(event: Any) -> bool:
    return isinstance(event, dict) and "RequestType" in event and "ResponseURL" in event


def answer_deploy(event: dict[str, Any], outcome: Outcome, *, timeout: float = TIMEOUT_S) -> None:
    """Tell CloudFormation the custom resource is done. Always SUCCESS: GitHub being unreachable
    must not fail a deployment (the schedule catches up); the reason says what happened."""
    url = str(event["ResponseURL"])
    _check_url(url, "the CloudFormation response URL")
    body = {
        "Status": "SUCCESS",
        "Reason": (outcome.reason or f"stored {outcome.keys} keys")[:256],
        "PhysicalResourceId": event.get("PhysicalResourceId") or f"{event.get('LogicalResourceId', 'keys')}",
        "StackId": event.get("StackId", ""),
        "RequestId": event.get("RequestId", ""),
        "LogicalResourceId": event.get("LogicalResourceId", ""),
        "NoEcho": False,
        "Data": {"Stored": str(outcome.stored).lower(), "Keys": str(outcome.keys)},
    }
    request = urllib.request.Request(  # noqa: S310 - the scheme is checked above
        url, data=json.dumps(body).encode(), method="PUT", headers={"Content-Type": ""}
    )
    with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310
        response.read()
