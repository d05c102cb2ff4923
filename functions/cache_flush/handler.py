"""Delay queue -> the second flush of the REST stage's authorizer cache: thin over keysentry.alerts."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord
from aws_lambda_powertools.utilities.typing import LambdaContext
from keysentry.alerts import CacheFlusher, DelayedFlush
from keysentry.settings import CacheFlushSettings

logger = Logger()
metrics = Metrics()
processor = BatchProcessor(event_type=EventType.SQS, raise_on_entire_batch_failure=False)


@metrics.log_metrics
@logger.inject_lambda_context(clear_state=True, log_event=False)
def lambda_handler(
    event: dict[str, Any], context: LambdaContext, flusher: CacheFlusher | None = None
) -> dict[str, Any]:
    flush = DelayedFlush(flusher or CacheFlusher(CacheFlushSettings.load().flush_authorizer_cache))

    def record_handler(record: SQSRecord) -> None:
        flush.handle(record.body)

    with processor(records=event.get("Records", []), handler=record_handler, lambda_context=context):
        processor.process()
    response = processor.response()
    failed = len(response["batchItemFailures"])
    metrics.add_metric(name="AuthorizerCacheFlushed", unit=MetricUnit.Count, value=int(flush.flushed))
    metrics.add_metric(name="RecordsFailed", unit=MetricUnit.Count, value=failed)
    logger.info(
        "delayed authorizer cache flush",
        records=len(event.get("Records", [])),
        kids=sorted(flush.kids),
        flushed=flush.flushed,
        failed=failed,
    )
    return {"batchItemFailures": response["batchItemFailures"]}
