"""The Lambda authorizer under moto, fed the files in events/: every shape and every decision."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest
from botocore.exceptions import ClientError
from keysentry import aws, keyformat
from keysentry.authorizer import Authorizer
from keysentry.peppers import PepperSource
from keysentry.plans import usage_identifier
from keysentry.routes import RouteTable
from keysentry.store import KeyStore

from functions.authorizer import handler
from tests.conftest import FakeClock, Monotonic
from tests.integration.authz_helpers import allowed_resources, effect, emitted_metrics, event, with_source_ip
from tests.integration.conftest import secret_part

ROUTES = (
    '{"GET /v1/prices": "prices:read", "GET /v1/prices/*": "prices:read", '
    '"POST /v1/orders": "orders:write", "GET /self": ""}'
)
PREFIX = "arn:aws:execute-api:us-east-1:123456789012:a1b2c3d4e5/prod"


@pytest.fixture
def authorizer(stack: Any, clock: FakeClock, mono: Monotonic, monkeypatch: pytest.MonkeyPatch) -> Authorizer:
    built = Authorizer(
        KeyStore(stack.refs["KeysTable"]),
        PepperSource(stack.refs["PepperSecret"]),
        RouteTable.from_json(ROUTES),
        cache_ttl=30,
        clock=clock,
        monotonic=mono,
    )
    monkeypatch.setattr(handler, "_authorizer", built)
    return built


@pytest.fixture
def invoke(authorizer: Authorizer, lambda_context: Any) -> Callable[[dict[str, Any]], dict[str, Any]]:
    def call(doc: dict[str, Any]) -> dict[str, Any]:
        return handler.lambda_handler(doc, lambda_context)

    return call


@pytest.fixture
def calls(authorizer: Authorizer) -> list[str]:
    """Every AWS API call made from here on, by operation name (botocore event hook)."""
    made: list[str] = []
    for service in ("dynamodb", "secretsmanager", "kms", "sns", "events", "sqs"):
        aws.client(service).meta.events.register("before-call", lambda model, **_: made.append(model.name))
    return made


def key(service: Any, **kwargs: Any) -> Any:
    kwargs.setdefault("scopes", ["prices:read"])
    return service.create("acme", actor="ops", env="test", **kwargs)


# ---------------------------------------------------------------- shapes


def test_rest_request_with_a_valid_key_allows_exactly_the_routes_of_its_scopes(
    service: Any, invoke: Any
) -> None:
    issued = key(service, scopes=["prices:read"])
    response = invoke(event("authorizer_rest_request_valid", issued.token))
    assert response["principalId"] == issued.record.kid
    assert allowed_resources(response) == sorted(
        [f"{PREFIX}/GET/v1/prices", f"{PREFIX}/GET/v1/prices/*", f"{PREFIX}/GET/self"]
    )
    context = response["context"]
    assert context["key_id"] == issued.record.kid and context["owner_id"] == "acme"
    assert context["scopes"] == "prices:read" and context["status"] == "active"
    assert context["rotate_in_seconds"] == issued.record.rotate_after - issued.record.created_at
    assert all(isinstance(v, str | int | bool) for v in context.values())


def test_a_key_with_two_scopes_is_allowed_the_routes_of_both(service: Any, invoke: Any) -> None:
    issued = key(service, scopes=["prices:read", "orders:write"])
    response = invoke(event("authorizer_rest_request_wrong_scope", issued.token))
    assert f"{PREFIX}/POST/v1/orders" in allowed_resources(response)
    assert f"{PREFIX}/GET/v1/prices/*" in allowed_resources(response)


def test_a_remembered_allow_answers_each_api_with_its_own_arns_and_the_current_countdown(
    service: Any, invoke: Any, clock: FakeClock
) -> None:
    # Given an Allow remembered for one API's stage
    issued = key(service, scopes=["prices:read"])
    first = invoke(event("authorizer_rest_request_valid", issued.token))
    # When the same key asks for the same route of a stage of the same name on another API, later
    other = PREFIX.replace("a1b2c3d4e5", "f6g7h8i9j0")
    doc = event("authorizer_rest_request_valid", issued.token)
    doc["methodArn"] = doc["methodArn"].replace(PREFIX, other)
    clock.advance(5)
    second = invoke(doc)
    again = invoke(event("authorizer_rest_request_valid", issued.token))
    # Then each answer names its own API's routes, and the countdown is as of each request
    assert allowed_resources(second) == sorted(
        [f"{other}/GET/v1/prices", f"{other}/GET/v1/prices/*", f"{other}/GET/self"]
    )
    assert allowed_resources(again) == allowed_resources(first)
    assert again["context"]["rotate_in_seconds"] == first["context"]["rotate_in_seconds"] - 5
    assert again["context"] is not first["context"]


@pytest.mark.parametrize(
    "name", ["authorizer_rest_request_bearer", "authorizer_rest_request_multivalue", "authorizer_rest_token"]
)
def test_the_key_is_found_in_any_header_form(service: Any, invoke: Any, name: str) -> None:
    issued = key(service)
    assert effect(invoke(event(name, issued.token))) == "Allow"


def test_header_names_in_any_case(service: Any, invoke: Any) -> None:
    issued = key(service)
    doc = event("authorizer_rest_request_missing_key")
    doc["headers"]["X-API-KEY"] = issued.token
    assert effect(invoke(doc)) == "Allow"
    doc = event("authorizer_rest_request_missing_key")
    doc["headers"]["authorization"] = f"bearer {issued.token}"
    assert effect(invoke(doc)) == "Allow"


def test_two_different_keys_in_one_request_are_refused(service: Any, invoke: Any) -> None:
    first, second = key(service), key(service)
    doc = event("authorizer_rest_request_valid", first.token)
    doc["multiValueHeaders"]["x-api-key"] = [first.token, second.token]
    with pytest.raises(Exception, match=r"^Unauthorized$"):
        invoke(doc)
    doc = event("authorizer_http_v2_simple", first.token)
    doc["headers"]["x-api-key"] = f"{first.token},{second.token}"
    assert invoke(doc) == {"isAuthorized": False}


def test_http_api_simple_response(service: Any, invoke: Any) -> None:
    issued = key(service)
    response = invoke(event("authorizer_http_v2_simple", issued.token))
    assert response["isAuthorized"] is True
    assert response["context"]["key_id"] == issued.record.kid
    assert invoke(event("authorizer_http_v2_simple", keyformat.generate("test").token)) == {
        "isAuthorized": False
    }


def test_an_http_api_on_a_named_stage_is_decided_by_its_routes(service: Any, invoke: Any) -> None:
    """A named stage leads rawPath (``/prod/v1/...``): the routes are still the API's own."""
    issued = service.create("acme", actor="ops", env="test", scopes=["prices:read"])

    def on_prod(method: str, path: str) -> dict[str, Any]:
        doc = event("authorizer_http_v2_simple", issued.token)
        doc["rawPath"] = doc["requestContext"]["http"]["path"] = f"/prod{path}"
        doc["requestContext"]["http"]["method"] = method
        doc["routeArn"] = f"{PREFIX}/{method}{path}"
        return invoke(doc)

    assert on_prod("GET", "/v1/prices/BTC")["isAuthorized"] is True
    assert on_prod("POST", "/v1/orders") == {"isAuthorized": False}  # scope_missing, not a stage mix-up


def test_http_api_iam_response(service: Any, invoke: Any, authorizer: Authorizer) -> None:
    authorizer.http_response = "iam"
    issued = key(service)
    response = invoke(event("authorizer_http_v2_iam", issued.token))
    assert f"{PREFIX}/GET/v1/prices/*" in allowed_resources(response)
    denied = invoke(event("authorizer_http_v2_iam", keyformat.generate("test").token))
    assert effect(denied) == "Deny"


def test_rest_usage_identifier_is_the_keys_identifier_never_the_key(
    service: Any, invoke: Any, authorizer: Authorizer
) -> None:
    issued = key(service)
    assert "usageIdentifierKey" not in invoke(event("authorizer_rest_request_valid", issued.token))
    authorizer.usage_identifier = True
    response = invoke(event("authorizer_rest_request_valid", issued.token))
    assert response["usageIdentifierKey"] == usage_identifier(issued.record.kid)
    assert secret_part(issued.token) not in json.dumps(response)  # nowhere in the answer
    cached = invoke(event("authorizer_rest_request_valid", issued.token))  # from the decision memo
    assert cached["usageIdentifierKey"] == usage_identifier(issued.record.kid)


def test_http_apis_get_no_usage_identifier(service: Any, invoke: Any, authorizer: Authorizer) -> None:
    authorizer.usage_identifier = True
    issued = key(service)
    assert "usageIdentifierKey" not in invoke(event("authorizer_http_v2_iam", issued.token))


def test_response_settings_come_from_the_template_environment(
    stack: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AUTHORIZER_HTTP_RESPONSE", "iam")
    monkeypatch.setenv("USAGE_IDENTIFIER", "true")
    configured = Authorizer.from_env()
    assert (configured.http_response, configured.usage_identifier) == ("iam", True)
    monkeypatch.delenv("AUTHORIZER_HTTP_RESPONSE")
    monkeypatch.setenv("USAGE_IDENTIFIER", "false")
    defaults = Authorizer.from_env()
    assert (defaults.http_response, defaults.usage_identifier) == ("simple", False)


# ---------------------------------------------------------------- 401s


@pytest.mark.parametrize("name", ["authorizer_rest_request_missing_key", "authorizer_rest_request_malformed"])
def test_missing_or_malformed_key_is_401(invoke: Any, name: str) -> None:
    with pytest.raises(Exception, match=r"^Unauthorized$"):
        invoke(event(name))


def test_malformed_or_mis_checksummed_tokens_make_zero_aws_calls(
    service: Any, invoke: Any, calls: list[str]
) -> None:
    issued = key(service)
    invoke(event("authorizer_rest_request_valid", issued.token))  # warm: clients exist
    calls.clear()
    token = issued.token
    for bad in [
        token[:-1] + ("x" if token[-1] != "x" else "y"),
        token[:-2],
        "ks_live_" + "A" * 50,
        "",
        "Bearer",
    ]:
        with pytest.raises(Exception, match=r"^Unauthorized$"):
            invoke(event("authorizer_rest_request_valid", bad))
    assert calls == []


def test_unknown_key_is_401_and_negatively_cached(invoke: Any, calls: list[str], mono: Monotonic) -> None:
    unknown = keyformat.generate("test").token
    for _ in range(3):
        with pytest.raises(Exception, match=r"^Unauthorized$"):
            invoke(event("authorizer_rest_request_valid", unknown))
    assert calls.count("GetItem") == 1
    mono.now += 10
    with pytest.raises(Exception, match=r"^Unauthorized$"):
        invoke(event("authorizer_rest_request_valid", unknown))
    assert calls.count("GetItem") == 2


def test_right_kid_with_a_wrong_secret_is_401(service: Any, invoke: Any) -> None:
    issued = key(service)
    forged = keyformat.generate("test", kid=issued.record.kid).token
    with pytest.raises(Exception, match=r"^Unauthorized$"):
        invoke(event("authorizer_rest_request_valid", forged))


# ---------------------------------------------------------------- status and time


def test_revoked_key_is_denied_within_the_cache_ttl_and_at_once_when_flushed(
    service: Any, invoke: Any, authorizer: Authorizer, mono: Monotonic
) -> None:
    issued = key(service)
    assert effect(invoke(event("authorizer_rest_request_revoked", issued.token))) == "Allow"
    service.revoke(issued.record.kid, actor="sec", reason="leaked")
    mono.now += authorizer.cache.ttl + 0.001
    assert effect(invoke(event("authorizer_rest_request_revoked", issued.token))) == "Deny"

    other = key(service)
    assert effect(invoke(event("authorizer_rest_request_revoked", other.token))) == "Allow"
    service.revoke(other.record.kid, actor="sec", reason="leaked")
    authorizer.cache.clear()
    assert effect(invoke(event("authorizer_rest_request_revoked", other.token))) == "Deny"


def test_with_the_cache_bypassed_a_revocation_is_seen_on_the_next_request(
    service: Any, invoke: Any, authorizer: Authorizer
) -> None:
    authorizer.cache.ttl = 0
    issued = key(service)
    assert effect(invoke(event("authorizer_rest_request_valid", issued.token))) == "Allow"
    service.revoke(issued.record.kid, actor="sec", reason="leaked")
    assert effect(invoke(event("authorizer_rest_request_valid", issued.token))) == "Deny"


@pytest.mark.parametrize("action", ["suspend", "revoke"])
def test_suspended_and_revoked_keys_are_denied(service: Any, invoke: Any, action: str) -> None:
    issued = key(service)
    getattr(service, action)(issued.record.kid, actor="ops", reason="r")
    assert effect(invoke(event("authorizer_rest_request_valid", issued.token))) == "Deny"


def test_an_expired_key_is_denied(service: Any, invoke: Any, clock: FakeClock) -> None:
    issued = key(service, expires_in_days=1)
    assert effect(invoke(event("authorizer_rest_request_valid", issued.token))) == "Allow"
    clock.advance(days=1)
    handler._authorizer.cache.clear()  # type: ignore[union-attr]
    assert effect(invoke(event("authorizer_rest_request_valid", issued.token))) == "Deny"


def test_a_rotated_key_works_during_grace_then_is_denied(service: Any, invoke: Any, clock: FakeClock) -> None:
    issued = key(service)
    successor = service.rotate(issued.record.kid, actor="ops", grace_days=7)
    response = invoke(event("authorizer_rest_request_valid", issued.token))
    assert effect(response) == "Allow"
    assert response["context"]["status"] == "rotating"
    assert response["context"]["successor"] == successor.record.kid
    assert response["context"]["rotate_in_seconds"] == 7 * 86_400
    assert effect(invoke(event("authorizer_rest_request_valid", successor.token))) == "Allow"
    clock.advance(days=7)
    assert effect(invoke(event("authorizer_rest_request_valid", issued.token))) == "Deny"
    assert effect(invoke(event("authorizer_rest_request_valid", successor.token))) == "Allow"


# ---------------------------------------------------------------- IP rules and scopes


def test_a_source_ip_outside_the_allow_list_is_denied(service: Any, invoke: Any) -> None:
    issued = key(service, allow_cidrs=["203.0.113.0/24"])
    assert effect(invoke(event("authorizer_rest_request_valid", issued.token))) == "Allow"
    assert effect(invoke(event("authorizer_rest_request_wrong_ip", issued.token))) == "Deny"


def test_the_deny_list_beats_the_allow_list(service: Any, invoke: Any) -> None:
    issued = key(service, allow_cidrs=["203.0.113.0/24"], deny_cidrs=["203.0.113.10/32"])
    assert effect(invoke(event("authorizer_rest_request_valid", issued.token))) == "Deny"
    assert (
        effect(invoke(with_source_ip(event("authorizer_rest_request_valid", issued.token), "203.0.113.11")))
        == "Allow"
    )


@pytest.mark.parametrize(
    "allow, deny, expected",
    [
        (["2001:db8:1234::/48"], [], "Allow"),
        (["2001:db8:9999::/48"], [], "Deny"),
        (["203.0.113.0/24"], [], "Deny"),  # a v4 allow list does not admit a v6 caller
        (["203.0.113.0/24", "2001:db8::/32"], [], "Allow"),
        ([], ["2001:db8:1234::42/128"], "Deny"),
        ([], ["10.0.0.0/8"], "Allow"),
    ],
)
def test_an_ipv6_source_against_v4_and_v6_cidrs(
    service: Any, invoke: Any, allow: list[str], deny: list[str], expected: str
) -> None:
    issued = key(service, allow_cidrs=allow, deny_cidrs=deny)
    assert effect(invoke(event("authorizer_rest_request_ipv6", issued.token))) == expected


def test_an_ipv4_mapped_ipv6_source_matches_v4_rules(service: Any, invoke: Any) -> None:
    issued = key(service, allow_cidrs=["203.0.113.0/24"])
    doc = with_source_ip(event("authorizer_rest_request_valid", issued.token), "::ffff:203.0.113.10")
    assert effect(invoke(doc)) == "Allow"


def test_ip_rules_without_a_source_ip_fail_closed(service: Any, invoke: Any) -> None:
    issued = key(service, allow_cidrs=["0.0.0.0/0"])
    assert effect(invoke(event("authorizer_rest_token", issued.token))) == "Deny"


def test_a_route_outside_the_keys_scopes_is_denied(service: Any, invoke: Any) -> None:
    issued = key(service, scopes=["prices:read"])
    doc = event("authorizer_rest_request_wrong_scope", issued.token)
    response = invoke(doc)
    assert effect(response, doc["methodArn"]) == "Deny"
    assert effect(response, f"{PREFIX}/GET/v1/prices/BTC") == "Allow"  # a cached copy serves the rest


def test_a_route_no_rule_covers_is_denied(service: Any, invoke: Any) -> None:
    issued = key(service, scopes=["prices:read"])
    doc = event("authorizer_rest_request_valid", issued.token)
    doc["methodArn"] = f"{PREFIX}/DELETE/v1/prices/BTC"
    doc["httpMethod"] = "DELETE"
    assert effect(invoke(doc), doc["methodArn"]) == "Deny"


# ---------------------------------------------------------------- failures fail closed


def test_a_dynamodb_failure_never_allows(
    service: Any, invoke: Any, authorizer: Authorizer, monkeypatch: pytest.MonkeyPatch
) -> None:
    issued = key(service)

    def throttled(kid: str) -> None:
        raise ClientError({"Error": {"Code": "ThrottlingException", "Message": "slow down"}}, "GetItem")

    monkeypatch.setattr(authorizer.store, "get_item", throttled)
    with pytest.raises(RuntimeError):
        invoke(event("authorizer_rest_request_valid", issued.token))
    assert invoke(event("authorizer_http_v2_simple", issued.token)) == {"isAuthorized": False}


def test_a_bad_record_never_allows(
    service: Any, invoke: Any, authorizer: Authorizer, monkeypatch: pytest.MonkeyPatch
) -> None:
    issued = key(service)
    item = service.store.get_item(issued.record.kid)
    del item["status"]
    monkeypatch.setattr(authorizer.store, "get_item", lambda kid: item)
    with pytest.raises(RuntimeError):
        invoke(event("authorizer_rest_request_valid", issued.token))


@pytest.mark.parametrize(
    ("name", "value"), [("ROUTE_SCOPES", "{not json"), ("PLANS", "{not json"), ("DEFAULT_PLAN", "gold")]
)
def test_a_missing_configuration_fails_closed(
    name: str, value: str, service: Any, lambda_context: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    issued = key(service)
    monkeypatch.setattr(handler, "_authorizer", None)
    monkeypatch.setenv(name, value)
    with pytest.raises(RuntimeError):
        handler.lambda_handler(event("authorizer_rest_request_valid", issued.token), lambda_context)
    assert handler.lambda_handler(event("authorizer_http_v2_simple", issued.token), lambda_context) == {
        "isAuthorized": False
    }


def test_an_unknown_event_shape_is_401(invoke: Any) -> None:
    with pytest.raises(Exception, match=r"^Unauthorized$"):
        invoke({"hello": "world"})


# ---------------------------------------------------------------- usage, pepper, metrics


def test_last_used_is_kept_within_an_hour_without_a_write_per_request(
    service: Any, invoke: Any, calls: list[str], clock: FakeClock
) -> None:
    issued = key(service)
    for _ in range(5):
        invoke(event("authorizer_rest_request_valid", issued.token))
        clock.advance(60)
    assert calls.count("UpdateItem") == 1
    assert service.get(issued.record.kid).last_used_at is not None
    clock.advance(3600)
    invoke(event("authorizer_rest_request_valid", issued.token))
    assert calls.count("UpdateItem") == 2
    assert service.get(issued.record.kid).last_used_at == clock()


def test_a_key_under_an_old_pepper_verifies_and_is_rehashed(service: Any, invoke: Any, stack: Any) -> None:
    import json

    issued = key(service)
    secret_id = stack.refs["PepperSecret"]
    sm = aws.client("secretsmanager")
    doc = json.loads(sm.get_secret_value(SecretId=secret_id)["SecretString"])
    doc.update({"2": "n" * 64, "current": "2"})
    sm.put_secret_value(SecretId=secret_id, SecretString=json.dumps(doc))
    handler._authorizer.peppers._peppers = None  # type: ignore[union-attr]  # a new container
    assert effect(invoke(event("authorizer_rest_request_valid", issued.token))) == "Allow"
    record = service.get(issued.record.kid)
    assert record.pepper_version == "2" and record.digest != issued.record.digest
    assert effect(invoke(event("authorizer_rest_request_valid", issued.token))) == "Allow"


def test_decisions_are_counted_by_outcome_and_reason_never_by_key(
    service: Any, invoke: Any, capfd: pytest.CaptureFixture[str]
) -> None:
    issued = key(service)
    invoke(event("authorizer_rest_request_valid", issued.token))
    invoke(event("authorizer_rest_request_wrong_scope", issued.token))
    docs = emitted_metrics(capfd.readouterr().out)
    assert [(d["outcome"], d["reason"], d["Decision"]) for d in docs] == [
        ("allow", "ok", [1.0]),
        ("deny", "scope_missing", [1.0]),
    ]
    for d in docs:
        dimensions = d["_aws"]["CloudWatchMetrics"][0]["Dimensions"][0]
        assert "key_id" not in dimensions and issued.record.kid not in str(dimensions)
