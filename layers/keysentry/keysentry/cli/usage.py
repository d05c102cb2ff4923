"""``keys usage KID`` and ``usage --owner O``: the usage reports, as a table and a chart (or JSON)."""

from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING, Any, Final

from keysentry.cli.chart import bars, can_draw, series_chart
from keysentry.cli.output import Output
from keysentry.cli.table import Column, table
from keysentry.errors import ValidationError

if TYPE_CHECKING:
    from keysentry.cli.commands import Service

PERIOD: Final = {"hour": 3600, "day": 86_400}
MOST_BARS: Final = 31  # a report by day up to this many days is drawn as bars, longer ones as a sparkline
NAME_WIDTH: Final = 40
COUNT_WIDTH: Final = 11  # up to 999,999,999
OWNER_COLUMNS: Final = (
    Column("KID", 12),
    Column("STATUS", 9),
    Column("REQUESTS", 15, right=True),
    Column("REFUSED", 15, right=True),
    Column("NAME", 40),
)


def _window(args: argparse.Namespace, now: int) -> tuple[int, str]:
    """``--hours N`` (default 24) or ``--days N``: the last N periods, the current one included."""
    if args.days is not None:
        granularity, count = "day", args.days
    else:
        granularity, count = "hour", 24 if args.hours is None else args.hours
    from keysentry.service.usage import MAX_POINTS

    if count < 1:
        raise ValidationError(f"--{granularity}s must be at least 1")
    if count > MAX_POINTS[granularity]:
        longer = (
            f": for a longer window, --days N (at most {MAX_POINTS['day']})" if granularity == "hour" else ""
        )
        raise ValidationError(
            f"--{granularity}s is at most {MAX_POINTS[granularity]} (the {granularity}ly counts kept){longer}"
        )
    return now - (count - 1) * PERIOD[granularity], granularity


def cmd_key_usage(args: argparse.Namespace, out: Output, service: Service) -> int:
    keys = service()
    start, granularity = _window(args, keys.clock())
    report = keys.usage(args.kid, start, None, granularity)
    out.emit(report, "" if out.as_json else report_text(report, can_draw(sys.stdout.encoding)))
    return 0


def cmd_owner_usage(args: argparse.Namespace, out: Output, service: Service) -> int:
    keys = service()
    start, granularity = _window(args, keys.clock())
    report = keys.owner_usage(args.owner, start, None, granularity)
    out.emit(report, "" if out.as_json else owner_text(report, out.unicode))
    return 0


def _counts(counts: dict[str, int]) -> str:
    return "   ".join(f"{name} {count:,}" for name, count in counts.items()) or "-"


def _ranked(title: str, rows: list[dict[str, Any]], name: str) -> list[str]:
    """One line per named row, the count right-aligned: ``routes:  GET /v1/x  12``."""
    if not rows:
        return [f"{title + ':':<15}-"]
    lines = []
    for i, row in enumerate(rows):
        head = f"{title + ':':<15}" if i == 0 else " " * 15
        lines.append(f"{head}{row[name][:NAME_WIDTH]:<{NAME_WIDTH}}  {row['requests']:>{COUNT_WIDTH},}")
    return lines


def report_text(report: dict[str, Any], unicode: bool = True) -> str:
    """A key's report for a terminal: its totals, status classes, top routes and networks, refusals,
    and its series as a chart (a sparkline; bars for up to a month of days)."""
    mean = report["latency_ms_mean"]
    lines = [
        f"key {report['kid']}, {report['from']} to {report['to']}, by {report['granularity']}",
        "",
        f"{'requests:':<15}{report['requests']:,}",
        f"{'bytes:':<15}{report['bytes']:,}",
        f"{'latency:':<15}{'-' if mean is None else f'{mean} ms on average'}",
        f"{'status:':<15}{_counts(report['by_status'])}",
        *_ranked("routes", report["by_route"], "route"),
        *_ranked("networks", report["networks"], "network"),
        f"{'refused:':<15}{report['refused']:,}"
        + (f"   ({_counts(report['refusals'])})" if report["refused"] else ""),
        "",
    ]
    series = report["series"]
    starts, values = [p["start"] for p in series], [p["requests"] for p in series]
    if report["granularity"] == "day" and len(series) <= MOST_BARS:
        lines += bars(starts, values, "day", unicode)
    else:
        lines += series_chart(starts, values, report["granularity"], unicode)
    return "\n".join(lines)


def owner_text(report: dict[str, Any], unicode: bool = True) -> str:
    """An owner's keys, busiest first, one line each, and the total."""
    rows = [
        [k["kid"], k["status"], f"{k['requests']:,}", f"{k['refused']:,}", k["name"] or "-"]
        for k in report["keys"]
    ]
    rows.append(["total", "", f"{report['requests']:,}", "", ""])
    lines = [
        f"owner {report['owner']}, {report['from']} to {report['to']}, by {report['granularity']}",
        "",
        *table(OWNER_COLUMNS, rows, unicode),
    ]
    if report["truncated"]:
        lines.append(f"(the owner's first {report['keys_read_at_most']} keys only)")
    return "\n".join(lines)
