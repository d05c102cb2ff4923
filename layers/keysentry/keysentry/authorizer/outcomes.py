"""What the authorizer decides: an outcome, a reason for the log, and the key it concerns."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Any, NamedTuple

from keysentry.model import KeyRecord
from keysentry.routes import RouteTable

Context = dict[str, str | int | bool]


class Allowed(NamedTuple):
    """The parts of an Allow's response that change only with the record, the API stage and the
    route table: built once when a decision is remembered, reused by every response it serves."""

    prefix: str | None  # the method ARN's prefix (API and stage) they were built for
    routes: RouteTable
    document: dict[str, Any] | None  # the stage's policy document; None: none is exact (or no ARN)
    base: Context  # the context, but for rotate_in_seconds
    due: int | None  # what rotate_in_seconds counts down to


class Outcome(StrEnum):
    ALLOW = "allow"
    DENY = "deny"  # a known key that may not do this: 403
    UNAUTHORIZED = "unauthorized"  # missing, malformed, unknown or wrong key: 401
    ERROR = "error"  # keysentry could not decide: fail closed


@dataclass(frozen=True)
class Decision:
    outcome: Outcome
    reason: str
    kid: str | None = None
    record: KeyRecord | None = None
    error: str | None = None  # the failure's type (and AWS error code), for the log; never its message
    allowed: Allowed | None = None  # a remembered Allow's response parts


def failure(error: BaseException, kid: str | None = None) -> Decision:
    """The fail-closed decision for any exception: its type and AWS error code, never its message.

    botocore's HTTP-level errors (ReadTimeoutError, ConnectionClosedError, ...) carry
    ``response=None``; only a dict response has an error code.
    """
    response = getattr(error, "response", None)
    code = ""
    if isinstance(response, dict):
        details = response.get("Error")
        if isinstance(details, dict):
            code = str(details.get("Code") or "")
    return Decision(Outcome.ERROR, "internal_error", kid, error=f"{type(error).__name__} {code}".strip())
