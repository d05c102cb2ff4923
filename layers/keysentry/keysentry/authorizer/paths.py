"""Canonical request paths: the one spelling API Gateway, the route rules and the backend all read
the same way, and the ARN globs that keep a cached Allow off every other spelling."""

from __future__ import annotations

from functools import lru_cache
from typing import Final

# Anything here may make a path match one rule yet reach another route: dot segments, encoded or
# back slashes, encodings of characters that never need one, control characters, IAM wildcards,
# Unicode that normalizes to a separator. Plain paths have none of them and cost one scan.
_SUSPECT_CHARS: Final = frozenset("%.\\;*?")
_NEVER_ENCODED: Final = (
    frozenset(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~/\\%*?;")
    | frozenset(range(0x20))
    | {0x7F}
)
_SEPARATORS: Final = "./\\%;*?"


def path_is_canonical(path: str) -> bool:
    """Whether a request path is one API Gateway, the rules and the backend all read the same way."""
    if path.isascii() and path.isprintable() and _SUSPECT_CHARS.isdisjoint(path) and "//" not in path:
        return True  # the common case
    return _path_is_canonical(path)


@lru_cache(maxsize=1024)
def _path_is_canonical(path: str) -> bool:
    if not path.isprintable() or any(s in path for s in ("\\", "*", "?", "//")):
        return False
    if _has_dot_segment(path):
        return False
    text = _percent_decoded(path)
    return text is not None and text.isprintable() and not _folds_to_separator(text)


def _has_dot_segment(path: str) -> bool:
    """``.`` or ``..`` as a segment, also before a ``;`` (``..;`` is ``..`` to some servers)."""
    return any(segment.split(";", 1)[0] in (".", "..") for segment in path.split("/"))


def _percent_decoded(path: str) -> str | None:
    """The path with its escapes decoded; None for a ``%`` that encodes nothing, the encoding of a
    byte that never needs one, or bytes that are not UTF-8 (overlong forms such as ``%C0%AE``)."""
    import re

    decoded = bytearray()
    pos = 0
    for match in re.finditer(r"%([0-9A-Fa-f]{2})?", path):
        if match.group(1) is None:
            return None  # a "%" that encodes nothing
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
    :func:`path_is_canonical` refuses, so that a cached Allow never covers them: dot segments (also
    with ``;`` after them), ``//``, a backslash, and the encoding of every byte that never needs one
    (``.``, ``/``, ``\\``, ``%``, ``;``, letters, digits, control characters ...) in either case.
    ``*`` matches any run of characters, ``/`` included; ``?`` one character."""
    globs = ["/./*", "/../*", "/.", "/..", "/.;*", "/..;*", "//*", "\\*", "%", "%?"]
    globs += ["%0?*", "%1?*"]  # control characters (and a "%0" that encodes nothing)
    globs += ["%/*", "%.*", "%;*", "%\\*", "%%*"]  # a "%" that encodes nothing, before a separator
    for byte in sorted(b for b in _NEVER_ENCODED if b >= 0x20):
        globs += _either_case(f"%{byte:02X}*")
    return tuple(dict.fromkeys(globs))


def _either_case(glob: str) -> list[str]:
    """``%2E*`` and ``%2e*``: an escape's hex digits in upper and lower case, in the same order as
    written before (upper first), without repeats."""
    high, low = glob[1], glob[2]
    return [
        f"%{h}{lo}*" for h in dict.fromkeys((high, high.lower())) for lo in dict.fromkeys((low, low.lower()))
    ]


# Appended to ``{prefix}/*``: e.g. ``{prefix}/*/../*`` matches ``{prefix}/GET/v1/prices/../admin``.
NONCANONICAL_GLOBS: Final = _noncanonical_globs()
