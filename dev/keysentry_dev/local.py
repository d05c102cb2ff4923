"""The embedded default cloud: provision template.yaml's stateful resources in moto.

Resources are derived from template.yaml itself (tables with their keys, indexes, TTL and
streams; the secret, KMS key, topic, bus and queues), so local and deployed cannot drift. The
tests use :func:`provision` under ``mock_aws``; ``keysentry local up`` uses it against a moto server.
"""

from __future__ import annotations

import json
import random
import secrets
import string
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from keysentry import aws

REGION = "us-east-1"
NO_VALUE = object()  # AWS::NoValue: the property is left out
ACCOUNT = "123456789012"
STACK = "keysentry"


# ---------------------------------------------------------------- template


class _CfnLoader:  # a namespace for the YAML loader, built lazily so PyYAML is never on a Lambda path
    @staticmethod
    def load(text: str) -> dict[str, Any]:
        import yaml

        class Loader(yaml.SafeLoader):
            pass

        def construct(loader: yaml.SafeLoader, suffix: str, node: yaml.Node) -> dict[str, Any]:
            name = "Ref" if suffix == "Ref" else f"Fn::{suffix}"
            value: Any
            if isinstance(node, yaml.ScalarNode):
                value = loader.construct_scalar(node)
                if suffix == "GetAtt":
                    value = str(value).split(".", 1)
            elif isinstance(node, yaml.SequenceNode):
                value = loader.construct_sequence(node, deep=True)
            else:
                value = loader.construct_mapping(node, deep=True)  # type: ignore[arg-type]
            return {name: value}

        Loader.add_multi_constructor("!", construct)
        doc = yaml.load(text, Loader=Loader)  # noqa: S506 - a SafeLoader subclass
        if not isinstance(doc, dict):
            raise ValueError("template is not a mapping")
        return doc


def default_template_path() -> Path:
    """template.yaml of the project: the current directory's, else the one beside the package."""
    here = Path.cwd() / "template.yaml"
    if here.exists():
        return here
    return Path(__file__).resolve().parents[3] / "template.yaml"


def load_template(path: Path | None = None) -> dict[str, Any]:
    return _CfnLoader.load((path or default_template_path()).read_text())


def local_name(logical: str, kind: str) -> str:
    """A resource's name in the local stack: ``keysentry-<LogicalId>``."""
    return f"{STACK}-{logical}"


def cloudformation_names(stack_name: str, seed: int = 0) -> Callable[[str, str], str]:
    """Names as CloudFormation generates them for resources the template leaves unnamed
    (``my-api-KeysTable-1A2B3C4D5E6F``; a secret ``PepperSecret-AbCdEf123456``): no default of
    keysentry's matches one, so whatever finds them must be told them."""
    rng = random.Random(seed)  # noqa: S311 - names, not secrets

    def name(logical: str, kind: str) -> str:
        if kind == "AWS::SecretsManager::Secret":
            return f"{logical}-{''.join(rng.choices(string.ascii_letters + string.digits, k=12))}"
        return f"{stack_name}-{logical}-{''.join(rng.choices(string.ascii_uppercase + string.digits, k=12))}"

    return name


@dataclass
class Stack:
    """What was created: per logical id, what ``Ref`` and ``GetAtt`` give; ``name`` gives the name
    of a resource the template leaves unnamed (logical id, type)."""

    template: dict[str, Any]
    refs: dict[str, str] = field(default_factory=dict)
    attrs: dict[str, dict[str, str]] = field(default_factory=dict)
    name: Callable[[str, str], str] = local_name

    def parameters(self) -> dict[str, str]:
        params = {
            name: str(spec.get("Default", "")) for name, spec in self.template.get("Parameters", {}).items()
        }
        params.update(
            {
                "AWS::Region": REGION,
                "AWS::AccountId": ACCOUNT,
                "AWS::StackName": STACK,
                "AWS::Partition": "aws",
                "AWS::URLSuffix": "amazonaws.com",
            }
        )
        return params

    def condition(self, name: str) -> bool:
        return bool(self.resolve(self.template.get("Conditions", {})[name]))

    def resolve(self, value: Any) -> Any:
        if isinstance(value, dict) and len(value) == 1:
            ((name, arg),) = value.items()
            if name == "Fn::If":
                condition, if_true, if_false = arg
                return self.resolve(if_true if self.condition(condition) else if_false)
            if name == "Fn::Equals":
                return self.resolve(arg[0]) == self.resolve(arg[1])
            if name == "Fn::Not":
                return not self.resolve(arg[0])
            if name == "Condition":
                return self.condition(arg)
            if name == "Ref" and arg == "AWS::NoValue":
                return NO_VALUE
            if name == "Ref":
                if arg in self.refs:
                    return self.refs[arg]
                return self.parameters()[arg]
            if name == "Fn::GetAtt":
                logical, attr = arg if isinstance(arg, list) else str(arg).split(".", 1)
                return self.attrs[logical][attr]
            if name == "Fn::Sub":
                text, extra = (arg, {}) if isinstance(arg, str) else (arg[0], arg[1])
                scope = {**self.parameters(), **self.refs, **{k: self.resolve(v) for k, v in extra.items()}}
                for logical, attrs in self.attrs.items():
                    scope.update({f"{logical}.{a}": v for a, v in attrs.items()})
                out = text
                for key, val in scope.items():
                    out = out.replace("${" + key + "}", str(val))
                return out
            if name == "Fn::Join":
                sep, parts = arg
                return sep.join(str(self.resolve(p)) for p in parts)
        if isinstance(value, dict):
            return {k: self.resolve(v) for k, v in value.items()}
        if isinstance(value, list):
            return [self.resolve(v) for v in value]
        return value

    def environment(self, variables: dict[str, Any]) -> dict[str, str]:
        """Environment variables resolved to the local resources; AWS::NoValue ones left out."""
        resolved = {name: self.resolve(value) for name, value in variables.items()}
        return {name: str(value) for name, value in resolved.items() if value is not NO_VALUE}

    def outputs(self) -> dict[str, str]:
        """The template's outputs that name what was made here (not the functions and APIs, which
        moto does not run): what DescribeStacks would give for them."""
        found = {}
        for name, spec in self.template.get("Outputs", {}).items():
            try:
                value = self.resolve(spec["Value"])
            except KeyError:  # a Ref or GetAtt of a resource that was not made
                continue
            if isinstance(value, str) and "${" not in value:
                found[name] = value
        return found

    def function_environment(self) -> dict[str, str]:
        """The environment every function gets (Globals), resolved to the local resources."""
        globals_ = self.template.get("Globals", {}).get("Function", {})
        return self.environment(globals_.get("Environment", {}).get("Variables", {}))


# ---------------------------------------------------------------- provisioning


def _generate_secret(spec: dict[str, Any]) -> str:
    alphabet = string.ascii_letters + string.digits
    if not spec.get("ExcludePunctuation"):
        alphabet += "!#$%&()*+,-.:;<=>?[]^_{|}~"
    value = "".join(secrets.choice(alphabet) for _ in range(int(spec.get("PasswordLength", 32))))
    if "SecretStringTemplate" in spec:
        doc = json.loads(spec["SecretStringTemplate"])
        doc[spec["GenerateStringKey"]] = value
        return json.dumps(doc)
    return value


def _create_table(stack: Stack, logical: str, props: dict[str, Any]) -> None:
    ddb = aws.client("dynamodb")
    name = stack.resolve(props.get("TableName")) or stack.name(logical, "AWS::DynamoDB::Table")
    kwargs: dict[str, Any] = {
        "TableName": name,
        "AttributeDefinitions": props["AttributeDefinitions"],
        "KeySchema": props["KeySchema"],
        "BillingMode": props.get("BillingMode", "PAY_PER_REQUEST"),
    }
    if props.get("GlobalSecondaryIndexes"):
        kwargs["GlobalSecondaryIndexes"] = [
            {k: v for k, v in gsi.items() if k in ("IndexName", "KeySchema", "Projection")}
            for gsi in props["GlobalSecondaryIndexes"]
        ]
    if props.get("StreamSpecification"):
        kwargs["StreamSpecification"] = {
            "StreamEnabled": True,
            "StreamViewType": props["StreamSpecification"]["StreamViewType"],
        }
    description = ddb.create_table(**kwargs)["TableDescription"]
    ttl = props.get("TimeToLiveSpecification")
    if ttl and ttl.get("Enabled"):
        ddb.update_time_to_live(
            TableName=name, TimeToLiveSpecification={"AttributeName": ttl["AttributeName"], "Enabled": True}
        )
    stack.refs[logical] = name
    stack.attrs[logical] = {
        "Arn": description["TableArn"],
        "StreamArn": description.get("LatestStreamArn", ""),
    }


def _create(stack: Stack, logical: str, resource: dict[str, Any]) -> None:
    kind, props = resource["Type"], resource.get("Properties", {})
    if kind == "AWS::DynamoDB::Table":
        _create_table(stack, logical, props)
    elif kind == "AWS::SecretsManager::Secret":
        value = props.get("SecretString") or _generate_secret(props.get("GenerateSecretString", {}))
        arn = aws.client("secretsmanager").create_secret(Name=stack.name(logical, kind), SecretString=value)[
            "ARN"
        ]
        stack.refs[logical] = arn
        stack.attrs[logical] = {"Id": arn}
    elif kind == "AWS::KMS::Key":
        meta = aws.client("kms").create_key(Description=str(stack.resolve(props.get("Description", ""))))[
            "KeyMetadata"
        ]
        stack.refs[logical] = meta["KeyId"]
        stack.attrs[logical] = {"Arn": meta["Arn"], "KeyId": meta["KeyId"]}
    elif kind == "AWS::SNS::Topic":
        arn = aws.client("sns").create_topic(
            Name=stack.resolve(props.get("TopicName")) or stack.name(logical, kind)
        )["TopicArn"]
        stack.refs[logical] = arn
        stack.attrs[logical] = {"TopicArn": arn, "TopicName": arn.rsplit(":", 1)[1]}
    elif kind == "AWS::Events::EventBus":
        name = stack.resolve(props.get("Name")) or stack.name(logical, kind)
        arn = aws.client("events").create_event_bus(Name=name)["EventBusArn"]
        stack.refs[logical] = name
        stack.attrs[logical] = {"Arn": arn, "Name": name}
    elif kind == "AWS::SSM::Parameter":
        name = stack.resolve(props.get("Name")) or stack.name(logical, kind)
        aws.client("ssm").put_parameter(
            Name=name,
            Value=str(stack.resolve(props["Value"])),
            Type=props.get("Type", "String"),
            Overwrite=True,
        )
        stack.refs[logical] = name
        stack.attrs[logical] = {
            "Type": props.get("Type", "String"),
            "Value": str(stack.resolve(props["Value"])),
        }
    elif kind == "AWS::Logs::LogGroup":
        name = stack.resolve(props.get("LogGroupName")) or stack.name(logical, kind)
        logs = aws.client("logs")
        logs.create_log_group(logGroupName=name)
        arn = logs.describe_log_groups(logGroupNamePrefix=name)["logGroups"][0]["arn"]
        stack.refs[logical] = name
        stack.attrs[logical] = {"Arn": arn}
    elif kind == "AWS::SQS::Queue":
        sqs = aws.client("sqs")
        url = sqs.create_queue(QueueName=stack.resolve(props.get("QueueName")) or stack.name(logical, kind))[
            "QueueUrl"
        ]
        arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        stack.refs[logical] = url
        stack.attrs[logical] = {"Arn": arn, "QueueName": url.rsplit("/", 1)[1], "QueueUrl": url}


def _create_rest_api(stack: Stack, logical: str, props: dict[str, Any]) -> None:
    """A REST API standing in for an ``AWS::Serverless::Api`` (one mock method, its stage), so
    that usage plans can be bound to its stage as they are when deployed."""
    apigateway = aws.client("apigateway")
    api = apigateway.create_rest_api(
        name=str(stack.resolve(props.get("Name")) or stack.name(logical, "AWS::Serverless::Api"))
    )["id"]
    root = apigateway.get_resources(restApiId=api)["items"][0]["id"]
    apigateway.put_method(restApiId=api, resourceId=root, httpMethod="GET", authorizationType="NONE")
    apigateway.put_integration(restApiId=api, resourceId=root, httpMethod="GET", type="MOCK")
    stage = str(stack.resolve(props["StageName"]))
    apigateway.create_deployment(restApiId=api, stageName=stage)
    stack.refs[logical] = api
    stack.refs[f"{logical}.Stage"] = stage  # what SAM's !Ref <Api>.Stage gives


STATEFUL = (
    "AWS::DynamoDB::Table",
    "AWS::SecretsManager::Secret",
    "AWS::KMS::Key",
    "AWS::SNS::Topic",
    "AWS::Events::EventBus",
    "AWS::SQS::Queue",
    "AWS::SSM::Parameter",
    "AWS::Logs::LogGroup",  # the usage function tells the authorizer's lines by their group's name
)


def create_usage_plans(stack: Stack) -> Any:
    """The usage plans of the template's Plans, as UsagePlansAtDeploy makes them when deployed
    (the same code), bound to the sample API's stand-in stage; whatever UsageIdentifier says, so
    that they can be looked at locally."""
    from keysentry.gateway import Gateway
    from keysentry.plans import Plans
    from keysentry.plans_sync import parse_stages, sync_usage_plans

    params = stack.parameters()
    resource = stack.template.get("Resources", {}).get("UsagePlansAtDeploy")
    stages = parse_stages(str(stack.resolve(resource["Properties"]["Stages"]))) if resource else []
    plans = Plans.from_json(params["Plans"], params["DefaultPlan"])
    return sync_usage_plans(plans, params["Stage"], stages, Gateway())


def provision(template: dict[str, Any] | None = None, name: Callable[[str, str], str] = local_name) -> Stack:
    """Create every stateful resource of the template in the current AWS endpoint (moto), a REST
    API for each serverless API, and the usage plans; ``name`` names those the template leaves
    unnamed (:func:`local_name`, or :func:`cloudformation_names`)."""
    stack = Stack(template or load_template(), name=name)
    resources = stack.template.get("Resources", {})
    for kind in STATEFUL:  # in dependency order: nothing stateful refers to a later kind
        for logical, resource in resources.items():
            if resource.get("Type") == kind:
                _create(stack, logical, resource)
    for logical, resource in resources.items():
        if resource.get("Type") == "AWS::Serverless::Api":
            _create_rest_api(stack, logical, resource.get("Properties", {}))
    create_usage_plans(stack)
    return stack


def sam_env_vars(stack: Stack, endpoint: str) -> dict[str, Any]:
    """The ``sam local --env-vars`` document: every function gets the same resolved environment."""
    env = stack.function_environment()
    env.update(
        {
            "AWS_ENDPOINT_URL": endpoint,
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_DEFAULT_REGION": REGION,
        }
    )
    doc: dict[str, Any] = {"Parameters": env}
    for logical, resource in stack.template.get("Resources", {}).items():
        if resource.get("Type") != "AWS::Serverless::Function":
            continue
        variables = resource.get("Properties", {}).get("Environment", {}).get("Variables", {})
        if variables:
            doc[logical] = {**env, **stack.environment(variables)}
    return doc
