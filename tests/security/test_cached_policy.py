"""Promises about what API Gateway's cached copy of an authorizer answer can open.

A REST API (or an HTTP API in IAM mode) that caches the authorizer reuses one policy for every route
the same key calls, until the TTL ends. So the policy must decide every route as the authorizer
would, it must never be served to another source address, and a key that signs requests must never
get an Allow a gateway could replay.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import event, given, settings
from hypothesis import strategies as st
from keysentry.authorizer import Authorizer, Decision, Outcome, Request, Unauthorized, respond
from keysentry.model import KeyRecord, Status
from keysentry.peppers import PepperSource
from keysentry.routes import MethodArn, RouteTable
from keysentry.store import KeyStore

from functions.authorizer import handler
from tests.conftest import FakeClock, template
from tests.integration import authz_helpers
from tests.integration.authz_helpers import iam_effect, with_source_ip

PREFIX = "arn:aws:execute-api:us-east-1:123456789012:a1b2c3d4e5/prod"


# ---------------------------------------------------------------- the policy, route by route


def fresh_decision(table: RouteTable, scopes: tuple[str, ...], method: str, path: str) -> str:
    """The authorizer's own rule for a valid, live key: the first matching rule decides."""
    required = table.required_scope(method, path)
    return "Allow" if required is not None and (required == "" or required in scopes) else "Deny"


def the_policy(table: RouteTable, scopes: tuple[str, ...], method: str, path: str) -> dict[str, Any]:
    """What the authorizer answers for this key on this route (allowed, or denied for its route)."""
    authorizer = Authorizer(KeyStore("unused"), PepperSource("unused"), table, clock=lambda: 1_790_000_000)
    record = KeyRecord(
        kid="k" * 12,
        owner_id="acme",
        env="test",
        status=Status.ACTIVE,
        digest="d",
        pepper_version="1",
        created_at=1_790_000_000,
        rotation_days=90,
        rotate_after=1_797_776_000,
        scopes=scopes,
    )
    arn = MethodArn(PREFIX, method, path)
    request = Request("request", ("token",), "203.0.113.7", method, path, arn)
    if fresh_decision(table, scopes, method, path) == "Allow":
        decision = Decision(Outcome.ALLOW, "ok", record.kid, record)
    else:
        reason = "route_not_mapped" if table.required_scope(method, path) is None else "scope_missing"
        decision = Decision(Outcome.DENY, reason, record.kid, record)
    document: dict[str, Any] = respond(authorizer, request, decision)["policyDocument"]
    return document


SEGMENTS = ("v1", "prices", "internal", "admin", "x")
SCOPES = ("", "prices:read", "prices:admin", "orders:write")
paths = st.lists(st.sampled_from(SEGMENTS), min_size=0, max_size=4).map(lambda s: "/" + "/".join(s))
patterns = st.lists(st.sampled_from((*SEGMENTS, "*")), min_size=0, max_size=4).map(
    lambda s: "/" + "/".join(s)
)
rules = st.tuples(st.sampled_from(("GET", "POST", "ANY")), patterns, st.sampled_from(SCOPES))
tables = st.lists(rules, min_size=1, max_size=6, unique_by=lambda r: (r[0], r[1])).map(
    lambda rs: RouteTable.from_json(json.dumps({f"{m} {p}": s for m, p, s in rs}))
)
requests = st.tuples(st.sampled_from(("GET", "POST", "PUT")), paths)


@settings(max_examples=400, deadline=None)
@given(
    table=tables,
    scopes=st.lists(st.sampled_from(SCOPES[1:]), unique=True).map(tuple),
    asked=requests,
    probes=st.lists(requests, min_size=1, max_size=25),
)
def test_a_cached_policy_decides_every_route_as_the_authorizer_does(
    table: RouteTable,
    scopes: tuple[str, ...],
    asked: tuple[str, str],
    probes: list[tuple[str, str]],
) -> None:
    document = the_policy(table, scopes, *asked)
    exact = table.policy_for(scopes).exact
    event("exact" if exact else "not exact: the asked route only")
    for method, path in [asked, *probes]:
        served = iam_effect(document, f"{PREFIX}/{method}{path}")
        fresh = fresh_decision(table, scopes, method, path)
        if exact or (method, path) == asked:
            assert served == fresh, (method, path)
        else:
            assert served == "Deny" or fresh == "Allow", (method, path)  # never opens more


@pytest.mark.parametrize(
    ("routes", "scopes", "asked", "probe"),
    [
        # a narrower admin rule before a broader read rule
        (
            {"GET /v1/prices/internal/*": "prices:admin", "GET /v1/prices/*": "prices:read"},
            ("prices:read",),
            "GET/v1/prices/BTC",
            "GET/v1/prices/internal/book",
        ),
        # a catch-all after the routes that need a scope
        ({"GET /v1/admin/*": "admin", "ANY /v1/*": ""}, (), "GET/v1/prices", "GET/v1/admin/users"),
        # "ANY" must not become "*/v1/x", which also matches GET/admin/v1/x
        ({"ANY /v1/x": "", "GET /admin/*": "admin"}, (), "GET/v1/x", "GET/admin/v1/x"),
    ],
)
def test_a_policy_cached_for_one_route_does_not_open_a_route_the_authorizer_denies(
    routes: dict[str, str], scopes: tuple[str, ...], asked: str, probe: str
) -> None:
    table = RouteTable.from_json(json.dumps(routes))
    method, _, rest = asked.partition("/")
    probe_method, _, probe_path = probe.partition("/")
    assert fresh_decision(table, scopes, method, "/" + rest) == "Allow"
    assert fresh_decision(table, scopes, probe_method, "/" + probe_path) == "Deny"
    assert iam_effect(the_policy(table, scopes, method, "/" + rest), f"{PREFIX}/{probe}") == "Deny"


# ---------------------------------------------------------------- the real authorizer, in moto


class Monotonic:
    now = 1000.0

    def __call__(self) -> float:
        return self.now


def real_authorizer(stack: Any, clock: FakeClock, routes: dict[str, str], **kwargs: Any) -> Authorizer:
    return Authorizer(
        KeyStore(stack.refs["KeysTable"]),
        PepperSource(stack.refs["PepperSecret"]),
        RouteTable.from_json(json.dumps(routes)),
        clock=clock,
        monotonic=Monotonic(),
        kms_key_id=stack.refs["SigningSecretsKey"],
        nonce_table=stack.refs["NonceTable"],
        **kwargs,
    )


def rest_event(token: str, method: str, path: str, ip: str = "203.0.113.7") -> dict[str, Any]:
    doc = authz_helpers.event("authorizer_rest_request_valid", token)
    doc["httpMethod"], doc["path"], doc["methodArn"] = method, path, f"{PREFIX}/{method}{path}"
    return with_source_ip(doc, ip)


def answer(doc: dict[str, Any], lambda_context: Any) -> dict[str, Any]:
    try:
        return handler.lambda_handler(doc, lambda_context)
    except Unauthorized:
        return {"unauthorized": True}


@pytest.mark.parametrize("shape", ["rest", "http-iam"])
def test_the_authorizers_cached_answer_matches_its_fresh_answer_on_every_route(
    stack: Any,
    service: Any,
    clock: FakeClock,
    lambda_context: Any,
    monkeypatch: pytest.MonkeyPatch,
    shape: str,
) -> None:
    routes = {
        "GET /v1/prices/internal/*": "prices:admin",
        "GET /v1/prices/*": "prices:read",
        "POST /v1/orders": "orders:write",
        "GET /v1/admin/*": "admin",
        "ANY /v1/*": "",
    }
    authorizer = real_authorizer(stack, clock, routes, http_response="iam")
    monkeypatch.setattr(handler, "_authorizer", authorizer)
    issued = service.create("acme", actor="ops", env="test", scopes=["prices:read"])

    def ask(method: str, path: str) -> dict[str, Any]:
        if shape == "rest":
            return answer(rest_event(issued.token, method, path), lambda_context)
        doc = authz_helpers.event("authorizer_http_v2_iam", issued.token)
        doc["routeArn"], doc["rawPath"] = f"{PREFIX}/{method}{path}", path
        doc["requestContext"]["http"].update(method=method, path=path)
        return answer(doc, lambda_context)

    cached = ask("GET", "/v1/prices/BTC")["policyDocument"]
    probes = [
        ("GET", "/v1/prices/BTC"),
        ("GET", "/v1/prices/internal/book"),
        ("POST", "/v1/orders"),
        ("GET", "/v1/admin/users"),
        ("DELETE", "/v1/anything"),
        ("GET", "/elsewhere"),
    ]
    for method, path in probes:
        authorizer.cache.clear()
        fresh = ask(method, path)
        fresh_effect = (
            "Allow"
            if "policyDocument" in fresh
            and iam_effect(fresh["policyDocument"], f"{PREFIX}/{method}{path}") == "Allow"
            else "Deny"
        )
        assert iam_effect(cached, f"{PREFIX}/{method}{path}") == fresh_effect, (method, path)
    assert [iam_effect(cached, f"{PREFIX}/{m}{p}") for m, p in probes] == [
        "Allow", "Deny", "Deny", "Deny", "Allow", "Deny",
    ]  # fmt: skip


# ---------------------------------------------------------------- the gateway's cache key


def identity_sources(api: str) -> tuple[list[str], list[str]]:
    auth = template()["Resources"][api]["Properties"]["Auth"]["Authorizers"]["KeysentryAuthorizer"]
    identity = auth["Identity"]
    return list(identity.get("Headers", [])), list(identity.get("Context", []))


class CachingGateway:
    """A REST stage with the authorizer cache on, keyed as template.yaml tells API Gateway to."""

    def __init__(self, api: str, call: Callable[[dict[str, Any]], dict[str, Any]]) -> None:
        self.headers, self.context = identity_sources(api)
        self.call = call
        self.cache: dict[tuple[str, ...], dict[str, Any]] = {}
        self.invocations = 0

    def key(self, doc: dict[str, Any]) -> tuple[str, ...]:
        parts = [str(doc["headers"].get(name, "")) for name in self.headers]
        for path in self.context:  # "identity.sourceIp" -> requestContext.identity.sourceIp
            node: Any = doc["requestContext"]
            for step in path.split("."):
                node = node[step]
            parts.append(str(node))
        return tuple(parts)

    def request(self, doc: dict[str, Any]) -> str:
        key = self.key(doc)
        if key not in self.cache:
            self.invocations += 1
            self.cache[key] = self.call(doc)
        cached = self.cache[key]
        if "policyDocument" not in cached:
            return "Unauthorized"
        return iam_effect(cached["policyDocument"], doc["methodArn"])


def test_an_allow_cached_for_one_address_is_never_served_to_another(
    stack: Any, service: Any, clock: FakeClock, lambda_context: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(handler, "_authorizer", real_authorizer(stack, clock, {"GET /v1/prices/*": ""}))
    issued = service.create("acme", actor="ops", env="test", allow_cidrs=["203.0.113.0/24"])
    gateway = CachingGateway("SampleApi", lambda doc: answer(doc, lambda_context))
    assert gateway.request(rest_event(issued.token, "GET", "/v1/prices/BTC", ip="203.0.113.7")) == "Allow"
    assert gateway.request(rest_event(issued.token, "GET", "/v1/prices/BTC", ip="198.51.100.9")) == "Deny"
    assert gateway.invocations == 2


def test_every_authorizer_that_may_cache_keys_on_the_source_address_and_tells_the_authorizer() -> None:
    resources = template()["Resources"]
    env = resources["AuthorizerFunction"]["Properties"]["Environment"]["Variables"]
    for name, resource in resources.items():
        if resource["Type"] not in ("AWS::Serverless::Api", "AWS::Serverless::HttpApi"):
            continue
        for auth in resource["Properties"].get("Auth", {}).get("Authorizers", {}).values():
            identity = auth.get("Identity", {})
            ttl = identity.get("ReauthorizeEvery", 300)  # SAM's default caches for 300 s
            if ttl == 0:
                continue
            context = identity.get("Context", [])
            assert "identity.sourceIp" in context, name
            if resource["Type"] == "AWS::Serverless::HttpApi" and auth.get("EnableSimpleResponses"):
                assert {"httpMethod", "path"} <= set(context), name  # a simple answer names no route
            # the authorizer knows when a gateway may reuse its answers (and then refuses signed keys)
            assert env["GATEWAY_CACHE_TTL"] == ttl, name


# ---------------------------------------------------------------- signed keys


def test_a_signed_key_is_refused_when_the_gateway_may_cache_the_answer(
    stack: Any, service: Any, clock: FakeClock, lambda_context: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from keysentry.client import sign

    routes = {"POST /v1/orders": "orders:write"}
    issued = service.create("acme", actor="ops", env="test", scopes=["orders:write"], signing="hmac")
    body = b'{"qty": "1"}'

    def signed(nonce: str) -> dict[str, Any]:
        headers = sign(
            "POST", "/v1/orders", None, body, key=issued.token, secret=issued.signing_secret,
            timestamp_ms=clock.now * 1000, nonce=nonce,
        )  # fmt: skip
        doc = rest_event(issued.token, "POST", "/v1/orders")
        doc["headers"] = dict(headers)
        doc["multiValueHeaders"] = {k: [v] for k, v in headers.items()}
        doc["queryStringParameters"] = doc["multiValueQueryStringParameters"] = None
        return doc

    monkeypatch.setattr(handler, "_authorizer", real_authorizer(stack, clock, routes))
    uncached = answer(signed("n0nce-uncached-000001"), lambda_context)
    assert authz_helpers.effect(uncached) == "Allow"  # the same request passes when nothing caches

    monkeypatch.setattr(handler, "_authorizer", real_authorizer(stack, clock, routes, gateway_cache_ttl=300))
    cached = answer(signed("n0nce-cached-00000001"), lambda_context)
    assert authz_helpers.effect(cached) == "Deny"
    assert cached["policyDocument"]["Statement"][0]["Resource"] == [f"{PREFIX}/*"]


def test_the_refusal_of_a_signed_key_behind_a_cache_is_logged_with_its_reason(
    stack: Any, service: Any, clock: FakeClock, lambda_context: Any, monkeypatch: pytest.MonkeyPatch,
    capfd: pytest.CaptureFixture[str],
) -> None:  # fmt: skip
    routes = {"GET /v1/prices/*": ""}
    issued = service.create("acme", actor="ops", env="test", signing="hmac")
    monkeypatch.setattr(handler, "_authorizer", real_authorizer(stack, clock, routes, gateway_cache_ttl=60))
    answer(rest_event(issued.token, "GET", "/v1/prices/BTC"), lambda_context)
    assert '"reason":"signed_key_behind_gateway_cache"' in capfd.readouterr().out


def test_where_no_policy_can_be_exact_the_allow_names_only_the_route_asked_about() -> None:
    # public/* is open, the rest of prices/* needs admin, the rest of /v1 is open again: "allow
    # /v1/*, deny prices/*" would close public/*, and IAM cannot say "prices/* but not public/*"
    table = RouteTable.from_json(
        json.dumps({"GET /v1/prices/public/*": "", "GET /v1/prices/*": "admin", "GET /v1/*": ""})
    )
    assert not table.policy_for(()).exact
    document = the_policy(table, (), "GET", "/v1/orders")
    assert document["Statement"] == [
        {"Action": "execute-api:Invoke", "Effect": "Allow", "Resource": [f"{PREFIX}/GET/v1/orders"]}
    ]
    assert table.policy_for(("admin",)).exact


def test_a_route_rule_with_an_iam_wildcard_it_does_not_mean_is_refused() -> None:
    from keysentry.errors import ConfigurationError

    with pytest.raises(ConfigurationError):
        RouteTable.from_json('{"GET /v1/prices?": ""}')  # "?" would match any one character in IAM
