"""Canonical request paths: the one spelling API Gateway, the route rules and the backend all read
the same way, and the ARN globs that keep a cached Allow off every other spelling."""

from __future__ import annotations

from functools import lru_cache
from typing import Final

from keysentry.routes import UNRESERVED

# Anything here may make a path match one rule yet reach another route: dot segments, encoded or
# back slashes, encodings of characters that never need one, control characters, IAM wildcards,
# Unicode that normalizes to a separator, a double quote (never legal in a URI, and the one character
# that could break out of its field in a JSON access log line). Plain paths have none of them and
# cost one scan. Never encoded either: what could break the access log line if API Gateway wrote
# ``$context.path`` decoded and unescaped, a quote (%22), a backslash (%5C) and the control
# characters (%00-%1F, %7F), so that the line's fields, and the meter and source network in them,
# are read whole.
_SUSPECT_CHARS: Final = frozenset('%.\\;*?"')
_NEVER_ENCODED: Final = frozenset((UNRESERVED + '/\\%*?;"').encode()) | frozenset(range(0x20)) | {0x7F}
_SEPARATORS: Final = "./\\%;*?"
# A "%" that is not an escape of its own but that a decoder still gives meaning to: "%0"/"%1" (a
# control character, also to a lenient one-digit decoder), "%+" (Java parses "%+0" as NUL), "%u"/"%U" (IIS and .NET read "%u002e" as
# "."), and "%" before "%" or one character before "%" (decoded twice, "%%32%65" and "%2%65" are
# "."). Each is one glob in NONCANONICAL_GLOBS; keep the two in step.
_MEANINGFUL_STRAY_PERCENT: Final = r"%(?:[01uU%+]|.%)"


def path_is_canonical(path: str) -> bool:
    """Whether a request path is one API Gateway, the rules and the backend all read the same way."""
    if path.isascii() and path.isprintable() and _SUSPECT_CHARS.isdisjoint(path) and "//" not in path:
        return True  # the common case
    return _path_is_canonical(path)


@lru_cache(maxsize=1024)
def _path_is_canonical(path: str) -> bool:
    if not path.isprintable() or any(s in path for s in ("\\", "*", "?", "//", '"')):
        return False
    if _has_dot_segment(path):
        return False
    text = _percent_decoded(path)
    return text is not None and text.isprintable() and not _folds_to_separator(text)


def _has_dot_segment(path: str) -> bool:
    """``.`` or ``..`` as a segment, also before a ``;`` (``..;`` is ``..`` to some servers)."""
    return any(segment.split(";", 1)[0] in (".", "..") for segment in path.split("/"))


def _percent_decoded(path: str) -> str | None:
    """The path with its escapes decoded; None for an escape some decoder reads as a character the
    rules did not see (see :data:`NONCANONICAL_GLOBS`), or bytes that are not UTF-8 (overlong forms
    such as ``%C0%AE``). Any other ``%`` is a literal character: no mainstream decoder reads it as
    anything else (ADR 0008)."""
    import re

    if re.search(_MEANINGFUL_STRAY_PERCENT, path, re.DOTALL):
        return None
    decoded = bytearray()
    pos = 0
    for match in re.finditer(r"%([0-9A-Fa-f]{2})", path):
        byte = int(match.group(1), 16)
        if byte in _NEVER_ENCODED:
            return None
        decoded += path[pos : match.start()].encode() + bytes([byte])
        pos = match.end()
    decoded += path[pos:].encode()
    try:
        return decoded.decode("utf-8")
    except UnicodeDecodeError:
        return None


def _folds_to_separator(text: str) -> bool:
    """Whether Unicode in ``text`` normalizes to a separator (a fullwidth dot or solidus, say)
    that a backend may fold to ``.`` or ``/``."""
    if text.isascii():
        return False
    import unicodedata

    folded = unicodedata.normalize("NFKC", text)
    return any(folded.count(c) != text.count(c) for c in _SEPARATORS)


def _noncanonical_globs() -> tuple[str, ...]:
    """ARN globs (after ``{prefix}/*``: any method, then the path) for the spellings
    :func:`path_is_canonical` refuses, so that a cached Allow never covers them, and for nothing it
    accepts: dot segments (also with ``;`` after them), ``//``, a backslash, a double quote, the stray ``%`` forms of
    ``_MEANINGFUL_STRAY_PERCENT``, the encoding of every byte that never needs one (``.``, ``/``,
    ``\\``, ``%``, ``;``, letters, digits, control characters ...) in either case, and the overlong
    UTF-8 lead bytes by which old decoders read ``%C0%AE`` as ``.``.
    ``*`` matches any run of characters, ``/`` included; ``?`` one character."""
    globs = ["/./*", "/../*", "/.", "/..", "/.;*", "/..;*", "//*", "\\*", '"*']
    globs += ["%0*", "%1*", "%u*", "%U*", "%+*", "%%*", "%?%*"]  # _MEANINGFUL_STRAY_PERCENT
    for byte in sorted(b for b in _NEVER_ENCODED if b >= 0x20):
        globs += _either_case(f"{byte:02X}")
    # overlong UTF-8 of ASCII: 2 bytes (C0, C1), 3 (E0 80-9F), 4 (F0 80-8F)
    globs += [g for lead in ("C0", "C1") for g in _either_case(lead)]
    globs += [
        g for lead, rest in (("E0", "%8?*"), ("E0", "%9?*"), ("F0", "%8?*")) for g in _either_case(lead, rest)
    ]
    return tuple(dict.fromkeys(globs))


def _either_case(pair: str, rest: str = "*") -> list[str]:
    """``%2E*`` and ``%2e*``: an escape's hex digits in upper and lower case (upper first), without
    repeats, then ``rest``."""
    high, low = pair[0], pair[1]
    return [
        f"%{h}{lo}{rest}"
        for h in dict.fromkeys((high, high.lower()))
        for lo in dict.fromkeys((low, low.lower()))
    ]


# Appended to ``{prefix}/*``: e.g. ``{prefix}/*/../*`` matches ``{prefix}/GET/v1/prices/../admin``.
NONCANONICAL_GLOBS: Final = _noncanonical_globs()
