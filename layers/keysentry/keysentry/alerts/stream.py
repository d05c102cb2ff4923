"""The alerts use case: one stream batch's records -> events, de-duplicated, the stage's authorizer
cache flushed for those that narrow a key, published; the records to retry, the figures to report."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from keysentry.alerts.dedupe import Deduplicator
from keysentry.alerts.events import FLUSH_ON, lifecycle_event
from keysentry.alerts.flush import CacheFlusher, FlushScheduler
from keysentry.alerts.publish import Publisher


@dataclass(frozen=True)
class BatchOutcome:
    """What one invocation did: the batch response, its metrics and its log line."""

    records: int
    failures: list[str]  # sequence numbers of the records to retry, each once
    published: list[tuple[str, str]]  # (type, kid)
    duplicates: int
    flushed: bool | None
    reflush_scheduled: bool | None

    def response(self) -> dict[str, Any]:
        """The partial batch response (ReportBatchItemFailures)."""
        return {"batchItemFailures": [{"itemIdentifier": s} for s in self.failures]}

    def metrics(self) -> dict[str, int]:
        return {
            "AlertsPublished": len(self.published),
            "AlertsDuplicate": self.duplicates,
            "RecordsFailed": len(self.failures),
        }

    def log_fields(self) -> dict[str, Any]:
        return {
            "records": self.records,
            "published": self.published,
            "duplicates": self.duplicates,
            "failed": len(self.failures),
            "authorizer_cache_flushed": self.flushed,
            "authorizer_cache_reflush_scheduled": self.reflush_scheduled,
        }


class StreamAlerts:
    """One invocation's work: collect events record by record, then flush the cache and publish."""

    def __init__(
        self,
        publisher: Publisher,
        dedup: Deduplicator | None,
        flusher: CacheFlusher | None,
        reflush: FlushScheduler | None = None,
    ) -> None:
        self.publisher = publisher
        self.dedup = dedup
        self.flusher = flusher
        self.reflush = reflush
        self.pending: list[tuple[dict[str, Any], str]] = []  # (event, sequence number)
        self.duplicates = 0
        self.flushed: bool | None = None
        self.reflush_scheduled: bool | None = None

    def collect(
        self, event_id: str, old_image: dict[str, Any] | None, new_image: dict[str, Any] | None, sequence: str
    ) -> None:
        event = lifecycle_event(event_id, old_image, new_image)
        if event is None:
            return
        if self.dedup is not None and not self.dedup.claim(event_id):
            self.duplicates += 1
            return
        self.pending.append((event, sequence))

    def finish(self) -> list[str]:
        """Publish what was collected; return the sequence numbers of records to retry."""
        events = [event for event, _ in self.pending]
        held = self._flush([e for e in events if e["type"] in FLUSH_ON])
        publish = [e for e in events if e["id"] not in held]
        failed_ids = (self.publisher.publish(publish) if publish else set()) | held
        retry = []
        for event, sequence in self.pending:
            if event["id"] in failed_ids:
                if self.dedup is not None:
                    self.dedup.release(event["id"])
                retry.append(sequence)
            elif self.dedup is not None:
                self.dedup.done(event["id"])
        return retry

    def close(self, record_failures: Sequence[str], records: int) -> BatchOutcome:
        """Finish the batch: ``record_failures`` are the records that could not be read (the batch
        processor's), retried with those whose events could not be published."""
        retry = self.finish()
        return BatchOutcome(
            records=records,
            failures=[*record_failures, *retry],
            published=[(e["type"], e["kid"]) for e, s in self.pending if s not in retry],
            duplicates=self.duplicates,
            flushed=self.flushed,
            reflush_scheduled=self.reflush_scheduled,
        )

    def _flush(self, urgent: list[dict[str, Any]]) -> set[str]:
        """Flush the stage's cache for the urgent events and schedule the second flush; the ids of
        the events to hold back (retry) because the second flush could not be scheduled."""
        if not urgent or self.flusher is None or not self.flusher.enabled:
            return set()
        try:
            self.flushed = self.flusher.flush()
        except Exception:
            self.flushed = False
        for event in urgent:
            event["authorizer_cache_flushed"] = self.flushed
        if self.reflush is None or not self.reflush.enabled:
            return set()
        try:
            delay = self.reflush.schedule(urgent)
        except Exception:
            # without the second flush the bound does not hold: retry these records
            # (flush and schedule again), and alert on them then
            self.reflush_scheduled = False
            return {e["id"] for e in urgent}
        self.reflush_scheduled = True
        for event in urgent:
            event["authorizer_cache_reflush_in"] = delay
        return set()
