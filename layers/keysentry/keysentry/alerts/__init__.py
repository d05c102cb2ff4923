"""Lifecycle alerts from the keys table's stream: one event per key transition, fanned out in batches.

- :mod:`.events`: :func:`lifecycle_event` turns a stream record's old and new images into zero or
  one event (pure).
- :mod:`.publish`: :class:`AlertPublisher` sends events to the SNS topic and the EventBridge bus.
- :mod:`.flush`: :class:`CacheFlusher`, :class:`FlushScheduler` and :class:`DelayedFlush`, the
  stage's authorizer cache flushed at a narrowing change and again once the container TTL has passed.
- :mod:`.dedupe`: :class:`Deduplicator` claims each stream event id in the idempotency table before
  publishing, so a redelivered record alerts once, and a failed publish is retried.
- :mod:`.stream`: :class:`StreamAlerts`, the use case: one batch's records in, a
  :class:`BatchOutcome` (the batch response, metrics, log fields) out.
- :mod:`.anomalies`: :class:`UsageWatcher`, the usage function's watcher: a metered batch's
  anomalies (:mod:`keysentry.watch`) as alerts, de-duplicated, and the suspension of keys that opted in.
- :mod:`.quota`: :class:`QuotaWatcher`, the usage function's other watcher: a key whose requests reach
  its plan's quota is marked ``quota_exhausted_until`` the period's end, and alerted once per period.
"""

from keysentry.alerts.anomalies import USAGE_ACTOR, UsageWatcher
from keysentry.alerts.dedupe import Deduplicator, EventInProgressError
from keysentry.alerts.events import (
    FLUSH_ON,
    QUOTA_EXHAUSTED,
    SCHEMA_VERSION,
    SEVERITY,
    USAGE_SEVERITY,
    lifecycle_event,
    quota_event,
    usage_event,
)
from keysentry.alerts.flush import (
    MAX_QUEUE_DELAY_S,
    REFLUSH_MARGIN_S,
    CacheFlusher,
    DelayedFlush,
    FlushScheduler,
)
from keysentry.alerts.once import AlertOnce, AlertsNotPublishedError
from keysentry.alerts.publish import BATCH, PUBLISH_ATTEMPTS, SOURCE, AlertPublisher, Publisher
from keysentry.alerts.quota import QuotaWatcher
from keysentry.alerts.stream import BatchOutcome, StreamAlerts

__all__ = [
    "BATCH",
    "FLUSH_ON",
    "MAX_QUEUE_DELAY_S",
    "PUBLISH_ATTEMPTS",
    "QUOTA_EXHAUSTED",
    "REFLUSH_MARGIN_S",
    "SCHEMA_VERSION",
    "SEVERITY",
    "SOURCE",
    "USAGE_ACTOR",
    "USAGE_SEVERITY",
    "AlertOnce",
    "AlertPublisher",
    "AlertsNotPublishedError",
    "BatchOutcome",
    "CacheFlusher",
    "Deduplicator",
    "DelayedFlush",
    "EventInProgressError",
    "FlushScheduler",
    "Publisher",
    "QuotaWatcher",
    "StreamAlerts",
    "UsageWatcher",
    "lifecycle_event",
    "quota_event",
    "usage_event",
]
