"""Route scopes without AWS: parsing RouteScopes, first-match decisions, cached-policy statements, ARNs."""

from __future__ import annotations

import json

import pytest
from keysentry.errors import ConfigurationError
from keysentry.routes import HTTP_METHODS, MethodArn, RouteTable, parse_method_arn

ARN = "arn:aws:execute-api:us-east-1:123456789012:abc123"


def routes(*pairs: tuple[str, str]) -> RouteTable:
    return RouteTable.from_json(json.dumps(dict(pairs)))


# ---------------------------------------------------------------- parsing


@pytest.mark.parametrize(
    "text",
    [
        "not json",
        '["GET /a"]',
        '{"GET": "s"}',  # no path
        '{"FETCH /a": "s"}',
        '{"GET a": "s"}',  # a path starts with "/"
        '{"GET /a": 1}',
        '{"GET /a?": "s"}',  # "?" is a one-character wildcard in an IAM resource
        '{"GET /a b": "s"}',
    ],
)
def test_a_malformed_route_table_is_a_configuration_error(text: str) -> None:
    with pytest.raises(ConfigurationError):
        RouteTable.from_json(text)


def test_an_empty_table_covers_no_route() -> None:
    for text in ("", "{}"):
        assert RouteTable.from_json(text).required_scope("GET", "/") is None


def test_methods_are_case_insensitive_and_any_means_every_method() -> None:
    rules = routes(("get /a", "read"), ("ANY /b", "any"), ("* /c", "star")).rules
    assert [r.method for r in rules] == ["GET", "*", "*"]
    assert rules[1].resources() == tuple(f"{m}/b" for m in HTTP_METHODS)
    assert rules[0].resources() == ("GET/a",)


# ---------------------------------------------------------------- first-match decisions


def test_the_first_matching_rule_decides_even_when_a_later_one_is_narrower() -> None:
    scopes = routes(("GET /v1/*", "read"), ("GET /v1/admin", "admin"))
    assert scopes.required_scope("GET", "/v1/admin") == "read"


def test_a_star_matches_any_run_of_characters_slashes_included() -> None:
    scopes = routes(("GET /v1/prices/*", "prices:read"))
    assert scopes.required_scope("GET", "/v1/prices/eu/today") == "prices:read"
    assert scopes.required_scope("GET", "/v1/prices/") == "prices:read"
    assert scopes.required_scope("GET", "/v1/prices") is None, "the '/' before the star is literal"
    assert scopes.required_scope("GET", "/v1/pricesX") is None


def test_a_route_no_rule_covers_is_none_and_an_open_rule_is_the_empty_scope() -> None:
    scopes = routes(("GET /self", ""), ("POST /v1/orders", "orders:write"))
    assert scopes.required_scope("GET", "/self") == ""
    assert scopes.required_scope("GET", "/v1/orders") is None, "another method"
    assert scopes.required_scope("POST", "/v1/orders/1") is None, "no star: the whole path"


def test_regex_characters_in_a_path_are_literal() -> None:
    scopes = routes(("GET /v1/a.b+(c)", "s"))
    assert scopes.required_scope("GET", "/v1/a.b+(c)") == "s"
    assert scopes.required_scope("GET", "/v1/aXb+(c)") is None


# ---------------------------------------------------------------- the cached policy


def test_a_policy_allows_the_rules_whose_scope_is_held_and_the_open_ones() -> None:
    scopes = routes(
        ("GET /v1/prices/*", "prices:read"), ("POST /v1/orders", "orders:write"), ("GET /self", "")
    )
    policy = scopes.policy_for(("prices:read",))
    assert policy.allow == ("GET/v1/prices/*", "GET/self")
    assert policy.deny == () and policy.exact


def test_a_lacking_rule_that_shadows_a_later_allowed_one_is_denied_explicitly() -> None:
    scopes = routes(("GET /v1/admin/*", "admin"), ("GET /v1/*", "read"), ("GET /other", "admin"))
    policy = scopes.policy_for(("read",))
    assert policy.allow == ("GET/v1/*",)
    assert policy.deny == ("GET/v1/admin/*",), "/other overlaps no allowed rule: nothing to deny"
    assert policy.exact


def test_a_policy_that_no_allow_and_deny_statements_can_say_is_not_exact() -> None:
    # /a/x is open, /a/* needs admin, /* is open: denying /a/* would also deny /a/x
    scopes = routes(("GET /a/x", ""), ("GET /a/*", "admin"), ("GET /*", ""))
    assert not scopes.policy_for(()).exact
    assert scopes.policy_for(("admin",)).exact, "holding admin, nothing is denied"


def test_rules_for_different_methods_never_overlap() -> None:
    get, post, anything = routes(("GET /a/*", "s"), ("POST /a/*", "t"), ("ANY /*/b", "u")).rules
    assert not get.overlaps(post)
    assert get.overlaps(anything) and anything.overlaps(post), "/a/b matches both"


@pytest.mark.parametrize(
    ("a", "b", "meet"),
    [
        ("/v1/*/x", "/v1/a/*", True),
        ("/v1/a", "/v1/b", False),
        ("/v1/*", "/v2/*", False),
        ("/*a", "/b*", True),  # "/ba"
        ("/a*", "/a", True),  # the star may be empty
        ("/a*b", "/ac", False),
    ],
)
def test_two_path_globs_overlap_exactly_when_one_path_matches_both(a: str, b: str, meet: bool) -> None:
    first, second = routes(("GET " + a, "s"), ("PUT " + b, "t")).rules
    first_any = routes(("ANY " + a, "s")).rules[0]
    assert first_any.overlaps(second) is meet
    assert second.overlaps(first_any) is meet
    assert not first.overlaps(second), "GET and PUT"


# ---------------------------------------------------------------- method ARNs


def test_a_method_arn_splits_into_prefix_method_and_path_and_back() -> None:
    parsed = parse_method_arn(f"{ARN}/prod/get/v1/prices/eu")
    assert parsed == MethodArn(f"{ARN}/prod", "GET", "/v1/prices/eu", "prod")
    assert parsed is not None and parsed.arn() == f"{ARN}/prod/GET/v1/prices/eu"
    assert MethodArn.parse(f"{ARN}/prod/POST") == MethodArn(f"{ARN}/prod", "POST", "/", "prod")


@pytest.mark.parametrize(
    "arn",
    [
        "arn:aws:lambda:us-east-1:123456789012:function:f",
        f"{ARN}/prod",
        "arn:aws:execute-api:us-east-1",
        "",
    ],
)
def test_what_is_not_an_execute_api_method_arn_is_none(arn: str) -> None:
    assert parse_method_arn(arn) is None
