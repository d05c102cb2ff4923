"""Charts for a terminal, within 80 columns: a sparkline of a series with its time axis, and a bar
per period. In ASCII where the output cannot encode the block characters."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Final

BLOCKS: Final = "▁▂▃▄▅▆▇█"  # the lowest is kept for zero: any use shows above a quiet period
ASCII_BLOCKS: Final = "_.-:=+*#"
BAR: Final = {True: "█", False: "#"}
WIDTH: Final = 72  # the most marks in a sparkline: with its indent, within 80 columns
BAR_WIDTH: Final = 48


def can_draw(encoding: str | None) -> bool:
    """Whether text in ``encoding`` can hold the block characters (else: ASCII)."""
    try:
        (BLOCKS + BAR[True]).encode(encoding or "ascii")
    except (UnicodeEncodeError, LookupError):
        return False
    return True


def label(start: str, granularity: str) -> str:
    """A period's start (ISO 8601, UTC) as the axis shows it: 2026-11-29 10:00, or 2026-11-29."""
    return start[:10] if granularity == "day" else f"{start[:10]} {start[11:16]}"


def bucketed(values: Sequence[int], width: int = WIDTH) -> tuple[list[int], int]:
    """``values`` summed in runs of equal length so that at most ``width`` remain; and that length."""
    per = max(1, -(-len(values) // width))
    return [sum(values[i : i + per]) for i in range(0, len(values), per)], per


def sparkline(values: Sequence[int], unicode: bool = True) -> str:
    """One mark per value, scaled to the largest: zero is the lowest mark, any use is higher."""
    marks = BLOCKS if unicode else ASCII_BLOCKS
    top = max(values, default=0)
    if top <= 0:
        return marks[0] * len(values)
    return "".join(marks[min(7, -(-v * 7 // top))] if v > 0 else marks[0] for v in values)


def series_chart(
    starts: Sequence[str], values: Sequence[int], granularity: str, unicode: bool = True
) -> list[str]:
    """A headline, the sparkline (a few values get up to three columns each, many are summed in runs
    to fit), and its axis: the first mark's start at the left end, the last one's at the right."""
    if not values:
        return []
    sums, per = bucketed(values)
    unit = granularity if per == 1 else f"{per} {granularity}s"
    line = "".join(mark * min(3, max(1, WIDTH // len(sums))) for mark in sparkline(sums, unicode))
    first, last = label(starts[0], granularity), label(starts[(len(sums) - 1) * per], granularity)
    if len(sums) == 1:
        axis = first
    elif len(first) + len(last) < len(line):
        axis = first + " " * (len(line) - len(first) - len(last)) + last
    else:
        axis = f"{first} .. {last}"
    return [f"requests per {unit}, UTC (highest: {max(sums):,})", "  " + line, "  " + axis]


def bars(starts: Sequence[str], values: Sequence[int], granularity: str, unicode: bool = True) -> list[str]:
    """One line per period: its start, a bar scaled to the busiest period, and its count."""
    top = max(values, default=0)
    digits = max((len(f"{v:,}") for v in values), default=1)
    rows = [f"requests per {granularity}, UTC"]
    for start, value in zip(starts, values, strict=True):
        length = -(-value * BAR_WIDTH // top) if top > 0 else 0
        rows.append(
            f"  {label(start, granularity)}  {BAR[unicode] * length:<{BAR_WIDTH}}  {value:>{digits},}"
        )
    return rows
