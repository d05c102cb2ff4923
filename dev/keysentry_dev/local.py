"""The embedded default cloud: provision template.yaml's stateful resources in moto.

Resources are derived from template.yaml itself (tables with their keys, indexes, TTL and
streams; the secret, KMS key, topic, bus and queues), so local and deployed cannot drift. The
tests use :func:`provision` under ``mock_aws``; ``keysentry local up`` uses it against a moto server.
"""

from __future__ import annotations

import json
import secrets
import string
from collections.abc import Callable
from typing import Any

from keysentry import aws

from keysentry_dev import local_stack
from keysentry_dev.template import REGION, STACK, Stack, load_template, local_name

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


def _adopt(stack: Stack, logical: str, kind: str, identifier: dict[str, str]) -> None:
    """What a CloudFormation import does: the resource exists, the stack now names it."""
    if kind == "AWS::DynamoDB::Table":
        table = aws.client("dynamodb").describe_table(TableName=identifier["TableName"])["Table"]
        stack.refs[logical] = table["TableName"]
        stack.attrs[logical] = {"Arn": table["TableArn"], "StreamArn": table.get("LatestStreamArn", "")}
    elif kind == "AWS::SecretsManager::Secret":
        arn = aws.client("secretsmanager").describe_secret(SecretId=identifier["Id"])["ARN"]
        stack.refs[logical] = arn
        stack.attrs[logical] = {"Id": arn}
    elif kind == "AWS::KMS::Key":
        meta = aws.client("kms").describe_key(KeyId=identifier["KeyId"])["KeyMetadata"]
        stack.refs[logical] = meta["KeyId"]
        stack.attrs[logical] = {"Arn": meta["Arn"], "KeyId": meta["KeyId"]}
    else:
        raise ValueError(f"{logical}: cannot import a {kind}")


# Conditions the local stack ignores, so that what they turn on can be tried locally whatever the
# parameters: the authorizer cache flush's delay queue.
LOCAL_ALWAYS = frozenset({"FlushesAuthorizerCache"})


def _wanted(stack: Stack, resource: dict[str, Any]) -> bool:
    """Whether the local stack has ``resource``: as deployed under its parameters (SampleApis
    "false": no sample API, no access log group), but for the conditions of LOCAL_ALWAYS."""
    return resource.get("Condition") in LOCAL_ALWAYS or stack.exists(resource)


def provision(
    template: dict[str, Any] | None = None,
    parameters: dict[str, str] | None = None,
    imports: list[dict[str, Any]] | None = None,
    name: Callable[[str, str], str] = local_name,
    stack_name: str | None = STACK,
) -> Stack:
    """Create every stateful resource of the template in the current AWS endpoint (moto), a REST
    API for each serverless API, and the usage plans. ``parameters``: values that replace the
    template's defaults; a resource whose Condition does not hold under them is not created.
    ``imports`` (the ``--resources-to-import`` of ``aws cloudformation create-change-set
    --change-set-type IMPORT``): resources that exist already, which the stack takes over instead
    of creating them. ``name`` names those the template leaves unnamed (:func:`local_name`, or
    :func:`cloudformation_names`). Then the functions, alarms, schedules and log subscriptions, and a
    CloudFormation stack ``stack_name`` whose outputs and resources name them all (none when
    ``None``: :func:`keysentry_dev.local_stack.name_stack` names it later)."""
    stack = Stack(template or load_template(), given=dict(parameters or {}), name=name)
    resources = {k: r for k, r in stack.template.get("Resources", {}).items() if _wanted(stack, r)}
    for entry in imports or ():
        logical = entry["LogicalResourceId"]
        if resources.get(logical, {}).get("Type") != entry["ResourceType"]:
            raise ValueError(f"{logical}: not a {entry['ResourceType']} of the template")
        _adopt(stack, logical, entry["ResourceType"], entry["ResourceIdentifier"])
    for logical, resource in resources.items():  # first: a parameter holds the management API's id
        if resource.get("Type") == "AWS::Serverless::Api":
            _create_rest_api(stack, logical, resource.get("Properties", {}))
    for kind in STATEFUL:  # in dependency order: nothing stateful refers to a later kind
        for logical, resource in resources.items():
            if resource.get("Type") == kind and logical not in stack.refs:
                _create(stack, logical, resource)
    create_usage_plans(stack)
    local_stack.complete(stack, resources, stack_name)
    return stack


RETAINED_POLICIES = ("Retain", "RetainExceptOnCreate")


def _delete(stack: Stack, logical: str, kind: str) -> None:
    ref = stack.refs[logical]
    if kind == "AWS::DynamoDB::Table":
        aws.client("dynamodb").delete_table(TableName=ref)
    elif kind == "AWS::SecretsManager::Secret":
        aws.client("secretsmanager").delete_secret(SecretId=ref, ForceDeleteWithoutRecovery=True)
    elif kind == "AWS::KMS::Key":
        aws.client("kms").schedule_key_deletion(KeyId=ref, PendingWindowInDays=7)
    elif kind == "AWS::SNS::Topic":
        aws.client("sns").delete_topic(TopicArn=ref)
    elif kind == "AWS::Events::EventBus":
        aws.client("events").delete_event_bus(Name=ref)
    elif kind == "AWS::SQS::Queue":
        aws.client("sqs").delete_queue(QueueUrl=ref)
    elif kind == "AWS::SSM::Parameter":
        aws.client("ssm").delete_parameter(Name=ref)
    elif kind == "AWS::Logs::LogGroup":
        aws.client("logs").delete_log_group(logGroupName=ref)
    elif kind == "AWS::Serverless::Api":
        aws.client("apigateway").delete_rest_api(restApiId=ref)
    else:
        raise ValueError(f"{logical}: cannot delete a {kind}")


def delete_stack(stack: Stack, stack_name: str | None = STACK) -> list[dict[str, str]]:
    """What ``aws cloudformation delete-stack`` does to the stack's local resources: each one whose
    DeletionPolicy (read from the template) does not retain it is deleted. Returns the deleted
    stack's resources as ``aws cloudformation list-stack-resources`` lists them (its
    ``StackResourceSummaries``): the retained ones ``DELETE_SKIPPED``."""
    local_stack.delete(stack, stack_name)  # first: what refers to the resources below
    listing = []
    for logical, resource in stack.template.get("Resources", {}).items():
        kind = resource["Type"]
        if logical not in stack.refs or kind in local_stack.EXTRA_KINDS:
            continue  # not provisioned locally (APIs' resources, ...), or deleted below
        retained = resource.get("DeletionPolicy") in RETAINED_POLICIES
        if not retained:
            _delete(stack, logical, kind)
        listing.append(
            {
                "LogicalResourceId": logical,
                "PhysicalResourceId": stack.refs[logical],
                "ResourceType": kind,
                "ResourceStatus": "DELETE_SKIPPED" if retained else "DELETE_COMPLETE",
            }
        )
    return listing


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
