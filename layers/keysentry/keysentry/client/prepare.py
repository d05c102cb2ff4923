"""One outgoing request, checked and signed as a whole: what the HTTP library will send is what
the signature covers, or the request is refused before it leaves.

- the path signed is the URL's path after ``base_path`` (a REST API's stage on its execute-api
  URL: the authorizer verifies the path as the API routes it, without the stage); a needless
  escape of an unreserved character (``%7E`` for ``~``) is sent and signed as the character, as
  requests spells it and the authorizer requires (it refuses the escape as not canonical); a
  ``.`` or ``..`` segment (escaped or not) is refused;
- the query is sent in its canonical spelling, the one signed (an HTTP API accepts no other); a
  query that has no canonical spelling meaning the same parameters (a ``%`` not followed by two hex
  digits, percent-escapes that are not UTF-8) is refused;
- the body's SHA-256 is taken over the bytes sent; a streamed body (a file, a generator) cannot be
  digested before it is sent, so it is refused;
- the Content-Type sent is the one signed; an empty one is refused (the authorizer would deny it);
- a request that already carries the key or signature headers is refused: two keys, or a second
  signature, would be denied.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Final
from urllib.parse import parse_qsl, urlsplit, urlunsplit

from keysentry.client.signer import sign
from keysentry.signing import canonical_query

_BAD_ESCAPE: Final = re.compile(r"%(?![0-9A-Fa-f]{2})")
_ESCAPE: Final = re.compile(r"%([0-9A-Fa-f]{2})")
_UNRESERVED: Final = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~")
OWN_HEADERS: Final = frozenset(
    {
        "x-api-key",
        "x-ks-algorithm",
        "x-ks-timestamp",
        "x-ks-nonce",
        "x-ks-content-sha256",
        "x-ks-signature",
        "x-ks-signed-headers",
    }
)


class UnsignableRequestError(ValueError):
    """The request cannot be sent signed exactly as asked. The message says why; it never holds
    the key or a secret."""


@dataclass(frozen=True)
class Signer:
    """The credentials of one key: the key, and the hmac secret or private key when it signs."""

    key: str
    secret: str | None = None
    private_key: Any = None
    signed_headers: tuple[str, ...] = ()  # more headers each signed request's signature covers

    def __repr__(self) -> str:
        return "Signer(<key withheld>)"


@dataclass(frozen=True)
class Outgoing:
    url: str  # the URL to send: its query in the canonical spelling
    headers: dict[str, str]  # to add to the request's own


def canonical_url(url: str, base_path: str) -> tuple[str, str, str]:
    """(the URL to send, the path to sign, the query to sign) for ``url``."""
    parts = urlsplit(url)
    sent_path = _unreserved_unescaped(parts.path)
    path = sent_path or "/"
    if base_path:
        if not (path == base_path or path.startswith(base_path + "/")):
            raise UnsignableRequestError(f"the URL's path {path!r} is not under base_path {base_path!r}")
        path = path[len(base_path) :] or "/"
    if _BAD_ESCAPE.search(parts.query):
        raise UnsignableRequestError("the query has a '%' that is not a percent-escape: encode it as %25")
    try:
        pairs = parse_qsl(parts.query, keep_blank_values=True, errors="strict")
        query = canonical_query(pairs)
    except UnicodeError:
        raise UnsignableRequestError("the query has percent-escapes that are not UTF-8") from None
    except ValueError as error:  # SignatureError("malformed_query"): a lone surrogate
        raise UnsignableRequestError(f"the query cannot be signed: {error}") from None
    return urlunsplit((parts.scheme, parts.netloc, sent_path, query, "")), path, query


def _unreserved_unescaped(path: str) -> str:
    """``path`` with escapes of unreserved characters decoded (RFC 3986 6.2.2.2: the same URI)."""

    def decoded(match: re.Match[str]) -> str:
        char = chr(int(match.group(1), 16))
        return char if char in _UNRESERVED else match.group(0)

    unescaped = _ESCAPE.sub(decoded, path) if "%" in path else path
    if any(segment in (".", "..") for segment in unescaped.split("/")):
        raise UnsignableRequestError(
            "the path has a '.' or '..' segment (a dot segment): the authorizer refuses it"
        )
    return unescaped


def body_bytes(body: Any) -> bytes | None:
    """The body as the bytes that will be sent; refuses a stream."""
    if body is None or isinstance(body, bytes):
        return body
    if isinstance(body, str):
        return body.encode()
    if isinstance(body, bytearray | memoryview):
        return bytes(body)
    raise UnsignableRequestError(
        f"the body is a stream ({type(body).__name__}): its SHA-256 is signed before it is sent, "
        "so pass it as bytes (read the file first)"
    )


def prepare(
    signer: Signer,
    method: str,
    url: str,
    headers: Iterable[tuple[str, str]],
    body: bytes | None,
    *,
    base_path: str = "",
    clock: Any = None,
) -> Outgoing:
    """The URL to send and the headers to add for one request, signed when the key signs."""
    content_types: list[str] = []
    listed: dict[str, list[str]] = {name: [] for name in signer.signed_headers}
    for name, value in headers:
        lowered = name.lower()
        if lowered in OWN_HEADERS:
            raise UnsignableRequestError(f"the request already has {name}: KeysentryAuth sets it")
        if lowered == "content-type":
            content_types.append(value)
        if lowered in listed:
            listed[lowered].append(value)
    for name, values in listed.items():
        if len(values) != 1 or "," in values[0]:
            raise UnsignableRequestError(
                f"the request must send {name} once, without a comma, to sign it (signed_headers)"
            )
    if len(content_types) > 1:
        raise UnsignableRequestError("the request has Content-Type twice: only one can be signed")
    if content_types and not content_types[0]:
        raise UnsignableRequestError("the request has an empty Content-Type: send none or a real one")
    send_url, path, query = canonical_url(url, base_path)
    if signer.secret is None and signer.private_key is None:
        return Outgoing(send_url, {"X-Api-Key": signer.key})
    timestamp_ms = None if clock is None else int(clock() * 1000)
    signed = sign(
        method,
        path,
        query,
        body,
        key=signer.key,
        secret=signer.secret,
        private_key=signer.private_key,
        content_type=content_types[0] if content_types else None,
        timestamp_ms=timestamp_ms,
        headers={name: values[0] for name, values in listed.items()},
    )
    signed.pop("Content-Type", None)  # already on the request, exactly as signed
    return Outgoing(send_url, signed)
