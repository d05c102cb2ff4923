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

    with processor(records=event.get("Records", []), handler=record_handler, lambda_context=context):
        processor.process()
    retry = alerts.finish()
    failures = [*processor.response()["batchItemFailures"], *({"itemIdentifier": s} for s in retry)]
    failed = len(failures)
    metrics.add_metric(name="AlertsPublished", unit=MetricUnit.Count, value=len(alerts.pending) - len(retry))
    metrics.add_metric(name="AlertsDuplicate", unit=MetricUnit.Count, value=alerts.duplicates)
    metrics.add_metric(name="RecordsFailed", unit=MetricUnit.Count, value=failed)
    logger.info(
        "stream batch",
        records=len(event.get("Records", [])),
        published=[(e["type"], e["kid"]) for e, s in alerts.pending if s not in retry],
        duplicates=alerts.duplicates,
        failed=failed,
        authorizer_cache_flushed=alerts.flushed,
        authorizer_cache_reflush_scheduled=alerts.reflush_scheduled,
    )
    return {"batchItemFailures": failures}
