"""Read the keys table's stream under moto and shape records as Lambda delivers them."""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

from keysentry import aws


class StreamReader:
    def __init__(self, table: str) -> None:
        self.arn = aws.client("dynamodb").describe_table(TableName=table)["Table"]["LatestStreamArn"]
        streams = aws.client("dynamodbstreams")
        shard = streams.describe_stream(StreamArn=self.arn)["StreamDescription"]["Shards"][0]["ShardId"]
        self.iterator = streams.get_shard_iterator(
            StreamArn=self.arn, ShardId=shard, ShardIteratorType="TRIM_HORIZON"
        )["ShardIterator"]

    def read(self) -> list[dict[str, Any]]:
        """Records written since the last read, as Lambda's event source mapping delivers them."""
        response = aws.client("dynamodbstreams").get_records(ShardIterator=self.iterator)
        self.iterator = response["NextShardIterator"]
        records = []
        for record in response["Records"]:
            created = record["dynamodb"].get("ApproximateCreationDateTime")
            if isinstance(created, dt.datetime):
                record["dynamodb"]["ApproximateCreationDateTime"] = int(created.timestamp())
            record["eventSourceARN"] = self.arn
            records.append(json.loads(json.dumps(record, default=str)))
        return records


def batch(records: list[dict[str, Any]]) -> dict[str, Any]:
    return {"Records": records}


class Targets:
    """An SQS queue subscribed to the topic, and one behind an EventBridge rule on the bus."""

    def __init__(self, stack: Any) -> None:
        sqs, sns, events = aws.client("sqs"), aws.client("sns"), aws.client("events")
        self.sns_queue = sqs.create_queue(QueueName="alerts-from-sns")["QueueUrl"]
        self.bus_queue = sqs.create_queue(QueueName="alerts-from-bus")["QueueUrl"]
        sns.subscribe(
            TopicArn=stack.refs["AlertsTopic"],
            Protocol="sqs",
            Endpoint=self._arn(self.sns_queue),
        )
        bus = stack.refs["EventBus"]
        events.put_rule(
            Name="all-keysentry", EventBusName=bus, EventPattern=json.dumps({"source": ["keysentry"]})
        )
        events.put_targets(
            Rule="all-keysentry", EventBusName=bus, Targets=[{"Id": "q", "Arn": self._arn(self.bus_queue)}]
        )

    @staticmethod
    def _arn(url: str) -> str:
        attrs = aws.client("sqs").get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])
        return str(attrs["Attributes"]["QueueArn"])

    def _drain(self, url: str) -> list[dict[str, Any]]:
        sqs = aws.client("sqs")
        out = []
        while True:
            messages = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10).get("Messages", [])
            if not messages:
                return out
            for message in messages:
                out.append(json.loads(message["Body"]))
                sqs.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])

    def from_sns(self) -> list[dict[str, Any]]:
        """SNS envelopes: ``Message`` (the event, JSON) and ``MessageAttributes``."""
        return self._drain(self.sns_queue)

    def from_bus(self) -> list[dict[str, Any]]:
        """EventBridge envelopes: ``source``, ``detail-type``, ``detail``."""
        return self._drain(self.bus_queue)
