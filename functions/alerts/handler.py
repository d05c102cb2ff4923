"""Keys table stream -> lifecycle alerts on SNS and EventBridge: thin over keysentry.alerts."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType
from aws_lambda_powertools.utilities.data_classes.dynamo_db_stream_event import DynamoDBRecord
from aws_lambda_powertools.utilities.typing import LambdaContext
from keysentry.alerts import (
    AlertPublisher,
    CacheFlusher,
    Deduplicator,
    FlushScheduler,
    Publisher,
    StreamAlerts,
)
from keysentry.settings import AlertsSettings

logger = Logger()
metrics = Metrics()
processor = BatchProcessor(event_type=EventType.DynamoDBStreams, raise_on_entire_batch_failure=False)


@metrics.log_metrics
@logger.inject_lambda_context(clear_state=True, log_event=False)
def lambda_handler(
    event: dict[str, Any],
    context: LambdaContext,
    publisher: Publisher | None = None,
    dedup: Deduplicator | None = None,
    flusher: CacheFlusher | None = None,
    reflush: FlushScheduler | None = None,
) -> dict[str, Any]:
    settings = AlertsSettings.load()
    alerts = StreamAlerts(
        publisher or AlertPublisher(settings.alerts_topic_arn, settings.event_bus_name),
        dedup or Deduplicator.for_table(settings.idempotency_table, context.get_remaining_time_in_millis),
        flusher or CacheFlusher(settings.flush.flush_authorizer_cache),
        reflush or FlushScheduler(settings.reflush_queue_url, settings.auth_cache_ttl),
    )

    def record_handler(record: DynamoDBRecord) -> None:
        stream = record.raw_event.get("dynamodb", {})
        alerts.collect(
            record.event_id or "",
            stream.get("OldImage"),
            stream.get("NewImage"),
            stream.get("SequenceNumber", ""),
        )

    records = event.get("Records", [])
    with processor(records=records, handler=record_handler, lambda_context=context):
        processor.process()
    unreadable = [str(f["itemIdentifier"]) for f in processor.response()["batchItemFailures"]]
    outcome = alerts.close(unreadable, records=len(records))
    for name, value in outcome.metrics().items():
        metrics.add_metric(name=name, unit=MetricUnit.Count, value=value)
    logger.info("stream batch", **outcome.log_fields())
    return outcome.response()
