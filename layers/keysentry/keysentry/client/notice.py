"""The rotation notice a protected backend sends its caller, and the client reads.

When the authorizer's context says the calling key is ``rotating`` (its successor exists and it
works only until its grace window ends), the backend adds one response header::

    Keysentry-Rotate: key=<kid of the key used>; successor=<kid of its successor>; in=<seconds>

``in`` counts down to the end of the grace window (the context's ``rotate_in_seconds``). Key ids
are not secret; the header never carries a key. A client reads the notice only for the key it is
using, so a late answer to a request made with an older key is ignored.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

from keysentry.keyformat import is_kid

ROTATE_HEADER: Final = "Keysentry-Rotate"
_SECONDS_RE: Final = re.compile(r"\A[0-9]{1,10}\Z")


@dataclass(frozen=True)
class Notice:
    """``key`` is being replaced by ``successor``; ``key`` works for ``seconds`` more."""

    key: str
    successor: str
    seconds: int

    def header_value(self) -> str:
        return f"key={self.key}; successor={self.successor}; in={self.seconds}"


def notice_from_context(context: Mapping[str, Any]) -> Notice | None:
    """The notice for a caller, from the authorizer's context (REST passes every value as a
    string, an HTTP API keeps numbers): None unless the key is rotating towards a successor."""
    if str(context.get("status", "")) != "rotating":
        return None
    key, successor = str(context.get("key_id", "")), str(context.get("successor", ""))
    seconds = str(context.get("rotate_in_seconds", ""))
    if not (is_kid(key) and is_kid(successor) and _SECONDS_RE.match(seconds)):
        return None
    return Notice(key, successor, int(seconds))


def rotation_headers(context: Mapping[str, Any]) -> dict[str, str]:
    """The header to add to a response for this caller: ``{}`` when its key is not rotating."""
    notice = notice_from_context(context)
    return {ROTATE_HEADER: notice.header_value()} if notice else {}


def parse_notice(value: str | None) -> Notice | None:
    """Read a ``Keysentry-Rotate`` value; None for an absent or malformed one (a client keeps
    using its key: a notice it cannot read is no reason to stop working)."""
    if not value:
        return None
    fields: dict[str, str] = {}
    for part in value.split(";"):
        name, sep, field_value = part.strip().partition("=")
        if not sep or name in fields:
            return None
        fields[name] = field_value.strip()
    key, successor, seconds = fields.get("key", ""), fields.get("successor", ""), fields.get("in", "")
    if not (is_kid(key) and is_kid(successor) and _SECONDS_RE.match(seconds)):
        return None
    if key == successor:
        return None
    return Notice(key, successor, int(seconds))
