"""template.yaml's usage pipeline: the access log format, the subscriptions, the failure path, the
least-privilege policies, the Contributor Insights rules and the dashboard."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
from keysentry import usage
from keysentry_dev.template import load_template

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def resources() -> dict[str, Any]:
    resources: dict[str, Any] = load_template(ROOT / "template.yaml")["Resources"]
    return resources


def props(resources: dict[str, Any], logical: str) -> dict[str, Any]:
    properties: dict[str, Any] = resources[logical]["Properties"]
    return properties


def substituted(value: Any) -> str:
    """A !Sub string with every ${...} filled in with a placeholder, as CloudFormation would."""
    assert set(value) == {"Fn::Sub"}, value
    return re.sub(r"\$\{[^}]+\}", "x", value["Fn::Sub"])


def statements(function: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The function's inline policy statements, by Sid."""
    out: dict[str, dict[str, Any]] = {}
    for policy in function["Policies"]:
        for statement in policy.get("Statement", []) if isinstance(policy, dict) else []:
            out[statement["Sid"]] = statement
    return out


def actions(statement: dict[str, Any]) -> set[str]:
    action = statement["Action"]
    return {action} if isinstance(action, str) else set(action)


# ---------------------------------------------------------------- sources


def test_the_sample_api_writes_the_access_log_format_the_usage_module_reads(
    resources: dict[str, Any],
) -> None:
    setting = props(resources, "SampleApi")["AccessLogSetting"]
    assert setting["Format"] == usage.ACCESS_LOG_FORMAT
    assert setting["DestinationArn"] == {"Fn::GetAtt": ["SampleApiAccessLogs", "Arn"]}
    assert resources["SampleApiAccessLogs"]["Type"] == "AWS::Logs::LogGroup"


def test_the_sample_http_api_writes_the_http_access_log_format_to_a_group_the_usage_function_reads(
    resources: dict[str, Any],
) -> None:
    api = props(resources, "SampleHttpApi")
    assert resources["SampleHttpApi"]["Type"] == "AWS::Serverless::HttpApi"
    assert api["AccessLogSettings"]["Format"] == usage.HTTP_ACCESS_LOG_FORMAT
    assert api["AccessLogSettings"]["DestinationArn"] == {"Fn::GetAtt": ["SampleHttpApiAccessLogs", "Arn"]}
    subscription = props(resources, "UsageFunctionHttpAccessLogs")
    assert subscription["LogGroupName"] == {"Ref": "SampleHttpApiAccessLogs"}
    assert subscription["DestinationArn"] == {"Fn::GetAtt": ["UsageFunction", "Arn"]}


def test_the_sample_http_api_is_behind_the_authorizer_and_throttles_every_route(
    resources: dict[str, Any],
) -> None:
    api = props(resources, "SampleHttpApi")
    authorizer = api["Auth"]["Authorizers"][api["Auth"]["DefaultAuthorizer"]]
    assert authorizer["FunctionArn"] == {"Fn::GetAtt": ["AuthorizerFunction", "Arn"]}
    assert authorizer["AuthorizerPayloadFormatVersion"] == "2.0"
    # the gateway reads the answer in the form the authorizer gives it (AuthorizerHttpResponse)
    template = load_template(ROOT / "template.yaml")
    assert authorizer["EnableSimpleResponses"] == {"Fn::If": ["HttpSimpleResponses", True, False]}
    assert template["Conditions"]["HttpSimpleResponses"] == {
        "Fn::Equals": [{"Ref": "AuthorizerHttpResponse"}, "simple"]
    }
    assert "AWS::LanguageExtensions" in template["Transform"]  # resolves the !If before SAM reads it
    assert authorizer["Identity"] == {"Headers": ["X-Api-Key"], "ReauthorizeEvery": 0}  # no gateway cache
    routes = {
        f"{e['Properties']['Method'].upper()} {e['Properties']['Path']}"
        for e in props(resources, "SampleBackendFunction")["Events"].values()
        if e["Type"] == "HttpApi"
    }
    assert routes and set(api["RouteSettings"]) == routes
    for settings in [api["DefaultRouteSettings"], *api["RouteSettings"].values()]:
        assert settings["ThrottlingRateLimit"] > 0 and settings["ThrottlingBurstLimit"] > 0
    # API Gateway invokes the authorizer for any API of the account, this one included
    permission = props(resources, "AuthorizerInvokeFromAnyApi")
    assert permission["SourceArn"]["Fn::Sub"].endswith(":*/authorizers/*")


def test_the_account_logging_role_is_set_only_when_asked(resources: dict[str, Any]) -> None:
    template = load_template(ROOT / "template.yaml")
    parameter = template["Parameters"]["ApiGatewayAccountLogsRole"]
    assert (parameter["Default"], sorted(parameter["AllowedValues"])) == ("existing", ["create", "existing"])
    assert resources["ApiGatewayAccount"]["Condition"] == "CreatesApiGatewayAccount"
    assert resources["ApiGatewayCloudWatchRole"]["Condition"] == "CreatesApiGatewayAccount"
    assert resources["SampleApi"]["DependsOn"] == "ApiGatewayAccountReady"  # waits for it when created here
    ready = resources["ApiGatewayAccountReady"]["Metadata"]["Account"]
    assert ready["Fn::If"][:2] == ["CreatesApiGatewayAccount", {"Ref": "ApiGatewayAccount"}]


def test_the_authorizer_logs_to_a_group_the_usage_function_subscribes_to(resources: dict[str, Any]) -> None:
    assert props(resources, "AuthorizerFunction")["LoggingConfig"] == {
        "LogGroup": {"Ref": "AuthorizerLogGroup"}
    }
    events = props(resources, "UsageFunction")["Events"]
    assert {e["Type"] for e in events.values()} == {"CloudWatchLogs"}
    # the sample APIs' subscriptions are resources of their own, under the samples' condition
    filters = {
        name: r
        for name, r in resources.items()
        if r["Type"] == "AWS::Logs::SubscriptionFilter"
        and r["Properties"]["DestinationArn"] == {"Fn::GetAtt": ["UsageFunction", "Arn"]}
    }
    by_group = {e["Properties"]["LogGroupName"]["Ref"]: e for e in [*events.values(), *filters.values()]}
    assert set(by_group) == {"SampleApiAccessLogs", "SampleHttpApiAccessLogs", "AuthorizerLogGroup"}
    for name, subscription in filters.items():
        permission = resources[subscription["DependsOn"]]
        group = subscription["Properties"]["LogGroupName"]["Ref"]
        assert subscription["Condition"] == permission["Condition"] == resources[group]["Condition"], name
        assert permission["Properties"]["FunctionName"] == {"Ref": "UsageFunction"}
        assert permission["Properties"]["Principal"] == "logs.amazonaws.com"
        assert permission["Properties"]["SourceArn"] == {"Fn::GetAtt": [group, "Arn"]}
    assert by_group["SampleApiAccessLogs"]["Properties"]["FilterPattern"] == ""
    assert by_group["SampleHttpApiAccessLogs"]["Properties"]["FilterPattern"] == ""
    pattern = by_group["AuthorizerLogGroup"]["Properties"]["FilterPattern"]
    assert pattern.startswith("{") and pattern.endswith("}")  # a JSON filter pattern
    assert '$.message = "decision"' in pattern
    assert '$.outcome = "deny"' in pattern and '$.outcome = "unauthorized"' in pattern
    assert "allow" not in pattern


def test_a_failing_batch_is_retried_then_kept_in_the_failure_queue(resources: dict[str, Any]) -> None:
    function = props(resources, "UsageFunction")
    config = function["EventInvokeConfig"]
    assert config["MaximumRetryAttempts"] == 2
    assert config["DestinationConfig"]["OnFailure"] == {
        "Type": "SQS",
        "Destination": {"Fn::GetAtt": ["AlertsFailureQueue", "Arn"]},
    }
    send = statements(function)["FailureDestination"]
    assert (
        actions(send) == {"sqs:SendMessage"}
        and send["Resource"] == config["DestinationConfig"]["OnFailure"]["Destination"]
    )
    assert (function["CodeUri"], function["Handler"]) == ("functions/usage", "handler.lambda_handler")
    assert (function["Timeout"], function["MemorySize"]) == (60, 512)


# ---------------------------------------------------------------- permissions


def test_the_usage_function_may_do_what_its_pipeline_does_and_no_more(resources: dict[str, Any]) -> None:
    function = props(resources, "UsageFunction")
    granted = statements(function)
    usage_actions = {"GetItem", "BatchGetItem", "Query", "UpdateItem", "PutItem", "ConditionCheckItem"}
    assert actions(granted["UsageCounters"]) == {f"dynamodb:{a}" for a in usage_actions}
    assert granted["UsageCounters"]["Resource"] == {"Fn::GetAtt": ["UsageTable", "Arn"]}
    keys = granted["SuspendKeys"]
    assert actions(keys) == {"dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:UpdateItem", "dynamodb:Query"}
    assert keys["Resource"] == {"Fn::GetAtt": ["KeysTable", "Arn"]}  # no index, no Scan, no DeleteItem
    assert actions(granted["PublishToEncryptedTopic"]) == {"kms:Decrypt", "kms:GenerateDataKey*"}
    assert not any(
        a.startswith(("secretsmanager:", "kms:Encrypt")) for s in granted.values() for a in actions(s)
    )
    templates = {next(iter(p)) for p in function["Policies"] if "Statement" not in p}
    assert templates == {"SNSPublishMessagePolicy", "EventBridgePutEventsPolicy"}


def test_the_management_api_reads_the_usage_table(resources: dict[str, Any]) -> None:
    read = statements(props(resources, "ApiFunction"))["ReadUsage"]
    assert actions(read) == {"dynamodb:GetItem", "dynamodb:BatchGetItem", "dynamodb:Query"}
    assert read["Resource"] == {"Fn::GetAtt": ["UsageTable", "Arn"]}


# ---------------------------------------------------------------- Contributor Insights, dashboard


@pytest.mark.parametrize(
    ("logical", "keys"),
    [("TopKeysRule", ["$.keyId"]), ("TopKeySourcesRule", ["$.keyId", "$.sourceIp"])],
)
def test_contributor_insights_rank_the_access_log_fields(
    resources: dict[str, Any], logical: str, keys: list[str]
) -> None:
    rule = props(resources, logical)
    assert rule["RuleState"] == "ENABLED"
    body = json.loads(substituted(rule["RuleBody"]))
    assert body["Schema"] == {"Name": "CloudWatchLogRule", "Version": 1}
    assert (body["LogFormat"], body["AggregateOn"]) == ("JSON", "Count")
    assert body["Contribution"]["Keys"] == keys
    assert body["Contribution"]["Filters"] == [{"Match": "$.keyId", "NotIn": ["-"]}]
    named = rule["RuleBody"]["Fn::Sub"]
    assert "${SampleApiAccessLogs}" in named and "${SampleHttpApiAccessLogs}" in named  # both APIs
    assert len(body["LogGroupNames"]) == 2
    fields = {f"$.{name}" for name in usage.ACCESS_LOG_FIELDS}
    assert set(keys) <= fields  # every key is a field the access log writes


def test_the_dashboard_is_json_and_shows_every_part(resources: dict[str, Any]) -> None:
    from keysentry_dev.template import Stack

    raw = props(resources, "Dashboard")["DashboardBody"]
    stack = Stack(load_template(ROOT / "template.yaml"))  # the defaults: with the sample APIs
    body = json.loads(re.sub(r"\$\{[^}]+\}", "x", stack.resolve(raw)))
    titles = [w["properties"]["title"] for w in body["widgets"]]
    assert len(titles) == len(set(titles)) == 8
    template, variables = raw["Fn::Sub"]
    condition, samples, without = variables["SampleWidgets"]["Fn::If"]
    assert (condition, without) == ("SampleApis", "")  # tests/unit/test_sample_apis.py: without them
    text = template + samples["Fn::Sub"]
    assert "SEARCH('{keysentry,outcome,reason,service} MetricName=\\\"Decision\\\"', 'Sum', 300)" in text
    for metric in (
        "Count",
        "4XXError",
        "5XXError",
        "Latency",
        "ApproximateNumberOfMessagesVisible",
        "Duration",
    ):
        assert f'"{metric}"' in text
    for logical in ("RotationFunction", "AlertsFunction", "UsageFunction", "AlertsFailureQueue.QueueName"):
        assert "${" + logical + "}" in text
    assert "${TopKeysRule.RuleName}" in text
    assert props(resources, "SampleApi")["Name"] == {"Fn::Sub": "keysentry-${Stage}-sample"}
    assert text.count('"keysentry-${Stage}-sample"') == 2  # the ApiName dimension of both API widgets


def test_every_route_the_authorizer_guards_on_the_management_api_is_in_the_default_route_scopes() -> None:
    """A self route the default RouteScopes leaves out is denied to every key (an uncovered route)."""
    from keysentry.routes import RouteTable

    template = load_template(ROOT / "template.yaml")
    table = RouteTable.from_json(template["Parameters"]["RouteScopes"]["Default"])
    events = template["Resources"]["ApiFunction"]["Properties"]["Events"]
    guarded = [
        (e["Properties"]["Method"].upper(), e["Properties"]["Path"])
        for e in events.values()
        if (e["Properties"].get("Auth") or {}).get("Authorizer") == "KeysentryAuthorizer"
    ]
    assert ("GET", "/self/usage") in guarded
    assert [route for route in guarded if table.required_scope(*route) is None] == []
