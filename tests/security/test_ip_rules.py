"""Promises: an IP rule written in IPv4-mapped IPv6 form (``::ffff:a.b.c.d/n``) means the IPv4
network it maps, on the allow and the deny list, for keys created now and for records stored before."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest
from keysentry import aws
from keysentry.authorizer import Authorizer, Outcome, read_request
from keysentry.peppers import PepperSource
from keysentry.routes import RouteTable
from keysentry.store import KeyStore, to_item

from tests.integration.authz_helpers import event, with_source_ip

ROUTES = '{"GET /v1/prices/*": "prices:read"}'


@pytest.fixture
def authorizer(stack: Any) -> Authorizer:
    return Authorizer(
        KeyStore(stack.refs["KeysTable"]),
        PepperSource(stack.refs["PepperSecret"]),
        RouteTable.from_json(ROUTES),
        cache_ttl=0,
    )


def decide(authorizer: Authorizer, token: str, ip: str) -> tuple[Outcome, str]:
    request = read_request(with_source_ip(event("authorizer_rest_request_valid", token), ip))
    assert request is not None
    decision = authorizer.decide(request)
    return decision.outcome, decision.reason


DENIED = ("198.51.100.7", "::ffff:198.51.100.7")
ALLOWED = ("203.0.113.10", "::ffff:203.0.113.10")


def test_a_mapped_deny_cidr_is_stored_as_ipv4_and_denies_v4_and_mapped_sources(
    service: Any, authorizer: Authorizer
) -> None:
    issued = service.create(
        "acme", actor="ops", scopes=["prices:read"], deny_cidrs=["::ffff:198.51.100.0/120"]
    )
    assert issued.record.deny_cidrs == ("198.51.100.0/24",)
    for ip in DENIED:
        assert decide(authorizer, issued.token, ip) == (Outcome.DENY, "ip_denied"), ip
    for ip in ALLOWED:
        assert decide(authorizer, issued.token, ip)[0] is Outcome.ALLOW, ip


def test_a_mapped_allow_cidr_is_stored_as_ipv4_and_allows_only_its_network(
    service: Any, authorizer: Authorizer
) -> None:
    issued = service.create(
        "acme", actor="ops", scopes=["prices:read"], allow_cidrs=["::FFFF:203.0.113.0/120"]
    )
    assert issued.record.allow_cidrs == ("203.0.113.0/24",)
    for ip in ALLOWED:
        assert decide(authorizer, issued.token, ip)[0] is Outcome.ALLOW, ip
    for ip in DENIED:
        assert decide(authorizer, issued.token, ip) == (Outcome.DENY, "ip_not_allowed"), ip


def test_an_update_normalises_mapped_cidrs_too(service: Any) -> None:
    issued = service.create("acme", actor="ops", scopes=["prices:read"])
    updated = service.update(
        issued.record.kid,
        actor="ops",
        allow_cidrs=["::ffff:0:0/96"],
        deny_cidrs=["::ffff:198.51.100.7/128", "2001:db8::/32"],
    )
    assert updated.allow_cidrs == ("0.0.0.0/0",)
    assert updated.deny_cidrs == ("198.51.100.7/32", "2001:db8::/32")


@pytest.mark.parametrize("which", ["allow", "deny"])
def test_records_stored_before_the_fix_are_matched_as_ipv4(
    service: Any, authorizer: Authorizer, stack: Any, which: str
) -> None:
    issued = service.create("acme", actor="ops", scopes=["prices:read"])
    if which == "deny":
        old = replace(issued.record, deny_cidrs=("::ffff:198.51.100.0/120",))
    else:
        old = replace(issued.record, allow_cidrs=("::ffff:203.0.113.0/120",))
    aws.client("dynamodb").put_item(TableName=stack.refs["KeysTable"], Item=to_item(old))
    for ip in DENIED:
        assert decide(authorizer, issued.token, ip)[0] is Outcome.DENY, ip
    for ip in ALLOWED:
        assert decide(authorizer, issued.token, ip)[0] is Outcome.ALLOW, ip
