"""CloudWatch Logs subscriptions (access logs, the authorizer's decisions) -> usage counters and
anomaly alerts: thin over keysentry.metering."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.data_classes import CloudWatchLogsEvent
from aws_lambda_powertools.utilities.typing import LambdaContext
from keysentry.alerts import AlertPublisher, Deduplicator, UsageWatcher
from keysentry.metering import Metering, Outcome, batch_id
from keysentry.service import KeyService
from keysentry.settings import UsageSettings
from keysentry.store.usage import UsageTable
from keysentry.usage import Batch

logger = Logger()
metrics = Metrics()


def metering(settings: UsageSettings, remaining_ms: Callable[[], int]) -> Metering:
    """The use case over its adapters: the usage table, and the watcher that alerts on anomalies
    (and suspends the keys that opted in) through the key service, the topic and the bus."""
    table = UsageTable(settings.service.usage_table)
    watcher = UsageWatcher(
        table,
        KeyService.from_settings(settings.service),
        AlertPublisher(settings.alerts_topic_arn, settings.event_bus_name),
        Deduplicator.for_table(settings.service.idempotency_table, remaining_ms),
    )
    return Metering(table, watcher)


@metrics.log_metrics
@logger.inject_lambda_context(clear_state=True, log_event=False)
def lambda_handler(
    event: dict[str, Any], context: LambdaContext, meter: Metering | None = None
) -> dict[str, Any]:
    data = CloudWatchLogsEvent(event).parse_logs_data()
    if data.message_type != "DATA_MESSAGE":  # CloudWatch Logs' check that it can deliver
        return Outcome(0, 0, 0, 0).response()
    settings = UsageSettings.load()
    events = data.log_events
    batch = Batch()
    add = batch.reader(data.log_group, settings.authorizer_log_group)
    for line in events:
        add(line.message, line.timestamp)
    ident = batch_id(data.log_group, data.log_stream, [line.get_id for line in events])
    meter = meter or metering(settings, context.get_remaining_time_in_millis)
    outcome = meter.record(ident, batch, len(events))
    for name in ("lines", "unreadable", "writes", "anomalies"):
        metrics.add_metric(name=f"Usage{name.title()}", unit=MetricUnit.Count, value=getattr(outcome, name))
    logger.info("usage batch", log_group=data.log_group, **outcome.response())
    return outcome.response()
