"""Alerts raised from usage, each once: claimed before anything is done for it, published, then
marked done, or released when publishing failed (the batch then fails, and its redelivery publishes
what was released). The anomaly and quota watchers share it."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from keysentry.alerts.dedupe import Deduplicator, EventInProgressError
from keysentry.alerts.publish import Publisher


class AlertsNotPublishedError(RuntimeError):
    """Some alerts could not be published: the batch fails, and its redelivery publishes them."""


class AlertOnce:
    def __init__(self, publisher: Publisher, dedup: Deduplicator | None) -> None:
        self.publisher = publisher
        self.dedup = dedup  # None: no de-duplication (a test, a local run)
        self.duplicates = 0

    def claim(self, event_id: str) -> bool:
        """True if this invocation now owns the alert; False if it was published, or another
        invocation is publishing it now."""
        if self.dedup is None:
            return True
        try:
            claimed = self.dedup.claim(event_id)
        except EventInProgressError:
            claimed = False
        self.duplicates += not claimed
        return claimed

    def publish(self, events: Sequence[dict[str, Any]], what: str) -> None:
        """Publish the claimed ``events``; mark each done, or release it if it failed (and raise)."""
        failed = self.publisher.publish(events) if events else set()
        for event in events:
            if self.dedup is None:
                continue
            if event["id"] in failed:
                self.dedup.release(event["id"])
            else:
                self.dedup.done(event["id"])
        if failed:
            raise AlertsNotPublishedError(f"{len(failed)} {what} alerts could not be published")
