"""Which key a presented token is: parse it offline, read its record, verify the peppered digest.

Lean on purpose (the standard library, :mod:`keyformat` and :mod:`hashing`): the authorizer calls it
on every cache miss, and the leak-report endpoint for every reported token. The caller brings the
record lookup and the peppers, so each keeps its own cache and error handling: an exception from
either (an unreachable table, an unreadable pepper secret) propagates unchanged, and the caller fails
closed.
"""

from __future__ import annotations

from collections.abc import Callable
from enum import StrEnum
from typing import TYPE_CHECKING, Generic, NamedTuple, Protocol, TypeVar

from keysentry import keyformat
from keysentry.errors import MalformedKeyError

if TYPE_CHECKING:
    from keysentry.hashing import Peppers


class Refusal(StrEnum):
    """Why a token names no key (the authorizer's decision reasons)."""

    MALFORMED = "malformed_key"  # failed an offline check: no lookup was made
    UNKNOWN = "unknown_key"  # well-formed, but no key has its id
    WRONG_DIGEST = "wrong_digest"  # the key exists, the token is not its key


class Hashed(Protocol):
    """What identifying needs of a record: its stored digest and the pepper version it was made under."""

    @property
    def digest(self) -> str: ...

    @property
    def pepper_version(self) -> str: ...


R = TypeVar("R", bound=Hashed)


class Identified(NamedTuple, Generic[R]):
    """The outcome: ``record`` when the token is that key's, else ``refusal``. ``kid`` is the token's
    key id once it parsed (also when refused as unknown or wrong), for logs; never the token.
    A named tuple: immutable, and built at half a frozen dataclass's cost on the authorizer's path."""

    kid: str | None
    record: R | None
    refusal: Refusal | None


def identify_token(
    token: object, lookup: Callable[[str], R | None], peppers_for: Callable[[str], Peppers]
) -> Identified[R]:
    """The key ``token`` is, if any. ``lookup(kid)``: its record or None; ``peppers_for(version)``:
    peppers that know the record's pepper version. The comparison is constant-time."""
    try:
        parsed = keyformat.parse(token)
    except MalformedKeyError:
        return Identified(None, None, Refusal.MALFORMED)
    record = lookup(parsed.kid)
    if record is None:
        return Identified(parsed.kid, None, Refusal.UNKNOWN)
    if not peppers_for(record.pepper_version).verify(parsed.token, record.digest, record.pepper_version):
        return Identified(parsed.kid, None, Refusal.WRONG_DIGEST)
    return Identified(parsed.kid, record, None)
