"""Promises about scanning: what a made-up key costs (the checksum is public, so a computed one
passes the offline checks) and the optional AWS WAF rate limit that caps it per source address."""

from __future__ import annotations

import re
from typing import Any

import pytest
from keysentry import aws, keyformat
from keysentry.authorizer import Authorizer, Outcome, read_request
from keysentry.peppers import PepperSource
from keysentry.routes import RouteTable
from keysentry.store import KeyStore

from tests.conftest import template
from tests.integration.authz_helpers import event


class Monotonic:
    now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def calls(stack: Any) -> list[str]:
    made: list[str] = []
    aws.client("dynamodb").meta.events.register("before-call", lambda model, **_: made.append(model.name))
    return made


def made_up(valid_checksum: bool) -> str:
    body = f"ks_live_{keyformat.new_kid()}{keyformat.random_base62(keyformat.SECRET_LEN)}"
    check = keyformat.checksum(body)
    if not valid_checksum:
        check = check[:-1] + ("0" if check[-1] != "0" else "1")
    return body + check


def test_a_made_up_key_with_a_computed_checksum_costs_one_getitem_then_is_negatively_cached(
    stack: Any, calls: list[str]
) -> None:
    mono = Monotonic()
    authorizer = Authorizer(
        KeyStore(stack.refs["KeysTable"]),
        PepperSource(stack.refs["PepperSecret"]),
        RouteTable.from_json('{"GET /v1/prices/*": ""}'),
        monotonic=mono,
    )

    def decide(token: str) -> str:
        request = read_request(event("authorizer_rest_request_valid", token))
        assert request is not None
        decision = authorizer.decide(request)
        assert decision.outcome is Outcome.UNAUTHORIZED
        return decision.reason

    fresh = [made_up(True) for _ in range(20)]
    assert {decide(token) for token in fresh} == {"unknown_key"}
    assert calls == ["GetItem"] * 20  # one strongly consistent read per made-up kid
    assert {decide(token) for token in fresh} == {"unknown_key"}
    assert len(calls) == 20  # a repeated kid is answered from the negative cache
    mono.now += 6
    decide(fresh[0])
    assert len(calls) == 21  # ...for 5 seconds
    assert {decide(made_up(False)) for _ in range(20)} == {"malformed_key"}
    assert len(calls) == 21  # a wrong checksum costs no I/O


def test_the_optional_waf_rate_limit_covers_both_api_stages_and_is_off_by_default() -> None:
    doc = template()
    parameter = doc["Parameters"]["RateLimitPerIp"]
    assert parameter["Default"] == "0"
    # CloudFormation refuses what WAF would refuse at deploy time (a limit under 10), before any change
    allowed = re.compile(parameter["AllowedPattern"])
    assert [v for v in ("0", "10", "100", "2000000") if allowed.fullmatch(v)] == ["0", "10", "100", "2000000"]
    assert not [v for v in ("1", "9", "-1", "01", "1e3", "") if allowed.fullmatch(v)]
    assert doc["Conditions"]["HasRateLimit"] == {
        "Fn::Not": [{"Fn::Equals": [{"Ref": "RateLimitPerIp"}, "0"]}]
    }
    acl = doc["Resources"]["RateLimitWebAcl"]
    assert acl["Type"] == "AWS::WAFv2::WebACL" and acl["Condition"] == "HasRateLimit"
    assert acl["Properties"]["Scope"] == "REGIONAL"
    assert acl["Properties"]["DefaultAction"] == {"Allow": {}}
    (rule,) = acl["Properties"]["Rules"]
    assert rule["Action"] == {"Block": {}}
    assert rule["Statement"]["RateBasedStatement"]["Limit"] == {"Ref": "RateLimitPerIp"}
    assert rule["Statement"]["RateBasedStatement"]["AggregateKeyType"] == "IP"
    associated = {}
    for name, resource in doc["Resources"].items():
        if resource["Type"] == "AWS::WAFv2::WebACLAssociation":
            # the sample API's also needs the sample API (SampleApis)
            assert resource["Condition"] == (
                "SampleApiRateLimited" if "Sample" in name else "HasRateLimit"
            ), name
            assert resource["Properties"]["WebACLArn"] == {"Fn::GetAtt": ["RateLimitWebAcl", "Arn"]}
            _, (prefix, stage) = resource["Properties"]["ResourceArn"]["Fn::Join"]
            associated[stage["Ref"]] = prefix["Fn::Sub"]
    assert set(associated) == {"SampleApi.Stage", "ManagementApi.Stage"}
    assert doc["Conditions"]["SampleApiRateLimited"] == {
        "Fn::And": [{"Condition": "HasRateLimit"}, {"Condition": "SampleApis"}]
    }
    assert all(":apigateway:" in arn and "/restapis/" in arn for arn in associated.values())
