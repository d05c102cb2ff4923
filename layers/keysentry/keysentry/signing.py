"""Signed requests, scheme KS2: the key identifies the caller, a second secret proves the request.

String to sign (UTF-8, lines joined by ``\\n``, no trailing newline)::

    KS2-HMAC-SHA256 | KS2-ED25519 | KS2-RSA-PSS-SHA256
    <timestamp: Unix time in milliseconds, decimal>
    <nonce: 16-64 characters of [A-Za-z0-9_-]>
    <HTTP method, upper case>
    <path, as the API routes it, without a stage prefix>
    <canonical query string>
    <value of the Content-Type header, exactly as sent; empty when there is none>
    <value of the X-Ks-Content-Sha256 header: lower-case hex SHA-256 of the body>

With ``X-Ks-Signed-Headers`` (lower-case header names, sorted, ``;``-separated, as SigV4 lists
its signed headers), two more kinds of line follow: the list itself, then ``name:value`` for each
header named, in the list's order, its one value with surrounding blanks removed. A header named
must be sent exactly once. Without it, the string to sign is the eight lines above, as before: every
signature made before the header existed still verifies, and removing or adding the header breaks
the signature it was made with. Headers not named are not signed: a backend that reads a header for
a decision (``X-Account``) trusts it only when the list names it.

Canonical query: every (name, value) pair, decoded as a form decoder does (``+`` is a space), each
re-encoded with RFC 3986's unreserved set kept (``A-Z a-z 0-9 - . _ ~``, space as ``%20``, other
bytes of the UTF-8 as ``%XX`` in upper case), written ``name=value`` (``flag`` becomes ``flag=``),
sorted by encoded name with a stable sort (a name's repeated values keep the order they were sent
in), joined with ``&``; empty when there is no query. An HTTP API hands the authorizer the raw
query string, which its backend sees too: there, the query must be sent in exactly this canonical
form, or the request is denied (``noncanonical_query``), so that no two spellings share a signature.

Signature (``X-Ks-Signature``, standard base64): HMAC-SHA256 with the signing secret's UTF-8
bytes; Ed25519; or RSASSA-PSS with SHA-256, MGF1-SHA-256 and a 32-byte salt.

KS1 (the first version, never deployed) signed neither Content-Type nor the order of a name's
repeated values; its algorithm names are refused (``unknown_algorithm``).

``cryptography`` is imported only for the asymmetric modes, when such a key is seen.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from operator import itemgetter
from typing import Any, Final
from urllib.parse import parse_qsl, quote

from keysentry.errors import ValidationError
from keysentry.model.record import SIGNING_MODES

MODES: Final = SIGNING_MODES
ALGORITHMS: Final = {"hmac": "KS2-HMAC-SHA256", "ed25519": "KS2-ED25519", "rsa": "KS2-RSA-PSS-SHA256"}
HEADER_ALGORITHM: Final = "x-ks-algorithm"
HEADER_TIMESTAMP: Final = "x-ks-timestamp"
HEADER_NONCE: Final = "x-ks-nonce"
HEADER_SIGNATURE: Final = "x-ks-signature"
HEADER_BODY: Final = "x-ks-content-sha256"
HEADER_CONTENT_TYPE: Final = "content-type"
SIGNED_HEADERS: Final = (HEADER_ALGORITHM, HEADER_TIMESTAMP, HEADER_NONCE, HEADER_SIGNATURE, HEADER_BODY)
HEADER_SIGNED_HEADERS: Final = "x-ks-signed-headers"  # optional: more headers the signature covers
MAX_SIGNED_HEADERS: Final = 16
# Headers a list may not name: the signature's own, the key, and Content-Type (signed already).
UNLISTABLE: Final = frozenset({*SIGNED_HEADERS, HEADER_SIGNED_HEADERS, "x-api-key", HEADER_CONTENT_TYPE})
_HEADER_NAME_RE: Final = re.compile(r"\A[a-z0-9][a-z0-9-]{0,63}\Z")
EMPTY_BODY_SHA256: Final = hashlib.sha256(b"").hexdigest()
MAX_WINDOW_MS: Final = 60_000
RSA_SALT_LENGTH: Final = 32
MIN_RSA_BITS: Final = 2048
RSA_EXPONENT: Final = 65537
_NONCE_RE: Final = re.compile(r"\A[A-Za-z0-9_-]{16,64}\Z")
_HEX64_RE: Final = re.compile(r"\A[0-9a-f]{64}\Z")
_TS_RE: Final = re.compile(r"\A[0-9]{1,15}\Z")
_UNRESERVED_RE: Final = re.compile(r"[A-Za-z0-9._~-]*")


class SignatureError(Exception):
    """A denial reason for the log: never carries the signature, secret or key."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def body_sha256(body: bytes | str | None) -> str:
    if body is None:
        return EMPTY_BODY_SHA256
    return hashlib.sha256(body.encode() if isinstance(body, str) else body).hexdigest()


def _encode(text: str) -> str:
    if _UNRESERVED_RE.fullmatch(text):  # the common case, and ten times cheaper than quote()
        return text
    return quote(text, safe="-._~")


def canonical_query(query: str | Mapping[str, Any] | Iterable[tuple[str, Any]] | None) -> str:
    """Canonical form of a raw query string, a mapping (values may be lists, kept in order), or
    (name, value) pairs in the order they are sent."""
    if not query:
        return ""
    pairs: Iterable[tuple[Any, Any]]
    if isinstance(query, str):
        pairs = parse_qsl(query.removeprefix("?"), keep_blank_values=True)
    elif isinstance(query, Mapping):
        pairs = [
            (name, v)
            for name, value in query.items()
            for v in (value if isinstance(value, list | tuple) else (value,))
        ]
    else:
        pairs = query
    try:
        encoded = [(_encode(_text(n)), _encode(_text(v))) for n, v in pairs]
    except UnicodeEncodeError:  # a lone surrogate: no UTF-8 spelling, so nothing could have signed it
        raise SignatureError("malformed_query") from None
    encoded.sort(key=itemgetter(0))  # stable: a name's repeated values keep their order
    return "&".join([f"{n}={v}" for n, v in encoded])


def _text(value: Any) -> str:
    return value if isinstance(value, str) else "" if value is None else str(value)


def string_to_sign(
    algorithm: str,
    timestamp_ms: int | str,
    nonce: str,
    method: str,
    path: str,
    query: str,
    content_type: str,
    body_digest: str,
    headers: Sequence[tuple[str, str]] = (),
) -> str:
    """The message; refuses a line break inside a line (it could forge the lines after it).
    ``headers``: the signed headers' (name, value), in the list's order (none: the eight lines)."""
    lines = [algorithm, str(timestamp_ms), nonce, method.upper(), path, query, content_type, body_digest]
    if headers:
        lines.append(";".join(name for name, _ in headers))
        lines.extend(f"{name}:{value.strip()}" for name, value in headers)
    for part in (method, path, query, content_type, *(value for _, value in headers)):
        if "\n" in part or "\r" in part:
            raise SignatureError("malformed_request")
    return "\n".join(lines)


def signed_header_names(text: str) -> tuple[str, ...]:
    """The names an ``X-Ks-Signed-Headers`` value lists: lower case, sorted, each once, at most
    ``MAX_SIGNED_HEADERS``, none of the signature's own headers, the key or Content-Type; one
    spelling only, so that no two lists sign alike."""
    names = tuple(text.strip().split(";"))
    if (
        not 0 < len(names) <= MAX_SIGNED_HEADERS
        or list(names) != sorted(set(names))
        or not all(_HEADER_NAME_RE.match(n) and n not in UNLISTABLE for n in names)
    ):
        raise SignatureError("malformed_signed_headers")
    return names


def hmac_signature(secret: str, message: str) -> str:
    return base64.b64encode(hmac.digest(secret.encode(), message.encode(), "sha256")).decode()


# ---------------------------------------------------------------- registering keys


def load_public_key(pem: str) -> tuple[str, str]:
    """(mode, normalised PEM) of a consumer's public key; refuses malformed and weak keys."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ed25519, rsa

    try:
        key = serialization.load_pem_public_key(pem.encode() if isinstance(pem, str) else pem)
    except (ValueError, TypeError):
        raise ValidationError("public key must be a PEM-encoded Ed25519 or RSA public key") from None
    if isinstance(key, ed25519.Ed25519PublicKey):
        mode = "ed25519"
    elif isinstance(key, rsa.RSAPublicKey):
        if key.key_size < MIN_RSA_BITS:
            raise ValidationError(f"RSA public keys must have at least {MIN_RSA_BITS} bits")
        if key.public_numbers().e != RSA_EXPONENT:
            raise ValidationError(f"RSA public keys must use the public exponent {RSA_EXPONENT}")
        mode = "rsa"
    else:
        raise ValidationError(
            f"public key must be Ed25519 or RSA (>= {MIN_RSA_BITS} bits, e = {RSA_EXPONENT})"
        )
    normalised = key.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    return mode, normalised.decode()


# ---------------------------------------------------------------- verifying


@dataclass(frozen=True)
class Signed:
    """The signature headers of one request, each present exactly once."""

    algorithm: str
    timestamp_ms: int
    nonce: str
    signature: bytes
    body_digest: str


def read_signed(headers: Mapping[str, list[str]]) -> Signed:
    """Extract the signature headers (names lower-cased, all values); refuse missing or repeated ones."""
    values: dict[str, str] = {}
    for name in SIGNED_HEADERS:
        found = set(headers.get(name, []))
        if not found:
            raise SignatureError("missing_signature_header")
        if len(found) > 1:
            raise SignatureError("repeated_signature_header")
        values[name] = found.pop().strip()
    if not _TS_RE.match(values[HEADER_TIMESTAMP]):
        raise SignatureError("malformed_timestamp")
    if not _NONCE_RE.match(values[HEADER_NONCE]):
        raise SignatureError("malformed_nonce")
    if not _HEX64_RE.match(values[HEADER_BODY]):
        raise SignatureError("malformed_body_digest")
    try:
        signature = base64.b64decode(values[HEADER_SIGNATURE], validate=True)
    except ValueError:
        raise SignatureError("malformed_signature") from None
    return Signed(
        values[HEADER_ALGORITHM],
        int(values[HEADER_TIMESTAMP]),
        values[HEADER_NONCE],
        signature,
        values[HEADER_BODY],
    )


def read_content_type(values: list[str]) -> str:
    """The one Content-Type value the backend will see (empty when there is none); a repeated or
    empty header is refused: the backend could read either value, or tell empty from absent."""
    if len(values) > 1:
        raise SignatureError("repeated_content_type")
    if not values:
        return ""
    if not values[0]:
        raise SignatureError("malformed_content_type")
    return values[0]


def check_time(signed: Signed, now_ms: int, back_ms: int, ahead_ms: int) -> None:
    if now_ms - signed.timestamp_ms > back_ms:
        raise SignatureError("stale_timestamp")
    if signed.timestamp_ms - now_ms > ahead_ms:
        raise SignatureError("future_timestamp")


class Verifier:
    """Verifies KS1 signatures for one key; built once per cached key record."""

    def __init__(self, mode: str, *, secret: str | None = None, public_key_pem: str | None = None) -> None:
        if mode not in ALGORITHMS:
            raise ValueError(f"no verifier for signing mode {mode!r}")
        self.mode = mode
        self.algorithm = ALGORITHMS[mode]
        self._secret = secret.encode() if secret else None
        self._public_key: Any = None
        if mode in ("ed25519", "rsa"):
            from cryptography.hazmat.primitives import serialization

            if not public_key_pem:
                raise ValueError("an asymmetric signing mode needs a public key")
            self._public_key = serialization.load_pem_public_key(public_key_pem.encode())
        elif not self._secret:
            raise ValueError("hmac signing needs its secret")

    def __repr__(self) -> str:
        return f"Verifier(mode={self.mode!r})"

    def verify(
        self,
        signed: Signed,
        method: str,
        path: str,
        query: str,
        content_type: str,
        headers: Sequence[tuple[str, str]] = (),
    ) -> None:
        if signed.algorithm != self.algorithm:
            raise SignatureError("unknown_algorithm")
        message = string_to_sign(
            self.algorithm,
            signed.timestamp_ms,
            signed.nonce,
            method,
            path,
            query,
            content_type,
            signed.body_digest,
            headers,
        ).encode()
        if self.mode == "hmac":
            assert self._secret is not None
            if not hmac.compare_digest(hmac.digest(self._secret, message, "sha256"), signed.signature):
                raise SignatureError("bad_signature")
            return
        from cryptography.exceptions import InvalidSignature

        try:
            if self.mode == "ed25519":
                self._public_key.verify(signed.signature, message)
            else:
                from cryptography.hazmat.primitives import hashes
                from cryptography.hazmat.primitives.asymmetric import padding

                pss = padding.PSS(mgf=padding.MGF1(hashes.SHA256()), salt_length=RSA_SALT_LENGTH)
                self._public_key.verify(signed.signature, message, pss, hashes.SHA256())
        except (InvalidSignature, ValueError):
            raise SignatureError("bad_signature") from None


# ---------------------------------------------------------------- the backend's check


def body_matches(
    body: bytes | str | None, headers: Mapping[str, str] | None, *, is_base64: bool = False
) -> bool:
    """For the backend: the body it received is the one the client signed (API Gateway gives
    an authorizer no body, so the authorizer verified the digest header, and this checks the body)."""
    claimed = None
    for name, value in (headers or {}).items():
        if name.lower() == HEADER_BODY:
            claimed = value
    if claimed is None:
        return False
    raw: bytes | str | None = base64.b64decode(body) if (is_base64 and isinstance(body, str)) else body
    return hmac.compare_digest(body_sha256(raw or b""), claimed.strip().lower())
