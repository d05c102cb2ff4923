"""CloudWatch Logs subscriptions (access logs, the authorizer's decisions) -> usage counters, anomaly
alerts and the quotas of keys on a plan with one: thin over keysentry.metering."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.data_classes import CloudWatchLogsEvent
from aws_lambda_powertools.utilities.typing import LambdaContext
from keysentry.alerts import AlertPublisher, Deduplicator, QuotaWatcher, UsageWatcher
from keysentry.metering import Metering, Outcome, Watchers, batch_id
from keysentry.service import KeyService
from keysentry.settings import UsageSettings
from keysentry.store.usage import UsageTable
from keysentry.usage import Batch

logger = Logger()
metrics = Metrics()


def metering(
    settings: UsageSettings, remaining_ms: Callable[[], int], clock: Callable[[], float] = time.time
) -> Metering:
    """The use case over its adapters: the usage table, and its watchers through the key service,
    the topic and the bus: the quotas (a key over its plan's quota is marked on its record, and
    alerted), then the anomalies (alerted; the keys that opted in are suspended)."""
    table = UsageTable(settings.service.usage_table)
    keys = KeyService.from_settings(settings.service)
    publisher = AlertPublisher(settings.alerts_topic_arn, settings.event_bus_name)
    dedup = Deduplicator.for_table(settings.service.idempotency_table, remaining_ms)
    quotas = QuotaWatcher(settings.service.plans(), keys.store, publisher, dedup, clock=clock)
    return Metering(table, Watchers(quotas, UsageWatcher(table, keys, publisher, dedup, clock=clock)))


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
