"""The signed request's canonical query: one spelling for every way a client can send the same query."""

from __future__ import annotations

from typing import Any

import pytest
from keysentry.signing import SignatureError, canonical_query


@pytest.mark.parametrize("empty", [None, "", "?", {}, []])
def test_no_query_is_the_empty_string(empty: Any) -> None:
    assert canonical_query(empty) == ""


def test_names_are_sorted_and_a_names_repeated_values_keep_their_order() -> None:
    assert canonical_query("b=2&a=9&a=1") == "a=9&a=1&b=2"
    assert canonical_query([("b", "2"), ("a", "9"), ("a", "1")]) == "a=9&a=1&b=2"
    assert canonical_query({"b": "2", "a": ["9", "1"]}) == "a=9&a=1&b=2"


def test_a_raw_query_a_mapping_and_pairs_agree() -> None:
    raw = "?limit=10&owner=acme%20data&tag=x&tag=y"
    assert (
        canonical_query(raw)
        == canonical_query({"owner": "acme data", "tag": ("x", "y"), "limit": 10})
        == canonical_query([("tag", "x"), ("owner", "acme data"), ("limit", "10"), ("tag", "y")])
        == "limit=10&owner=acme%20data&tag=x&tag=y"
    )


def test_blank_and_missing_values_are_kept_as_empty() -> None:
    assert canonical_query("a=&b") == "a=&b="
    assert canonical_query({"a": None, "b": ""}) == "a=&b="


@pytest.mark.parametrize(
    ("raw", "canonical"),
    [
        ("q=a+b", "q=a%20b"),  # a form-encoded space
        ("q=a%20b", "q=a%20b"),
        ("q=a%2Bb", "q=a%2Bb"),  # a literal plus stays one
        ("q=%7e", "q=~"),  # unreserved characters are never encoded
        ("q=-._~", "q=-._~"),
        ("q=a/b", "q=a%2Fb"),
        ("q=%c3%a9", "q=%C3%A9"),  # UTF-8, upper-case hex
        ("q=a%3db", "q=a%3Db"),
        ("k%20y=v", "k%20y=v"),
    ],
)
def test_values_and_names_are_percent_encoded_one_way(raw: str, canonical: str) -> None:
    assert canonical_query(raw) == canonical


def test_unicode_in_a_mapping_is_encoded_as_its_utf8_bytes() -> None:
    assert canonical_query({"city": "Zürich"}) == "city=Z%C3%BCrich"


def test_a_lone_surrogate_has_no_spelling_and_is_refused() -> None:
    with pytest.raises(SignatureError) as refused:
        canonical_query({"q": "\ud800"})
    assert refused.value.reason == "malformed_query"


def test_reordering_a_query_never_changes_what_is_signed_but_reordering_a_names_values_does() -> None:
    assert canonical_query("x=1&y=2") == canonical_query("y=2&x=1")
    assert canonical_query("x=1&x=2") != canonical_query("x=2&x=1")
