"""Each SDK call is named as IAM authorizes it: actions, resource ARNs and condition keys."""

from __future__ import annotations

from functools import cache
from typing import Any

import botocore.session

from tests.iam.calls import requests_for

REGION, ACCOUNT = "eu-west-1", "111122223333"


@cache
def _session() -> Any:
    return botocore.session.get_session()


def named(service: str, operation: str, **params: Any) -> list[tuple[str, str]]:
    model = _session().get_service_model(service).operation_model(operation)
    return [(r.action, r.resource) for r in requests_for(model, params, REGION, ACCOUNT)]


TABLE = f"arn:aws:dynamodb:{REGION}:{ACCOUNT}:table"


def test_dynamodb_indexes_batches_and_transactions() -> None:
    assert named("dynamodb", "Query", TableName="keys", IndexName="due-index") == [
        ("dynamodb:Query", f"{TABLE}/keys/index/due-index")
    ]
    assert named("dynamodb", "BatchGetItem", RequestItems={"a": {}, "b": {}}) == [
        ("dynamodb:BatchGetItem", f"{TABLE}/a"),
        ("dynamodb:BatchGetItem", f"{TABLE}/b"),
    ]
    items = [{"Update": {"TableName": "keys"}}, {"ConditionCheck": {"TableName": "usage"}}]
    assert named("dynamodb", "TransactWriteItems", TransactItems=items) == [
        ("dynamodb:UpdateItem", f"{TABLE}/keys"),
        ("dynamodb:ConditionCheckItem", f"{TABLE}/usage"),
    ]


def test_sqs_sns_events_ssm_by_their_resources() -> None:
    url = f"https://sqs.{REGION}.amazonaws.com/{ACCOUNT}/flush"
    assert named("sqs", "SendMessageBatch", QueueUrl=url) == [
        ("sqs:SendMessage", f"arn:aws:sqs:{REGION}:{ACCOUNT}:flush")
    ]
    topic = f"arn:aws:sns:{REGION}:{ACCOUNT}:alerts"
    assert named("sns", "PublishBatch", TopicArn=topic) == [("sns:Publish", topic)]
    entries = [{"EventBusName": "keysentry-dev"}, {}]
    assert named("events", "PutEvents", Entries=entries) == [
        ("events:PutEvents", f"arn:aws:events:{REGION}:{ACCOUNT}:event-bus/default"),
        ("events:PutEvents", f"arn:aws:events:{REGION}:{ACCOUNT}:event-bus/keysentry-dev"),
    ]
    assert named("ssm", "GetParameter", Name="keysentry-GitHubScanningKeys") == [
        ("ssm:GetParameter", f"arn:aws:ssm:{REGION}:{ACCOUNT}:parameter/keysentry-GitHubScanningKeys")
    ]


def test_api_gateway_is_the_http_method_on_the_request_path_and_tags_on_create_need_put() -> None:
    base = f"arn:aws:apigateway:{REGION}::"
    assert named("apigateway", "FlushStageAuthorizersCache", restApiId="a1b2c3d4e5", stageName="prod") == [
        ("apigateway:DELETE", f"{base}/restapis/a1b2c3d4e5/stages/prod/cache/authorizers")
    ]
    assert named("apigateway", "CreateApiKey", name="n") == [("apigateway:POST", f"{base}/apikeys")]
    tagged = named("apigateway", "CreateUsagePlan", name="n", tags={"app": "keysentry"})
    assert tagged[0] == ("apigateway:POST", f"{base}/usageplans")
    assert tagged[1][0] == "apigateway:PUT" and tagged[1][1].startswith(f"{base}/tags/arn%3Aaws%3Aapigateway")


def test_kms_names_the_key_arn_and_carries_the_encryption_context() -> None:
    model = _session().get_service_model("kms").operation_model("Decrypt")
    key = "1234abcd-12ab-34cd-56ef-1234567890ab"
    (request,) = requests_for(
        model,
        {"KeyId": key, "CiphertextBlob": b"x", "EncryptionContext": {"purpose": "signing"}},
        REGION,
        ACCOUNT,
    )
    assert (request.action, request.resource) == ("kms:Decrypt", f"arn:aws:kms:{REGION}:{ACCOUNT}:key/{key}")
    assert request.context["kms:EncryptionContext:purpose"] == ("signing",)
    assert request.context["kms:EncryptionContextKeys"] == ("purpose",)
    assert request.knows("kms:EncryptionContext:kid") and not request.knows("aws:SourceIp")

    def resolve(kind: str, region: str, account: str, name: str) -> str | None:
        return f"arn:aws:kms:{region}:{account}:key/{key}" if kind == "kms-alias" else None

    (aliased,) = requests_for(
        model, {"KeyId": "alias/signing", "CiphertextBlob": b"x"}, REGION, ACCOUNT, resolve
    )
    assert aliased.resource == f"arn:aws:kms:{REGION}:{ACCOUNT}:key/{key}"
    assert aliased.context["kms:RequestAlias"] == ("alias/signing",)
