"""What the local stack has besides its stateful resources, so that ``keysentry doctor`` and
``--stack`` read it as they read a deployed one: the functions (moto's Lambda, with their resolved
environment and a placeholder package: moto runs nothing without Docker, and nothing here invokes
them), the alarms, the scheduled jobs' schedules, the usage function's log subscriptions, GitHub's
scanning keys as the deploy-time refresh leaves them (a key made here: there is no GitHub locally),
and a CloudFormation stack that names them all.

moto runs no CloudFormation of a SAM template. The stack is created from a small template whose
Outputs are the values the deployed stack's would be and whose Parameters are the template's; its
resources are placeholders moto ignores (WaitConditionHandles), each then given, in moto's own
backend, the logical id, type and physical id ListStackResources answers for a deployed stack (SAM's
names for what it generates: ``RotationFunctionHourly``, ``UsageFunctionAuthorizerRefusals``).
GetTemplate of the local stack shows the placeholders.
"""

from __future__ import annotations

import io
import json
import warnings
import zipfile
from dataclasses import dataclass
from typing import Any, Final

from keysentry import aws

from keysentry_dev.template import ACCOUNT, REGION, STACK, Stack

ROLE: Final = "keysentry-local-functions"
# SAM's resource types once transformed, where the template's are SAM's own
DEPLOYED_TYPE: Final = {
    "AWS::Serverless::Function": "AWS::Lambda::Function",
    "AWS::Serverless::Api": "AWS::ApiGateway::RestApi",
    "AWS::Serverless::HttpApi": "AWS::ApiGatewayV2::Api",
}
EXTRA_KINDS: Final = frozenset(
    {"AWS::Serverless::Function", "AWS::CloudWatch::Alarm", "AWS::Logs::SubscriptionFilter"}
)
_INTS: Final = ("Period", "EvaluationPeriods", "DatapointsToAlarm")
_ALARM_PROPERTIES: Final = (
    "AlarmDescription",
    "Namespace",
    "MetricName",
    "Dimensions",
    "Statistic",
    "Threshold",
    "ComparisonOperator",
    "TreatMissingData",
    "AlarmActions",
    "Metrics",
    "ActionsEnabled",
    *_INTS,
)


@dataclass
class Listed:
    """What moto's ListStackResources reads of a stack resource."""

    logical_resource_id: str
    physical_resource_id: str
    cf_resource_type: str


def _package() -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("handler.py", "def lambda_handler(event, context):\n    raise NotImplementedError\n")
    return buffer.getvalue()


def _role() -> str:
    iam = aws.client("iam")
    trust = {
        "Statement": [
            {"Effect": "Allow", "Principal": {"Service": "lambda.amazonaws.com"}, "Action": "sts:AssumeRole"}
        ]
    }
    try:
        return iam.get_role(RoleName=ROLE)["Role"]["Arn"]
    except iam.exceptions.NoSuchEntityException:
        return iam.create_role(RoleName=ROLE, AssumeRolePolicyDocument=json.dumps(trust))["Role"]["Arn"]


def create_functions(stack: Stack, wanted: dict[str, dict[str, Any]]) -> str:
    """Every function of ``wanted`` in moto's Lambda, with its environment as deployed."""
    role, package, client = _role(), _package(), aws.client("lambda")
    common = stack.function_environment()
    for logical, resource in wanted.items():
        if resource.get("Type") != "AWS::Serverless::Function":
            continue
        props = resource.get("Properties", {})
        variables = props.get("Environment", {}).get("Variables", {})
        made = client.create_function(
            FunctionName=stack.name(logical, "AWS::Lambda::Function"),
            Runtime="python3.13",
            Role=role,
            Handler=str(props.get("Handler", "handler.lambda_handler")),
            Code={"ZipFile": package},
            Environment={"Variables": {**common, **stack.environment(variables)}},
        )
        stack.refs[logical] = made["FunctionName"]
        stack.attrs[logical] = {"Arn": made["FunctionArn"]}
    return role


def create_alarms(stack: Stack, wanted: dict[str, dict[str, Any]]) -> None:
    cloudwatch = aws.client("cloudwatch")
    for logical, resource in wanted.items():
        if resource.get("Type") != "AWS::CloudWatch::Alarm":
            continue
        props = stack.resolve(resource.get("Properties", {}))
        kwargs: dict[str, Any] = {k: props[k] for k in _ALARM_PROPERTIES if k in props}
        kwargs.update({k: int(kwargs[k]) for k in _INTS if k in kwargs})
        kwargs["Threshold"] = float(kwargs.get("Threshold", 0))
        for metric in kwargs.get("Metrics", []):
            if "MetricStat" in metric:
                metric["MetricStat"]["Period"] = int(metric["MetricStat"]["Period"])
        name = stack.name(logical, "AWS::CloudWatch::Alarm")
        cloudwatch.put_metric_alarm(AlarmName=name, **kwargs)
        stack.refs[logical] = name


def create_events(stack: Stack, wanted: dict[str, dict[str, Any]], role: str) -> None:
    """The functions' schedules (ScheduleV2 events) and log subscriptions (CloudWatchLogs events,
    and the template's own subscription filters), named as SAM names what it generates."""
    scheduler = aws.client("scheduler")
    for logical, resource in wanted.items():
        kind, props = resource.get("Type"), resource.get("Properties", {})
        if kind == "AWS::Logs::SubscriptionFilter":
            _subscribe(stack, logical, stack.resolve(props))
        if kind != "AWS::Serverless::Function":
            continue
        for event, spec in props.get("Events", {}).items():
            if spec.get("Type") not in ("ScheduleV2", "CloudWatchLogs"):
                continue  # the APIs' events: their routes are the local gateway's
            params = stack.resolve(spec.get("Properties", {}))
            if spec.get("Type") == "ScheduleV2":
                name = stack.name(f"{logical}{event}", "AWS::Scheduler::Schedule")
                target: Any = {"Arn": stack.attrs[logical]["Arn"], "RoleArn": role}
                if "DeadLetterConfig" in params:
                    target["DeadLetterConfig"] = params["DeadLetterConfig"]
                arn = scheduler.create_schedule(
                    Name=name,
                    ScheduleExpression=params["ScheduleExpression"],
                    FlexibleTimeWindow={"Mode": "OFF"},
                    Target=target,
                    State="ENABLED",
                )["ScheduleArn"]
                stack.refs[f"{logical}{event}"] = name
                stack.attrs[f"{logical}{event}"] = {"Arn": arn}
            elif spec.get("Type") == "CloudWatchLogs":
                params["DestinationArn"] = stack.attrs[logical]["Arn"]
                _subscribe(stack, f"{logical}{event}", params)


def _subscribe(stack: Stack, logical: str, props: dict[str, Any]) -> None:
    name = stack.name(logical, "AWS::Logs::SubscriptionFilter")
    aws.client("logs").put_subscription_filter(
        logGroupName=props["LogGroupName"],
        filterName=name,
        filterPattern=props.get("FilterPattern", ""),
        destinationArn=props["DestinationArn"],
    )
    stack.refs[logical] = name
    stack.attrs[logical] = {"LogGroupName": props["LogGroupName"]}


def store_scanning_keys(stack: Stack) -> None:
    """What ScanningKeysAtDeploy does at deploy (fetch GitHub's keys into the parameter), with a
    P-256 key made here in GitHub's place."""
    if "GitHubScanningKeys" not in stack.refs:
        return
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    pem = (
        ec.generate_private_key(ec.SECP256R1())
        .public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )
    doc = {"public_keys": [{"key_identifier": "local", "key": pem, "is_current": True}]}
    aws.client("ssm").put_parameter(
        Name=stack.refs["GitHubScanningKeys"], Value=json.dumps(doc), Overwrite=True
    )


def deployed_type(stack: Stack, logical: str) -> str:
    kind = stack.template.get("Resources", {}).get(logical, {}).get("Type")
    if kind is None:  # generated by SAM from a function's event: a schedule or a log subscription
        attrs = stack.attrs.get(logical, {})
        if "LogGroupName" in attrs:
            return "AWS::Logs::SubscriptionFilter"
        return "AWS::Scheduler::Schedule" if ":scheduler:" in attrs.get("Arn", "") else ""
    return DEPLOYED_TYPE.get(str(kind), str(kind))


def create_cloudformation_stack(
    name: str,
    outputs: dict[str, str],
    parameters: dict[str, str],
    template: dict[str, Any],
    resources: dict[str, tuple[str, str]] | None = None,
) -> None:
    """A stack in moto's CloudFormation that answers DescribeStacks as keysentry's would (its
    outputs given as values, ``template``'s parameters with their defaults, ``parameters`` over
    them) and ListStackResources with ``resources`` (logical id -> type, physical id)."""
    listed = resources or {}
    body = {
        "Parameters": {
            key: {"Type": "String", "Default": str(spec.get("Default", ""))}
            for key, spec in template.get("Parameters", {}).items()
        },
        "Resources": {  # retained: moto's delete-stack leaves them (it did not make what they stand for)
            logical: {"Type": "AWS::CloudFormation::WaitConditionHandle", "DeletionPolicy": "Retain"}
            for logical in listed or ["Placeholder"]
        },
        "Outputs": {key: {"Value": value} for key, value in outputs.items()},
    }
    with warnings.catch_warnings():  # moto says it ignores the placeholders: that is what they are for
        warnings.filterwarnings("ignore", "Tried to parse AWS::CloudFormation::WaitConditionHandle")
        stack_id = aws.client("cloudformation").create_stack(
            StackName=name,
            TemplateBody=json.dumps(body),
            Parameters=[{"ParameterKey": k, "ParameterValue": v} for k, v in parameters.items()],
        )["StackId"]
    if listed:
        from moto.cloudformation.models import cloudformation_backends

        created = cloudformation_backends[ACCOUNT][REGION].stacks[stack_id]
        for logical, (kind, physical) in listed.items():
            created.resource_map._parsed_resources[logical] = Listed(logical, physical, kind)


def complete(stack: Stack, wanted: dict[str, dict[str, Any]], stack_name: str | None = STACK) -> None:
    """The functions, alarms, schedules, subscriptions and scanning keys of ``wanted`` (the
    template's resources the local stack has), and the stack ``stack_name`` that names them all
    (none when ``None``: the caller names it later with :func:`name_stack`)."""
    role = create_functions(stack, wanted)
    create_alarms(stack, wanted)
    create_events(stack, wanted, role)
    store_scanning_keys(stack)
    if stack_name is not None:
        name_stack(stack, stack_name)


def name_stack(stack: Stack, stack_name: str, outputs: dict[str, str] | None = None) -> None:
    """The CloudFormation stack ``stack_name`` whose outputs (``outputs`` over the template's) and
    resources name what the local stack has."""
    resources = {
        logical: (deployed_type(stack, logical), physical)
        for logical, physical in stack.refs.items()
        if "." not in logical  # SampleApi.Stage: what !Ref SampleApi.Stage gives, not a resource
    }
    merged = {**stack.outputs(), **(outputs or {})}
    create_cloudformation_stack(stack_name, merged, stack.given, stack.template, resources)


def delete(stack: Stack, stack_name: str | None = STACK) -> None:
    """What deleting the stack does to what :func:`complete` made (nothing of it is retained)."""
    for logical, ref in stack.refs.items():
        kind = deployed_type(stack, logical)
        if kind == "AWS::Lambda::Function":
            aws.client("lambda").delete_function(FunctionName=ref)
        elif kind == "AWS::CloudWatch::Alarm":
            aws.client("cloudwatch").delete_alarms(AlarmNames=[ref])
        elif kind == "AWS::Scheduler::Schedule":
            aws.client("scheduler").delete_schedule(Name=ref)
        elif kind == "AWS::Logs::SubscriptionFilter":
            group = stack.attrs[logical]["LogGroupName"]
            aws.client("logs").delete_subscription_filter(logGroupName=group, filterName=ref)
    if stack_name is not None:
        aws.client("cloudformation").delete_stack(StackName=stack_name)
