"""SampleApis: keysentry with or without its sample REST API, sample HTTP API and sample backend,
counted from what SAM's own transform makes of template.yaml, as CloudFormation then creates it
(a resource whose Condition does not hold is not created). A nested application in the examples
gets keysentry without them, and nothing left refers to what is gone."""

from __future__ import annotations

import copy
import json
import re
from functools import cache
from pathlib import Path
from typing import Any

import pytest
from keysentry_dev.local import provision
from keysentry_dev.template import Stack, load_template

from tests.e2e.flatten import flat_template

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples"
PSEUDO = {"AWS::Region", "AWS::AccountId", "AWS::StackName", "AWS::StackId", "AWS::Partition"}
PSEUDO |= {"AWS::URLSuffix", "AWS::NoValue", "AWS::NotificationARNs"}
# what SampleApis makes, by the names SAM gives what it generates
SAMPLE = re.compile(
    r"^(Sample(Api|HttpApi|Backend)|UsageFunction(Http)?AccessLogs|TopKey|ApiGatewayAccountReady)"
)


class _NoManagedPolicies:
    """SAM's managed policy loader, offline: the template names its managed policies by ARN."""

    def load(self) -> dict[str, str]:
        return {}


@cache
def _transformed(parameters: tuple[tuple[str, str], ...]) -> dict[str, Any]:
    from samtranslator.translator.transform import transform

    template = load_template(ROOT / "template.yaml")
    for resource in template["Resources"].values():  # as `sam package` leaves them: in S3
        props = resource.get("Properties", {})
        for uri in ("CodeUri", "ContentUri"):
            if isinstance(props.get(uri), str):
                props[uri] = f"s3://bucket/{props[uri]}.zip"
    out: dict[str, Any] = transform(template, dict(parameters), _NoManagedPolicies())
    return out


def deployed(monkeypatch: pytest.MonkeyPatch, **parameters: str) -> tuple[Stack, dict[str, Any]]:
    """The transformed template under ``parameters``, and the resources CloudFormation creates of it."""
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")  # SAM's pseudo parameters
    template = copy.deepcopy(_transformed(tuple(sorted(parameters.items()))))
    stack = Stack(template, given=parameters)
    return stack, {name: r for name, r in template["Resources"].items() if stack.exists(r)}


def references(value: Any, stack: Stack) -> set[str]:
    """The logical ids and parameters ``value`` refers to, as CloudFormation evaluates it: of an
    Fn::If, the branch its condition takes only."""
    if isinstance(value, list):
        return set().union(*(references(v, stack) for v in value))
    if not isinstance(value, dict):
        return set()
    if len(value) == 1:
        ((name, arg),) = value.items()
        if name == "Fn::If":
            condition, when_true, when_false = arg
            return references(when_true if stack.condition(condition) else when_false, stack)
        if name == "Ref":
            return {str(arg)}
        if name == "Fn::GetAtt":
            return {arg[0] if isinstance(arg, list) else str(arg).split(".", 1)[0]}
        if name == "Fn::Sub":
            text, extra = (arg, {}) if isinstance(arg, str) else arg
            named = {m.split(".", 1)[0] for m in re.findall(r"\$\{([^!}][^}]*)\}", text)}
            return (named - set(extra)) | references(list(extra.values()), stack)
    return set().union(*(references(v, stack) for v in value.values()))


def dangling(stack: Stack, resources: dict[str, Any]) -> dict[str, set[str]]:
    """What each created resource and output refers to (DependsOn too) that is not there."""
    known = set(resources) | set(stack.template.get("Parameters", {})) | PSEUDO
    found: dict[str, set[str]] = {}
    outputs = {k: v for k, v in stack.template.get("Outputs", {}).items() if stack.exists(v)}
    for name, resource in {**resources, **outputs}.items():
        depends = resource.get("DependsOn", [])
        names = references(resource, stack) | set([depends] if isinstance(depends, str) else depends)
        missing = names - known
        if missing:
            found[name] = missing
    return found


def test_the_standalone_stack_has_its_samples(monkeypatch: pytest.MonkeyPatch) -> None:
    stack, resources = deployed(monkeypatch)
    samples = {name for name in resources if SAMPLE.match(name)}
    assert {
        "SampleApi",
        "SampleApiStage",
        "SampleHttpApi",
        "SampleHttpApiStage",
        "SampleBackendFunction",
    } <= samples
    assert {
        "UsageFunctionAccessLogs",
        "UsageFunctionHttpAccessLogs",
        "TopKeysRule",
        "TopKeySourcesRule",
    } <= samples
    assert {"SampleApiUrl", "SampleHttpApiUrl"} <= set(stack.template["Outputs"])
    assert dangling(stack, resources) == {}


def test_without_samples_nothing_of_them_is_created_and_nothing_refers_to_them(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    _, with_samples = deployed(monkeypatch, SampleApis="true")
    stack, resources = deployed(monkeypatch, SampleApis="false")
    gone = set(with_samples) - set(resources)
    assert [name for name in resources if SAMPLE.match(name)] == []
    assert gone == {name for name in with_samples if SAMPLE.match(name)}
    assert len(gone) >= 20, sorted(gone)  # APIs, stages, deployments, permissions, backend, log groups...
    for kept in ("AuthorizerFunction", "ManagementApi", "ApiFunction", "UsageFunction", "Dashboard"):
        assert kept in resources
    outputs = [name for name, out in stack.template["Outputs"].items() if stack.exists(out)]
    assert "AuthorizerFunctionArn" in outputs and not [name for name in outputs if "Sample" in name]
    assert dangling(stack, resources) == {}


def test_without_samples_and_with_usage_plans_the_plans_meter_the_stages_given_or_none(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    stack, resources = deployed(monkeypatch, SampleApis="false", UsageIdentifier="true")
    assert stack.resolve(resources["UsagePlansAtDeploy"]["Properties"]["Stages"]) == ""
    assert dangling(stack, resources) == {}


@pytest.mark.parametrize("name", ["http-api", "rest-api"])
def test_each_example_nests_keysentry_without_its_samples(name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    example = load_template(EXAMPLES / name / "template.yaml")
    (app,) = [r for r in example["Resources"].values() if r["Type"] == "AWS::Serverless::Application"]
    own = Stack(example)  # the example's parameters at their defaults, its conditions evaluated
    parameters = {key: str(own.resolve(value)) for key, value in app["Properties"]["Parameters"].items()}
    assert parameters["SampleApis"] == "false"
    assert (
        parameters["ApiGatewayAccountLogsRole"] == "existing"
    )  # passed through; "create" in a fresh account
    stack, resources = deployed(monkeypatch, **parameters)
    assert [name for name in resources if SAMPLE.match(name)] == []
    assert dangling(stack, resources) == {}


@pytest.mark.parametrize("samples", ["true", "false"])
def test_the_dashboard_is_json_with_the_sample_widgets_only_with_the_samples(samples: str) -> None:
    stack = Stack(load_template(ROOT / "template.yaml"), given={"SampleApis": samples})
    body = stack.resolve(stack.template["Resources"]["Dashboard"]["Properties"]["DashboardBody"])
    widgets = json.loads(re.sub(r"\$\{[^}]+\}", "x", body))["widgets"]
    titles = [w["properties"]["title"] for w in widgets]
    sample_titles = [
        t for t in titles if "ample" in t
    ]  # "Sample API ...", "... (sample REST and HTTP API requests)"
    assert len(sample_titles) == (3 if samples == "true" else 0)
    assert len(titles) == len(set(titles)) == (8 if samples == "true" else 5)
    # a full grid either way: the rows tile 24 columns, no gap where the sample widgets were
    rows: dict[int, int] = {}
    for w in widgets:
        rows[w["y"]] = rows.get(w["y"], 0) + w["width"]
    assert set(rows.values()) == {24} and sorted(rows) == [6 * n for n in range(len(rows))]


def test_local_provisioning_honours_the_condition(monkeypatch: pytest.MonkeyPatch) -> None:
    from keysentry import aws
    from moto import mock_aws

    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    for samples in ("true", "false"):
        with mock_aws():
            aws.reset()
            stack = provision(load_template(ROOT / "template.yaml"), {"SampleApis": samples})
            groups = {g["logGroupName"] for g in aws.client("logs").describe_log_groups()["logGroups"]}
            apis = {api["name"] for api in aws.client("apigateway").get_rest_apis()["items"]}
        aws.reset()
        made = {name for name in stack.refs if SAMPLE.match(name)}
        if samples == "true":
            assert {"SampleApi", "SampleApiAccessLogs", "SampleHttpApiAccessLogs"} <= made
            assert stack.refs["SampleApiAccessLogs"] in groups and "keysentry-dev-sample" in apis
        else:
            assert made == set() and "keysentry-dev-sample" not in apis
            assert [g for g in groups if "Sample" in g] == []
        assert "AuthorizerLogGroup" in stack.refs and "KeysTable" in stack.refs


def test_the_http_examples_flat_template_has_no_sample_and_keeps_what_the_e2e_calls() -> None:
    """tests/e2e/run.py serves the flat template under `sam local start-api` (flatten.py)."""
    keysentry = load_template(ROOT / "template.yaml")
    example = load_template(EXAMPLES / "http-api" / "template.yaml")
    flat = flat_template(keysentry, keysentry, example, EXAMPLES / "http-api", "x86_64")
    assert flat["Parameters"]["SampleApis"]["Default"] == "false"
    assert [name for name in flat["Resources"] if SAMPLE.match(name)] == []
    assert [name for name in flat["Outputs"] if "Sample" in name] == []
    # what the e2e's example scenario runs: the authorizer in front of the example's own API
    assert {"AuthorizerFunction", "ItemsApi", "ItemsFunction", "ManagementApi", "ApiFunction"} <= set(
        flat["Resources"]
    )
    assert dangling(Stack(flat), flat["Resources"]) == {}
    # each Fn::If is decided as the example's parameters decide it: nothing names what is gone
    assert "Fn::If" not in json.dumps([flat["Resources"], flat["Outputs"], flat["Globals"]])
    # the functions reach the local cloud: the endpoint sam local is started with, not AWS's
    variables = flat["Globals"]["Function"]["Environment"]["Variables"]
    assert variables["AWS_ENDPOINT_URL"] == {"Ref": "LocalEndpointUrl"}
