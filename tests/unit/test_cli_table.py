"""The CLI's tables: columns line up whatever the values hold, wide values end in an ellipsis, and
times read relative to a fixed now."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st
from keysentry.cli.table import Column, can_cut, relative, table, width

NOW = 1_790_000_000  # 2026-09-21T14:13:20Z
H, D = 3600, 86_400


@pytest.mark.parametrize(
    "ts, shown",
    [
        (None, "-"),
        (NOW, "now"),
        (NOW + 30, "in 30 s"),
        (NOW - 59, "59 s ago"),
        (NOW - 60, "1 min ago"),
        (NOW + 59 * 60 + 59, "in 59 min"),
        (NOW - 2 * H - 59, "2 h ago"),
        (NOW + 47 * H + 3599, "in 47 h"),
        (NOW + 3 * D + 5 * H, "in 3 d"),
        (NOW - 180 * D, "180 d ago"),
        (NOW + 729 * D, "in 729 d"),
        (NOW + 3 * 365 * D + D, "in 3 y"),
    ],
)
def test_times_read_relative_to_now_in_whole_units(ts: int | None, shown: str) -> None:
    assert relative(ts, NOW) == shown


def columns_of(lines: list[str]) -> list[int]:
    """Where each of the header's titles starts (titles are single words here)."""
    header = lines[0]
    return [i for i, c in enumerate(header) if c != " " and (i == 0 or header[i - 1] == " ")]


def test_a_wide_value_is_cut_with_an_ellipsis_and_the_columns_stay_aligned() -> None:
    # Given a name far wider than its column, and a short one
    columns = [Column("NAME", 10), Column("STATUS", 9), Column("COUNT", 8, right=True)]
    rows = [["a very long key name indeed", "active", "7"], ["feed", "suspended", "12,345"]]

    # When printed
    lines = table(columns, rows)

    # Then the long name shows its start and an ellipsis in exactly the column's width
    assert lines[1].startswith("a very lo…  active")
    starts = columns_of(lines)
    for line in lines[1:]:
        assert line[starts[1] - 2 : starts[1]] == "  " and line[starts[1]] != " "
        assert len(line) == len(lines[0])  # right-aligned numbers end where the header ends
    assert lines[2].endswith("12,345")


def test_without_unicode_the_ellipsis_is_three_dots() -> None:
    assert table([Column("NAME", 8)], [["abcdefghijk"]], unicode=False)[1] == "abcde..."
    assert can_cut("utf-8") and not can_cut("ascii") and not can_cut(None)


def test_control_characters_cannot_break_a_row_or_reach_the_terminal() -> None:
    lines = table([Column("REASON", 40), Column("KID", 12)], [["line\nbreak \x1b[31mred\ttab", "k"]])
    assert len(lines) == 2
    assert "\x1b" not in lines[1] and "\n" not in lines[1] and "\t" not in lines[1]
    assert lines[1].startswith("line?break ?[31mred?tab")


def test_wide_characters_count_as_two_columns() -> None:
    lines = table([Column("NAME", 6), Column("X", 3)], [["価格フィード", "a"], ["ab", "b"]])
    # two wide characters and the ellipsis fill five of the six columns (a third would need two)
    assert lines[1] == "価格…  a"
    assert lines[2] == "ab     b"


@pytest.mark.parametrize(
    ("text", "columns"),
    [
        ("ราคาสินค้า", 8),  # Thai: a vowel and a tone mark sit on the consonants before them
        ("\u1100\u1161\u11a8", 2),  # a Hangul syllable written as three conjoining jamo: one wide cell
        ("e\u0301", 1),  # a combining accent
        ("\u2764\ufe0f", 1),  # a variation selector takes no column
    ],
)
def test_marks_drawn_over_the_character_before_them_take_no_column(text: str, columns: int) -> None:
    assert width(text) == columns


@given(
    st.lists(
        st.tuples(st.text(max_size=60), st.text(max_size=60), st.integers(0, 10**9).map(str)),
        min_size=1,
        max_size=8,
    )
)
def test_every_row_has_its_columns_where_the_header_has_them(rows: list[tuple[str, str, str]]) -> None:
    columns = [Column("OWNER", 20), Column("NAME", 16), Column("REQUESTS", 12, right=True)]
    lines = table(columns, rows)
    assert len(lines) == len(rows) + 1
    widths = {width(line) for line in lines}
    assert len(widths) == 1  # the last column is right-aligned: every line ends at the same column
    for line, row in zip(lines[1:], rows, strict=True):
        assert line.endswith(row[2])
        assert width(line) <= 20 + 16 + 12 + 4
