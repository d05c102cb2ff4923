"""Usage reports without AWS: reading a window's bounds, summing its periods, and the terminal charts."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st
from keysentry.cli.chart import bars, bucketed, can_draw, series_chart, sparkline
from keysentry.cli.usage import report_text
from keysentry.errors import ValidationError
from keysentry.service.usage import iso, parse_time, summary, window
from keysentry.usage import KeyHour

from tests.conftest import T0

HOUR, DAY = 3600, 86400


@pytest.mark.parametrize(
    "text, expected",
    [
        ("1790000000", 1790000000),
        ("2026-09-21T14:13:20Z", 1790000000),
        ("2026-09-21T16:13:20+02:00", 1790000000),
        ("2026-09-21", 1790000000 - 14 * HOUR - 13 * 60 - 20),
    ],
)
def test_a_time_is_epoch_seconds_or_iso_8601(text: str, expected: int) -> None:
    assert parse_time(text, "from") == expected


@given(st.text(max_size=40))
def test_no_text_crashes_the_time_reader_or_is_repeated_in_its_error(text: str) -> None:
    try:
        parse_time(text, "from")
    except ValidationError as error:
        assert str(error) in {  # fixed messages: whatever was sent is never repeated back
            "from must be epoch seconds or an ISO 8601 time such as 2026-11-29T10:00:00Z",
            "from needs its time zone: end it with Z or an offset such as +00:00",
            "from is too large for epoch seconds (milliseconds? divide by 1000)",
        }


@given(
    start=st.integers(T0 - 36 * DAY, T0 + DAY),
    length=st.integers(1, 900 * HOUR),
    granularity=st.sampled_from(["hour", "day"]),
)
def test_a_window_is_whole_periods_kept_and_never_past_the_current_one(
    start: int, length: int, granularity: str
) -> None:
    period = HOUR if granularity == "hour" else DAY
    try:
        span = window(start, start + length, granularity, T0)
    except ValidationError:
        return
    assert span.start % period == 0 and span.end % period == 0 and span.start <= start < span.end
    assert span.end <= T0 - T0 % period + period and len(span.starts()) <= (840 if period == HOUR else 400)
    assert span.start >= T0 - (35 * DAY if period == HOUR else 400 * DAY)


def test_a_summary_has_one_entry_per_period_and_its_totals() -> None:
    span = window(T0 - 3 * HOUR, T0, "hour", T0)
    busy = KeyHour(requests=3, bytes=30, latency_ms=60)
    busy.by_status.update({"2xx": 3})
    busy.networks.update({f"10.0.{i}.0/24": 1 for i in range(3)})
    report = summary(span, {span.start + HOUR: busy})
    assert [p["requests"] for p in report["series"]] == [0, 3, 0, 0]
    assert report["requests"] == 3 and report["latency_ms_mean"] == 20.0
    assert summary(span, {})["latency_ms_mean"] is None


def test_networks_past_the_top_ten_are_summed_as_other() -> None:
    span = window(None, None, "hour", T0)
    counts = KeyHour(requests=66)
    counts.networks.update({f"10.0.{i}.0/24": i + 1 for i in range(11)})
    networks = summary(span, {span.start: counts})["networks"]
    assert networks[0] == {"network": "10.0.10.0/24", "requests": 11}
    assert networks[-1] == {"network": "other", "requests": 1} and len(networks) == 11


def test_a_sparkline_keeps_its_lowest_mark_for_zero_and_falls_back_to_ascii() -> None:
    assert sparkline([0, 1, 7, 14, 0]) == "▁▂▅█▁"
    assert sparkline([0, 1, 7, 14, 0], unicode=False) == "_.=#_"
    assert sparkline([0, 0]) == "▁▁" and sparkline([]) == ""
    assert can_draw("utf-8") and not can_draw("ascii") and not can_draw("latin-1") and not can_draw("nope")


def test_a_long_series_is_summed_to_fit_80_columns() -> None:
    sums, per = bucketed([1] * 840)
    assert per == 12 and sums == [12] * 70
    starts = [iso(T0 - T0 % HOUR - (839 - i) * HOUR) for i in range(840)]
    chart = series_chart(starts, [1] * 840, "hour")
    assert chart[0] == "requests per 12 hours, UTC (highest: 12)"
    assert all(len(line) <= 80 for line in chart)


def test_the_days_of_a_short_report_are_bars() -> None:
    starts = [iso(T0 - T0 % DAY - i * DAY) for i in (2, 1, 0)]
    assert bars(starts, [4, 0, 2], "day", unicode=False) == [
        "requests per day, UTC",
        "  2026-09-19  " + "#" * 48 + "  4",
        "  2026-09-20  " + " " * 48 + "  0",
        "  2026-09-21  " + "#" * 24 + " " * 24 + "  2",
    ]


def test_a_report_reads_as_a_table_then_a_chart() -> None:
    span = window(T0 - 2 * HOUR, T0, "hour", T0)
    counts = KeyHour(requests=1200, bytes=5000, latency_ms=1200 * 31)
    counts.by_status.update({"2xx": 1199, "5xx": 1})
    counts.by_route.update({"GET /v1/prices/{symbol}": 1200})
    counts.networks.update({"203.0.113.0/24": 1200})
    counts.refusals.update({"ip_not_allowed": 3})
    report = {"kid": "KIDAAAAAAAA1", **summary(span, {span.start: counts})}
    assert report_text(report, unicode=False).splitlines() == [
        "key KIDAAAAAAAA1, 2026-09-21T12:00:00Z to 2026-09-21T15:00:00Z, by hour",
        "",
        "requests:      1,200",
        "bytes:         5,000",
        "latency:       31.0 ms on average",
        "status:        2xx 1,199   5xx 1",
        "routes:        GET /v1/prices/{symbol}                         1,200",
        "networks:      203.0.113.0/24                                  1,200",
        "refused:       3   (ip_not_allowed 3)",
        "",
        "requests per hour, UTC (highest: 1,200)",
        "  ###______",
        "  2026-09-21 12:00 .. 2026-09-21 14:00",
    ]
