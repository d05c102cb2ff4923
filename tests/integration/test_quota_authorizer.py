"""The authorizer and plans: a key the usage pipeline marked as past its quota is refused
(quota_exceeded) until the period ends, from the record it already holds; the backend learns the
key's plan and the metadata its owner named for it."""

from __future__ import annotations

import json
from typing import Any

import pytest
from aws_lambda_powertools.utilities.data_classes import APIGatewayProxyEventV2
from keysentry import aws
from keysentry.authorizer import Authorizer, ManagementApi
from keysentry.model import CONTEXT_METADATA_PREFIX

from functions.authorizer import handler
from tests.conftest import T0, FakeClock, Monotonic
from tests.integration.authz_helpers import effect, emitted_metrics, event, install_authorizer
from tests.integration.usage_helpers import mark_exhausted

ROUTES = '{"GET /v1/prices": "prices:read", "GET /v1/prices/*": "prices:read"}'
DAY = 86_400
PERIOD_END = T0 - T0 % DAY + DAY  # the free plan's day ends at midnight UTC


@pytest.fixture
def authorizer(stack: Any, clock: FakeClock, mono: Monotonic, monkeypatch: pytest.MonkeyPatch) -> Authorizer:
    built: Authorizer = install_authorizer(stack, clock, ROUTES, monkeypatch, monotonic=mono)
    return built


def allowed(response: dict[str, Any]) -> bool:
    if "isAuthorized" in response:
        return bool(response["isAuthorized"])
    return effect(response) == "Allow"


SHAPES = ["authorizer_rest_request_valid", "authorizer_rest_token", "authorizer_http_v2_simple"]


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.usefixtures("authorizer")
def test_a_key_past_its_quota_is_refused_until_the_period_ends(
    shape: str, service: Any, stack: Any, clock: FakeClock, lambda_context: Any, capfd: Any
) -> None:
    issued = service.create("acme", actor="ops", env="test", plan="free", scopes=["prices:read"])
    mark_exhausted(stack, issued.record.kid, PERIOD_END)
    capfd.readouterr()
    assert not allowed(handler.lambda_handler(event(shape, issued.token), lambda_context))
    docs = emitted_metrics(capfd.readouterr().out)
    assert [(d["outcome"], d["reason"]) for d in docs] == [("deny", "quota_exceeded")]
    clock.now = PERIOD_END - 1
    assert not allowed(handler.lambda_handler(event(shape, issued.token), lambda_context))
    clock.now = PERIOD_END  # the next period: the same record, held in the container, allows again
    assert allowed(handler.lambda_handler(event(shape, issued.token), lambda_context))


def test_a_remembered_allow_gives_way_to_a_mark_once_the_cache_ttl_has_passed(
    service: Any, stack: Any, authorizer: Authorizer, mono: Monotonic, lambda_context: Any
) -> None:
    issued = service.create("acme", actor="ops", env="test", plan="free", scopes=["prices:read"])
    doc = event("authorizer_rest_request_valid", issued.token)
    assert allowed(handler.lambda_handler(doc, lambda_context))
    mark_exhausted(stack, issued.record.kid, PERIOD_END)
    # Within the TTL the container answers from the record it read before the mark: part of the
    # bound on requests past the quota (docs/plans.md).
    assert allowed(handler.lambda_handler(doc, lambda_context))
    mono.now += authorizer.cache.ttl
    assert not allowed(handler.lambda_handler(doc, lambda_context))


def test_the_quota_check_reads_only_the_record_the_authorizer_holds(
    service: Any, stack: Any, authorizer: Authorizer, lambda_context: Any
) -> None:
    warm = service.create("acme", actor="ops", env="test", scopes=["prices:read"])
    handler.lambda_handler(event("authorizer_rest_request_valid", warm.token), lambda_context)  # the pepper
    issued = service.create("acme", actor="ops", env="test", plan="free", scopes=["prices:read"])
    mark_exhausted(stack, issued.record.kid, PERIOD_END)
    made: list[str] = []
    for name in ("dynamodb", "secretsmanager", "kms"):
        aws.client(name).meta.events.register("before-call", lambda model, **_: made.append(model.name))
    doc = event("authorizer_http_v2_simple", issued.token)
    assert handler.lambda_handler(doc, lambda_context) == {"isAuthorized": False}
    assert made == ["GetItem"]  # the key's record, which every decision reads
    assert handler.lambda_handler(doc, lambda_context) == {"isAuthorized": False}
    assert made == ["GetItem"]


# ---------------------------------------------------------------- the context


def test_the_backend_learns_the_keys_plan_and_the_metadata_its_owner_named_for_it(
    service: Any, authorizer: Authorizer, lambda_context: Any
) -> None:
    metadata = {"ctx_tier": "gold", "ctx_region": "eu-west-1", "team": "billing", "ctx.odd": "x"}
    issued = service.create(
        "acme", actor="ops", env="test", plan="pro", scopes=["prices:read"], metadata=metadata
    )
    answer = handler.lambda_handler(event("authorizer_http_v2_simple", issued.token), lambda_context)
    # what API Gateway hands the backend of an HTTP API: the context under authorizer.lambda
    forwarded = event("authorizer_http_v2_simple", issued.token)
    forwarded["requestContext"]["authorizer"] = {"lambda": answer["context"]}
    seen = APIGatewayProxyEventV2(forwarded).request_context.authorizer.get_lambda
    assert seen["plan"] == "pro" and seen["key_id"] == issued.record.kid
    assert {k: v for k, v in seen.items() if k.startswith(CONTEXT_METADATA_PREFIX)} == {
        "ctx_tier": "gold",
        "ctx_region": "eu-west-1",
    }
    assert "team" not in seen and "ctx.odd" not in seen
    from functions.sample_backend import handler as backend

    echoed = json.loads(backend.lambda_handler(forwarded, lambda_context)["body"])["caller"]
    assert (echoed["plan"], echoed["ctx_tier"], echoed["ctx_region"]) == ("pro", "gold", "eu-west-1")
    rest = handler.lambda_handler(event("authorizer_rest_request_valid", issued.token), lambda_context)
    assert rest["context"] == answer["context"] | {"rotate_in_seconds": rest["context"]["rotate_in_seconds"]}


def test_a_key_without_a_plan_is_on_the_deployments_default_in_the_context(
    service: Any, stack: Any, clock: FakeClock, lambda_context: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    issued = service.create("acme", actor="ops", env="test", scopes=["prices:read"])
    aws.client("dynamodb").update_item(  # a key from before plans were kept
        TableName=stack.refs["KeysTable"],
        Key={"pk": {"S": issued.record.kid}, "sk": {"S": "KEY"}},
        UpdateExpression="REMOVE #plan",
        ExpressionAttributeNames={"#plan": "plan"},
    )
    install_authorizer(stack, clock, ROUTES, monkeypatch, default_plan="free")
    answer = handler.lambda_handler(event("authorizer_http_v2_simple", issued.token), lambda_context)
    assert answer["context"]["plan"] == "free"
    monkeypatch.setenv("DEFAULT_PLAN", "pro")
    monkeypatch.setenv("ROUTE_SCOPES", ROUTES)
    assert Authorizer.from_env().contexts.default_plan == "pro"


def test_an_owner_cannot_name_more_context_entries_than_the_bound(service: Any) -> None:
    from keysentry.errors import ValidationError

    many = {f"ctx_{n}": "v" for n in range(11)}
    with pytest.raises(ValidationError, match="at most 10 metadata entries may start with 'ctx_'"):
        service.create("acme", actor="ops", metadata=many)
    with pytest.raises(ValidationError, match="letters, digits and '_' only"):
        service.create("acme", actor="ops", metadata={"ctx_a.b": "v"})


def test_a_key_moved_to_another_plan_is_no_longer_held_to_the_old_plans_quota(
    authorizer: Authorizer, service: Any, stack: Any, lambda_context: Any, mono: Monotonic
) -> None:
    """The mark was for the free plan's day; on pro the key counts afresh (and the usage pipeline
    marks it again if it is past pro's quota too)."""
    issued = service.create("acme", actor="ops", env="test", plan="free", scopes=["prices:read"])
    mark_exhausted(stack, issued.record.kid, PERIOD_END)
    doc = event("authorizer_rest_request_valid", issued.token)
    assert not allowed(handler.lambda_handler(doc, lambda_context))
    service.update(issued.record.kid, actor="ops", plan="pro")
    assert service.get(issued.record.kid).quota_exhausted_until is None
    mono.now += authorizer.cache.ttl  # past the container's copy of the record
    assert allowed(handler.lambda_handler(doc, lambda_context))


def test_a_key_refused_for_its_quota_hands_the_refusal_to_its_successor(
    authorizer: Authorizer, service: Any, stack: Any, clock: FakeClock, lambda_context: Any
) -> None:
    """Rotating (a holder with keys:rotate-self can) is no way out of the period's refusal."""
    issued = service.create("acme", actor="ops", env="test", plan="free", scopes=["prices:read"])
    mark_exhausted(stack, issued.record.kid, PERIOD_END)
    rotated = service.rotate(issued.record.kid, actor="ops")
    assert rotated.record.quota_exhausted_until == PERIOD_END
    doc = event("authorizer_rest_request_valid", rotated.token)
    assert not allowed(handler.lambda_handler(doc, lambda_context))
    clock.now = PERIOD_END
    assert allowed(handler.lambda_handler(doc, lambda_context))


SELF_ROUTES = (
    '{"GET /v1/prices": "prices:read", "GET /v1/prices/*": "prices:read", "GET /self": "",'
    ' "GET /self/usage": "", "POST /self/rotate": "keys:rotate-self", "POST /self/successor": "",'
    ' "POST /self/revoke": ""}'
)


def request_to(token: str, method: str, path: str) -> dict[str, Any]:
    """A REST request event for ``method path`` on the stage (the management API's shape)."""
    doc = event("authorizer_rest_request_valid", token)
    doc["methodArn"] = f"arn:aws:execute-api:us-east-1:123456789012:a1b2c3d4e5/prod/{method}{path}"
    doc["resource"] = doc["path"] = doc["requestContext"]["resourcePath"] = path
    doc["httpMethod"] = doc["requestContext"]["httpMethod"] = method
    doc["requestContext"]["path"] = "/prod" + path
    doc["pathParameters"] = {}
    return doc


def test_a_key_refused_for_its_quota_still_reaches_its_own_routes_and_no_other(
    service: Any, stack: Any, clock: FakeClock, mono: Monotonic, lambda_context: Any, monkeypatch: Any
) -> None:
    """Its holder reads when the refusal ends, revokes a drained key, collects a successor; the
    policy a gateway may cache for it allows that one route, so no cached copy opens the API."""
    management = ManagementApi(api_id="a1b2c3d4e5")  # the API these requests are to
    install_authorizer(stack, clock, SELF_ROUTES, monkeypatch, monotonic=mono, management_api=management)
    scopes = ["prices:read", "keys:rotate-self"]
    issued = service.create("acme", actor="ops", env="test", plan="free", scopes=scopes)
    mark_exhausted(stack, issued.record.kid, PERIOD_END)
    prices = "arn:aws:execute-api:us-east-1:123456789012:a1b2c3d4e5/prod/GET/v1/prices"
    for method, path in [
        ("GET", "/self"),
        ("GET", "/self/usage"),
        ("POST", "/self/rotate"),
        ("POST", "/self/successor"),
        ("POST", "/self/revoke"),
    ]:
        response = handler.lambda_handler(request_to(issued.token, method, path), lambda_context)
        asked = f"arn:aws:execute-api:us-east-1:123456789012:a1b2c3d4e5/prod/{method}{path}"
        assert effect(response, asked) == "Allow", path
        assert effect(response, prices) != "Allow", path  # the cached copy allows no protected route
    response = handler.lambda_handler(request_to(issued.token, "GET", "/v1/prices"), lambda_context)
    assert effect(response) == "Deny"


def test_a_double_quote_in_the_path_is_refused_before_any_key_is_looked_at(
    authorizer: Authorizer, service: Any, lambda_context: Any, capfd: Any
) -> None:
    """A quote is never legal in a URI, and it is the one character that could break out of its
    field in the JSON access log (and so out of the count)."""
    issued = service.create("acme", actor="ops", env="test", scopes=["prices:read"])
    for path in ('/v1/prices/A":B', '/v1/prices/A"B'):
        capfd.readouterr()
        assert effect(handler.lambda_handler(request_to(issued.token, "GET", path), lambda_context)) == "Deny"
        (decision,) = emitted_metrics(capfd.readouterr().out)
        assert decision["reason"] == "path_not_canonical"


@pytest.fixture
def free_by_default(stack: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DEFAULT_PLAN", "free")


def test_naming_the_plan_a_key_is_already_on_keeps_its_refusal(
    free_by_default: None, service: Any, stack: Any
) -> None:
    """A key from before plans is on the default: naming the default is no plan change."""
    kid = service.create("acme", actor="ops").record.kid
    aws.client("dynamodb").update_item(  # a key from before plans were kept: no plan on its record
        TableName=stack.refs["KeysTable"],
        Key={"pk": {"S": kid}, "sk": {"S": "KEY"}},
        UpdateExpression="REMOVE #p",
        ExpressionAttributeNames={"#p": "plan"},
    )
    mark_exhausted(stack, kid, PERIOD_END)
    service.update(kid, actor="ops", plan="free", name="renamed")
    assert service.get(kid).quota_exhausted_until == PERIOD_END
    service.update(kid, actor="ops", plan="pro")  # a real change lifts it
    assert service.get(kid).quota_exhausted_until is None
