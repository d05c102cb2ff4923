"""What IAM authorizes for one SDK call: its actions, each on a resource ARN, with condition keys.

Most operations are one action named like the operation (``dynamodb:GetItem``) on one resource.
The exceptions that matter to keysentry are spelled out here: DynamoDB's batch and transaction
calls (one action per table and item kind), SNS's and SQS's batch calls, EventBridge's buses per
entry, API Gateway's REST management calls (``apigateway:<HTTP method>`` on the request path,
and the ``apigateway:PUT`` on ``/tags/...`` that creating a resource with tags also needs), and
KMS's encryption context (``kms:EncryptionContext:<key>``, ``kms:EncryptionContextKeys``).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Any
from urllib.parse import quote, urlsplit

from tests.iam.policy import Request

# (kind, region, account, name) -> ARN, for names only the cloud can resolve (a KMS alias, a
# secret's name): None when it cannot.
Resolver = Callable[[str, str, str, str], str | None]

_TRANSACT_ITEM = {
    "Put": "PutItem",
    "Update": "UpdateItem",
    "Delete": "DeleteItem",
    "ConditionCheck": "ConditionCheckItem",
    "Get": "GetItem",
}
_SQS_BATCH = {
    "SendMessageBatch": "SendMessage",
    "DeleteMessageBatch": "DeleteMessage",
    "ChangeMessageVisibilityBatch": "ChangeMessageVisibility",
}
_REGION_KEYS = ("aws:RequestedRegion",)


def _no_resolver(kind: str, region: str, account: str, name: str) -> str | None:
    return None


def table_arn(name: str, region: str, account: str) -> str:
    return name if name.startswith("arn:") else f"arn:aws:dynamodb:{region}:{account}:table/{name}"


def _dynamodb(operation: str, params: Mapping[str, Any], region: str, account: str) -> list[tuple[str, str]]:
    if operation in ("BatchGetItem", "BatchWriteItem"):
        return [(operation, table_arn(t, region, account)) for t in params.get("RequestItems", {})]
    if operation in ("TransactWriteItems", "TransactGetItems"):
        out = []
        for item in params.get("TransactItems", []):
            for kind, body in item.items():
                out.append((_TRANSACT_ITEM[kind], table_arn(body["TableName"], region, account)))
        return out
    if "TableName" in params:
        arn = table_arn(params["TableName"], region, account)
        if params.get("IndexName"):
            arn = f"{arn}/index/{params['IndexName']}"
        return [(operation, arn)]
    return [(operation, "*")]


def _kms_key(key_id: str, region: str, account: str, resolve: Resolver) -> tuple[str, str | None]:
    """The key's ARN, and the alias the call named it by (kms:RequestAlias)."""
    alias = None
    if key_id.startswith("alias/") or ":alias/" in key_id:
        alias = key_id.rsplit(":", 1)[-1] if key_id.startswith("arn:") else key_id
        resolved = resolve("kms-alias", region, account, alias)
        return (resolved or f"arn:aws:kms:{region}:{account}:{alias}"), alias
    if key_id.startswith("arn:"):
        return key_id, None
    return f"arn:aws:kms:{region}:{account}:key/{key_id}", None


def _kms(operation: str, params: Mapping[str, Any], region: str, account: str, resolve: Resolver) -> Request:
    key_id = params.get("KeyId") or params.get("DestinationKeyId")
    if not key_id and "CiphertextBlob" in params:  # moto's blob starts with the key id (36 bytes)
        blob = bytes(params["CiphertextBlob"])
        candidate = blob[:36].decode("ascii", "replace")
        key_id = candidate if re.fullmatch(r"[0-9a-f-]{36}", candidate) else ""
    arn, alias = _kms_key(str(key_id), region, account, resolve) if key_id else ("*", None)
    context: dict[str, tuple[str, ...]] = {"aws:RequestedRegion": (region,)}
    known = ["kms:EncryptionContext:*", "kms:EncryptionContextKeys", "kms:RequestAlias", *_REGION_KEYS]
    encryption_context = params.get("EncryptionContext") or {}
    for key, value in encryption_context.items():
        context[f"kms:EncryptionContext:{key}"] = (str(value),)
    if encryption_context:
        context["kms:EncryptionContextKeys"] = tuple(encryption_context)
    if alias:
        context["kms:RequestAlias"] = (alias,)
    return Request(f"kms:{operation}", arn, context, tuple(known))


def _secret(secret_id: str, region: str, account: str, resolve: Resolver) -> str:
    if secret_id.startswith("arn:"):
        return secret_id
    return resolve("secret", region, account, secret_id) or (
        f"arn:aws:secretsmanager:{region}:{account}:secret:{secret_id}-??????"
    )


def _parameter(name: str, region: str, account: str) -> str:
    if name.startswith("arn:"):
        return name
    return f"arn:aws:ssm:{region}:{account}:parameter/{name.lstrip('/')}"


def queue_arn(url: str, region: str) -> str:
    """``https://sqs.<region>.amazonaws.com/<account>/<name>`` (or a local endpoint's) -> its ARN."""
    parts = urlsplit(url)
    host = (parts.hostname or "").split(".")
    if len(host) > 2 and host[0] == "sqs":
        region = host[1]
    account, name = ([*parts.path.strip("/").split("/"), "", ""])[:2]
    return f"arn:aws:sqs:{region}:{account}:{name}"


def _bus(name: str, region: str, account: str) -> str:
    return name if name.startswith("arn:") else f"arn:aws:events:{region}:{account}:event-bus/{name}"


def _apigateway(model: Any, params: Mapping[str, Any], region: str) -> list[Request]:
    """``apigateway:<METHOD>`` on ``arn:aws:apigateway:<region>::<path>``; the tags a Create call
    carries also need ``apigateway:PUT`` on the new resource's ``/tags/<its ARN>``."""
    method, uri = model.http["method"], model.http["requestUri"].split("?", 1)[0]
    members = model.input_shape.members if model.input_shape else {}
    for name, shape in members.items():
        if shape.serialization.get("location") == "uri" and name in params:
            placeholder = shape.serialization.get("name", name)
            uri = uri.replace("{" + placeholder + "+}", str(params[name]))
            uri = uri.replace("{" + placeholder + "}", quote(str(params[name]), safe=""))
    arn = f"arn:aws:apigateway:{region}::{uri}"
    known = ("aws:RequestTag/*", "aws:TagKeys", *_REGION_KEYS)
    context: dict[str, tuple[str, ...]] = {"aws:RequestedRegion": (region,)}
    tags = params.get("tags") or {}
    for key, value in tags.items():
        context[f"aws:RequestTag/{key}"] = (str(value),)
    if tags:
        context["aws:TagKeys"] = tuple(tags)
    out = [Request(f"apigateway:{method}", arn, context, known)]
    if tags and model.name.startswith("Create"):
        created = quote(f"{arn}/<new>", safe="")
        out.append(
            Request(
                "apigateway:PUT",
                f"arn:aws:apigateway:{region}::/tags/{created}",
                context,
                known,
                note=f"tags on create ({model.name})",
            )
        )
    return out


def requests_for(
    model: Any, params: Mapping[str, Any], region: str, account: str, resolve: Resolver = _no_resolver
) -> tuple[Request, ...]:
    """The IAM requests of one call: ``model`` is botocore's OperationModel, ``params`` the call's."""
    service = model.service_model.signing_name
    operation = model.name
    region_context = {"aws:RequestedRegion": (region,)}

    def simple(action: str, resource: str) -> Request:
        return Request(f"{service}:{action}", resource, region_context, _REGION_KEYS)

    if service == "dynamodb":
        return tuple(simple(action, arn) for action, arn in _dynamodb(operation, params, region, account))
    if service == "kms":
        return (_kms(operation, params, region, account, resolve),)
    if service == "secretsmanager" and "SecretId" in params:
        return (simple(operation, _secret(str(params["SecretId"]), region, account, resolve)),)
    if service == "ssm":
        names = params.get("Names") or ([params["Name"]] if "Name" in params else [params.get("Path", "*")])
        return tuple(simple(operation, _parameter(str(n), region, account)) for n in names)
    if service == "sns":
        action = "Publish" if operation == "PublishBatch" else operation
        return (simple(action, str(params.get("TopicArn") or params.get("TargetArn") or "*")),)
    if service == "events" and operation == "PutEvents":
        buses = {str(e.get("EventBusName") or "default") for e in params.get("Entries", [])}
        return tuple(simple("PutEvents", _bus(b, region, account)) for b in sorted(buses))
    if service == "sqs":
        action = _SQS_BATCH.get(operation, operation)
        if "QueueUrl" in params:
            return (simple(action, queue_arn(str(params["QueueUrl"]), region)),)
        if "QueueName" in params:
            return (simple(action, f"arn:aws:sqs:{region}:{account}:{params['QueueName']}"),)
    if service == "apigateway":
        return tuple(_apigateway(model, params, region))
    return (simple(operation, "*"),)
