"""The key format: ``ks_<env>_<kid><secret><checksum>``.

Pure functions, no I/O: the authorizer and the leak endpoint reject a mistyped or malformed
token here, before any AWS call. The CRC32 is public, not a MAC: a made-up token with a computed
checksum passes here and costs the authorizer one GetItem.

- ``kid``: 12 base62 characters (71 bits), the key's public id.
- ``secret``: 32 base62 characters from :mod:`secrets` (190 bits).
- ``checksum``: CRC32 of everything before it, as 6 base62 characters.
"""

from __future__ import annotations

import re
import secrets
import zlib
from dataclasses import dataclass
from typing import Final, Literal, get_args

from keysentry.errors import MalformedKeyError

ALPHABET: Final = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
_INDEX: Final = {c: i for i, c in enumerate(ALPHABET)}

PREFIX: Final = "ks"
Env = Literal["live", "test"]
ENVS: Final[tuple[Env, ...]] = get_args(Env)
KID_LEN: Final = 12
SECRET_LEN: Final = 32
CHECKSUM_LEN: Final = 6
MAX_TOKEN_LEN: Final = 128

# Every token has exactly this length; a length check is the cheapest first filter.
_LENGTHS: Final = {env: len(PREFIX) + len(env) + 2 + KID_LEN + SECRET_LEN + CHECKSUM_LEN for env in ENVS}
_TOKEN_LENGTHS: Final = frozenset(_LENGTHS.values())
_TOKEN_RE: Final = re.compile(
    rf"\A{PREFIX}_(?P<env>{'|'.join(ENVS)})_(?P<kid>[0-9A-Za-z]{{{KID_LEN}}})(?P<secret>[0-9A-Za-z]{{{SECRET_LEN}}})"
    rf"(?P<checksum>[0-9A-Za-z]{{{CHECKSUM_LEN}}})\Z"
)
KID_PATTERN: Final = rf"^[0-9A-Za-z]{{{KID_LEN}}}$"  # as a path parameter
_KID_RE: Final = re.compile(rf"\A[0-9A-Za-z]{{{KID_LEN}}}\Z")

assert max(_LENGTHS.values()) <= MAX_TOKEN_LEN


@dataclass(frozen=True, slots=True)
class ParsedKey:
    """A token that passed every offline check. ``token`` is the plaintext: never log it."""

    env: str
    kid: str
    token: str

    def __repr__(self) -> str:  # keep the plaintext out of reprs, tracebacks and logs
        return f"ParsedKey(env={self.env!r}, kid={self.kid!r}, token='***')"


def encode_base62(value: int, width: int) -> str:
    """Encode a non-negative int as exactly ``width`` base62 characters."""
    if value < 0 or value >= 62**width:
        raise ValueError("value out of range for width")
    chars = []
    for _ in range(width):
        value, rem = divmod(value, 62)
        chars.append(ALPHABET[rem])
    return "".join(reversed(chars))


def decode_base62(text: str) -> int:
    value = 0
    for char in text:
        value = value * 62 + _INDEX[char]
    return value


def random_base62(length: int) -> str:
    return "".join(secrets.choice(ALPHABET) for _ in range(length))


def checksum(body: str) -> str:
    return encode_base62(zlib.crc32(body.encode("ascii")), CHECKSUM_LEN)


def new_kid() -> str:
    return random_base62(KID_LEN)


def generate(env: str = "live", kid: str | None = None) -> ParsedKey:
    """Mint a new token. The caller shows ``token`` once and stores only its digest."""
    if env not in ENVS:
        raise ValueError(f"env must be one of {', '.join(ENVS)}")
    kid = kid or new_kid()
    if not is_kid(kid):
        raise ValueError(f"kid must be {KID_LEN} base62 characters")
    body = f"{PREFIX}_{env}_{kid}{random_base62(SECRET_LEN)}"
    return ParsedKey(env=env, kid=kid, token=body + checksum(body))


def is_kid(value: object) -> bool:
    return isinstance(value, str) and _KID_RE.match(value) is not None


def parse(token: object) -> ParsedKey:
    """Check a presented token offline. Raises :class:`MalformedKeyError`; never echoes the token."""
    if not isinstance(token, str):
        raise MalformedKeyError("key must be a string")
    if len(token) not in _TOKEN_LENGTHS:
        raise MalformedKeyError("key has the wrong length")
    if not token.isascii():
        raise MalformedKeyError("key has non-ASCII characters")
    match = _TOKEN_RE.match(token)
    if match is None:
        raise MalformedKeyError("key is not in the ks_<env>_ format")
    body, check = token[:-CHECKSUM_LEN], match["checksum"]
    if zlib.crc32(body.encode("ascii")) != decode_base62(check):
        raise MalformedKeyError("key checksum does not match")
    return ParsedKey(env=match["env"], kid=match["kid"], token=token)
