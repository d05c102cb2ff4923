"""Each test starts from moto as template.yaml's provisioning left it: nothing an earlier test wrote."""

from __future__ import annotations

from typing import Any

from keysentry import aws

from tests.conftest import MotoBaselines, all_items, restore_moto


def test_restoring_forgets_items_messages_secrets_parameters_and_new_resources(
    stack: Any, service: Any, moto_baselines: MotoBaselines
) -> None:
    sqs, sns, secrets, ssm = (aws.client(s) for s in ("sqs", "sns", "secretsmanager", "ssm"))
    pepper = secrets.get_secret_value(SecretId=stack.refs["PepperSecret"])["SecretString"]
    parameter = ssm.get_parameter(Name=stack.refs["GitHubScanningKeys"])["Parameter"]["Value"]
    queues = sqs.list_queues().get("QueueUrls", [])

    service.create("acme", actor="ops")
    extra = sqs.create_queue(QueueName="written-by-a-test")["QueueUrl"]
    extra_arn = sqs.get_queue_attributes(QueueUrl=extra, AttributeNames=["QueueArn"])["Attributes"][
        "QueueArn"
    ]
    sns.subscribe(TopicArn=stack.refs["AlertsTopic"], Protocol="sqs", Endpoint=extra_arn)
    sqs.send_message(QueueUrl=queues[0], MessageBody="left behind")
    secrets.put_secret_value(SecretId=stack.refs["PepperSecret"], SecretString='{"current": "9"}')
    ssm.put_parameter(Name=stack.refs["GitHubScanningKeys"], Value="changed", Overwrite=True)
    aws.client("dynamodb").create_table(
        TableName="written-by-a-test",
        AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
        BillingMode="PAY_PER_REQUEST",
    )

    restore_moto(moto_baselines.provisioned)

    assert all_items(stack.refs["KeysTable"]) == []
    assert sorted(sqs.list_queues().get("QueueUrls", [])) == sorted(queues)
    assert sqs.receive_message(QueueUrl=queues[0]).get("Messages", []) == []
    assert sns.list_subscriptions_by_topic(TopicArn=stack.refs["AlertsTopic"])["Subscriptions"] == []
    assert secrets.get_secret_value(SecretId=stack.refs["PepperSecret"])["SecretString"] == pepper
    assert ssm.get_parameter(Name=stack.refs["GitHubScanningKeys"])["Parameter"]["Value"] == parameter
    assert "written-by-a-test" not in aws.client("dynamodb").list_tables()["TableNames"]


def test_moto_alone_is_an_empty_account(moto: None) -> None:
    assert aws.client("dynamodb").list_tables()["TableNames"] == []
    assert aws.client("sqs").list_queues().get("QueueUrls", []) == []
    assert aws.client("secretsmanager").list_secrets()["SecretList"] == []
