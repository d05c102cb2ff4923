"""Aligned tables and relative times for a terminal, the way ``kubectl get`` and ``docker ps`` print:
a header in capitals, columns two spaces apart, a value wider than its column cut with an ellipsis.
No colour, so a pipe or a file gets the same text as the terminal."""

from __future__ import annotations

import unicodedata
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Final

GAP: Final = "  "
ELLIPSIS: Final = {True: "…", False: "..."}
MINUTE: Final = 60
HOUR: Final = 3600
DAY: Final = 86_400
YEAR: Final = 365 * DAY


@dataclass(frozen=True)
class Column:
    title: str
    most: int = 40  # the widest a value is shown; a wider one is cut and ends in an ellipsis
    right: bool = False  # numbers: aligned on the right


def can_cut(encoding: str | None) -> bool:
    """Whether text in ``encoding`` can hold the one-character ellipsis (else: three dots)."""
    try:
        ELLIPSIS[True].encode(encoding or "ascii")
    except (UnicodeEncodeError, LookupError):
        return False
    return True


def _char_width(char: str) -> int:
    """A mark drawn over the character before it (combining marks, Thai vowel signs, variation
    selectors: categories Mn, Me), a format character and a Hangul vowel or final consonant that
    joins the syllable before it take no column; a wide (CJK) character takes two."""
    if unicodedata.category(char) in ("Mn", "Me", "Cf") or "\u1160" <= char <= "\u11ff":
        return 0
    return 2 if unicodedata.east_asian_width(char) in ("W", "F") else 1


def width(text: str) -> int:
    """The columns ``text`` takes on a terminal: a wide (CJK) character two, a combining mark none."""
    return sum(_char_width(c) for c in text)


def printable(text: str) -> str:
    """``text`` with every control character (newline, tab, escape) shown as ``?``: a value from the
    table can neither break a row nor send the terminal an escape sequence."""
    return "".join(c if c.isprintable() else "?" for c in text)


def clip(text: str, most: int, unicode: bool = True) -> str:
    """``text`` in at most ``most`` columns: cut, with an ellipsis, when it is wider."""
    if width(text) <= most:
        return text
    mark = ELLIPSIS[unicode]
    room, kept = most - len(mark), []
    for char in text:
        room -= _char_width(char)
        if room < 0:
            break
        kept.append(char)
    return "".join(kept) + mark


def _pad(text: str, size: int, right: bool) -> str:
    fill = " " * (size - width(text))
    return fill + text if right else text + fill


def table(columns: Sequence[Column], rows: Iterable[Sequence[str]], unicode: bool = True) -> list[str]:
    """The header and one line per row, each column as wide as its widest value (at most its
    ``most``), no trailing blanks."""
    cells = [
        [clip(printable(value), column.most, unicode) for value, column in zip(row, columns, strict=True)]
        for row in rows
    ]
    sizes = [max([width(c.title), *(width(row[i]) for row in cells)]) for i, c in enumerate(columns)]
    lines = []
    for row in [[c.title for c in columns], *cells]:
        parts = [_pad(text, size, c.right) for text, size, c in zip(row, sizes, columns, strict=True)]
        lines.append(GAP.join(parts).rstrip())
    return lines


def relative(ts: int | None, now: int) -> str:
    """``ts`` as seen from ``now``: ``in 3 d``, ``2 h ago``, ``now``; ``-`` for no time. Whole units,
    rounded down: seconds under a minute, minutes under an hour, hours under two days, days under two
    years, then years."""
    if ts is None:
        return "-"
    span = abs(ts - now)
    if span == 0:
        return "now"
    if span < MINUTE:
        amount = f"{span} s"
    elif span < HOUR:
        amount = f"{span // MINUTE} min"
    elif span < 2 * DAY:
        amount = f"{span // HOUR} h"
    elif span < 2 * YEAR:
        amount = f"{span // DAY} d"
    else:
        amount = f"{span // YEAR} y"
    return f"in {amount}" if ts > now else f"{amount} ago"
