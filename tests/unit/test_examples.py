"""examples/: the two applications that protect an API with keysentry as a nested application stay in
step with keysentry: the access log format its usage function reads, the parameters its template
declares, the outputs it exports, the scopes its authorizer decides by; and the flat template the
e2e run serves the HTTP example from keeps the example's own API behind the same authorizer."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
from keysentry import usage
from keysentry.routes import RouteTable
from keysentry_dev.template import load_template

from tests.e2e.flatten import env_vars, flat_template, nested_application

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples"
# example -> (its API's logical id, the access log format keysentry's usage module reads)
APIS = {
    "rest-api": ("ReportsApi", usage.ACCESS_LOG_FORMAT),
    "http-api": ("ItemsApi", usage.HTTP_ACCESS_LOG_FORMAT),
}
SELF_ROUTES = {  # keysentry's own self-service routes, behind the same authorizer
    ("GET", "/self"): "",
    ("POST", "/self/rotate"): "keys:rotate-self",
    ("POST", "/self/successor"): "",
    ("POST", "/self/revoke"): "",
    ("GET", "/self/usage"): "",
}


@pytest.fixture(scope="module")
def keysentry() -> dict[str, Any]:
    return load_template(ROOT / "template.yaml")


def example(name: str) -> dict[str, Any]:
    return load_template(EXAMPLES / name / "template.yaml")


def nested(doc: dict[str, Any]) -> dict[str, Any]:
    (app,) = [r for r in doc["Resources"].values() if r["Type"] == "AWS::Serverless::Application"]
    properties: dict[str, Any] = app["Properties"]
    return properties


def api_routes(doc: dict[str, Any], api: str) -> set[tuple[str, str]]:
    """(METHOD, path with each {param} as a sample value) of every route the example's API serves."""
    routes = set()
    for resource in doc["Resources"].values():
        for event in resource.get("Properties", {}).get("Events", {}).values():
            props = event["Properties"]
            if {"Ref": api} in (props.get("RestApiId"), props.get("ApiId")):
                routes.add((props["Method"].upper(), re.sub(r"\{[^}]+\}", "42", props["Path"])))
    return routes


@pytest.mark.parametrize("name", sorted(APIS))
def test_the_example_writes_the_access_log_format_keysentrys_usage_function_reads(name: str) -> None:
    doc = example(name)
    api, expected = APIS[name]
    properties = doc["Resources"][api]["Properties"]
    setting = properties.get("AccessLogSetting") or properties["AccessLogSettings"]
    assert setting["Format"] == expected


@pytest.mark.parametrize("name", sorted(APIS))
def test_the_examples_access_log_group_is_subscribed_to_keysentrys_usage_function(name: str) -> None:
    doc = example(name)
    api, _ = APIS[name]
    resources = doc["Resources"]
    properties = resources[api]["Properties"]
    group = (properties.get("AccessLogSetting") or properties["AccessLogSettings"])["DestinationArn"]
    (log_group,) = group["Fn::GetAtt"][:1]
    usage_function = {"Fn::GetAtt": ["Keysentry", "Outputs.UsageFunctionArn"]}
    filters = [r["Properties"] for r in resources.values() if r["Type"] == "AWS::Logs::SubscriptionFilter"]
    assert [(f["LogGroupName"], f["FilterPattern"], f["DestinationArn"]) for f in filters] == [
        ({"Ref": log_group}, "", usage_function)
    ]
    (permission,) = [r for r in resources.values() if r["Type"] == "AWS::Lambda::Permission"]
    assert permission["Properties"]["FunctionName"] == usage_function
    assert permission["Properties"]["Principal"] == "logs.amazonaws.com"
    assert permission["Properties"]["SourceArn"] == {"Fn::GetAtt": [log_group, "Arn"]}


@pytest.mark.parametrize("name", sorted(APIS))
def test_the_nested_application_is_keysentrys_template_and_passes_only_its_parameters(
    name: str, keysentry: dict[str, Any]
) -> None:
    app = nested(example(name))
    assert (EXAMPLES / name / app["Location"]).resolve() == ROOT / "template.yaml"
    assert set(app["Parameters"]) <= set(keysentry["Parameters"])
    assert {"Stage", "RouteScopes"} <= set(app["Parameters"])


@pytest.mark.parametrize("name", sorted(APIS))
def test_the_examples_route_scopes_cover_every_route_of_its_api_and_keysentrys_self_service(
    name: str,
) -> None:
    doc = example(name)
    table = RouteTable.from_json(nested(doc)["Parameters"]["RouteScopes"])
    routes = api_routes(doc, APIS[name][0])
    assert routes, "the example's API has routes"
    for method, path in routes:
        assert table.required_scope(method, path), f"{method} {path} needs a scope"
    for (method, path), scope in SELF_ROUTES.items():
        assert table.required_scope(method, path) == scope, f"{method} {path}"
    assert table.required_scope("GET", "/v1/unmapped") is None  # anything else is denied


@pytest.mark.parametrize("name", sorted(APIS))
def test_the_examples_api_is_behind_keysentrys_authorizer_output(
    name: str, keysentry: dict[str, Any]
) -> None:
    doc = example(name)
    auth = doc["Resources"][APIS[name][0]]["Properties"]["Auth"]
    authorizer = auth["Authorizers"][auth["DefaultAuthorizer"]]
    assert authorizer["FunctionArn"] == {"Fn::GetAtt": ["Keysentry", "Outputs.AuthorizerFunctionArn"]}
    assert authorizer["Identity"]["Headers"] == ["X-Api-Key"]
    used = set(re.findall(r'"Outputs\.(\w+)"', json.dumps(doc)))
    assert {"AuthorizerFunctionArn", "UsageFunctionArn"} <= used <= set(keysentry["Outputs"])


def test_the_http_example_uses_payload_2_simple_responses_and_throttles_each_route() -> None:
    doc = example("http-api")
    api = doc["Resources"]["ItemsApi"]["Properties"]
    authorizer = api["Auth"]["Authorizers"]["Keysentry"]
    assert (authorizer["AuthorizerPayloadFormatVersion"], authorizer["EnableSimpleResponses"]) == (
        "2.0",
        True,
    )
    assert nested(doc)["Parameters"]["AuthorizerHttpResponse"] == "simple"
    assert "StageName" not in api  # $default: a named stage would prefix rawPath and miss RouteScopes
    routes = {f"{m} {p}" for m, p in api_routes(doc, "ItemsApi")}
    throttled = {re.sub(r"\{[^}]+\}", "42", key) for key in api["RouteSettings"]}
    assert throttled <= routes
    for settings in [api["DefaultRouteSettings"], *api["RouteSettings"].values()]:
        assert settings["ThrottlingRateLimit"] > 0 and settings["ThrottlingBurstLimit"] > 0


def test_the_rest_example_caches_at_the_gateway_only_while_keysentry_flushes_that_cache() -> None:
    doc = example("rest-api")
    app = nested(doc)["Parameters"]
    identity = doc["Resources"]["ReportsApi"]["Properties"]["Auth"]["Authorizers"]["Keysentry"]["Identity"]
    assert identity["Context"] == ["identity.sourceIp"]  # a cached answer is never served to another address
    # the gateway's TTL and the one keysentry is told (it refuses signed keys above 0) are the same
    assert identity["ReauthorizeEvery"] == app["GatewayAuthorizerCacheTtlSeconds"]
    condition, when_flushing, otherwise = identity["ReauthorizeEvery"]["Fn::If"]
    assert otherwise == 0 and when_flushing == {"Ref": "GatewayCacheTtlSeconds"}
    assert doc["Conditions"][condition] == {
        "Fn::Not": [{"Fn::Equals": [{"Ref": "FlushAuthorizerCache"}, ""]}]
    }
    assert app["FlushAuthorizerCache"] == {"Ref": "FlushAuthorizerCache"}
    assert doc["Outputs"]["FlushAuthorizerCacheValue"]["Value"] == {"Fn::Sub": "${ReportsApi}/${Stage}"}


def test_the_http_examples_local_template_puts_its_own_api_behind_the_same_authorizer(
    keysentry: dict[str, Any],
) -> None:
    doc = example("http-api")
    _, parameters = nested_application(doc)
    built = {"Parameters": {k: dict(v) for k, v in keysentry["Parameters"].items()}, "Resources": {}}
    flat = flat_template(built, keysentry, doc, EXAMPLES / "http-api", "x86_64")
    assert "Keysentry" not in flat["Resources"]
    authorizer = flat["Resources"]["ItemsApi"]["Properties"]["Auth"]["Authorizers"]["Keysentry"]
    assert authorizer["FunctionArn"] == {"Fn::GetAtt": ["AuthorizerFunction", "Arn"]}
    assert flat["Parameters"]["RouteScopes"]["Default"] == parameters["RouteScopes"]
    assert Path(flat["Resources"]["ItemsFunction"]["Properties"]["CodeUri"]) == EXAMPLES / "backend"
    env = env_vars({"Parameters": {}, "AuthorizerFunction": {"ROUTE_SCOPES": "{}"}}, keysentry, parameters)
    assert env["AuthorizerFunction"]["ROUTE_SCOPES"] == parameters["RouteScopes"]
