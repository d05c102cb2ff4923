"""The REST stage's authorizer cache: flushed at a change that can narrow a key, and again later.

:class:`CacheFlusher` flushes the stage's authorizer cache on every change that can narrow what a
key may do (:data:`keysentry.alerts.events.FLUSH_ON`), and :class:`FlushScheduler` sends the second
flush to the delay queue: a warm authorizer container may still allow from memory for up to its TTL
and refill the stage's cache, so the stage is flushed again once that TTL (plus a margin) has
passed. :class:`DelayedFlush` is that queue's consumer.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Final

from keysentry import aws

if TYPE_CHECKING:
    from mypy_boto3_apigateway import APIGatewayClient
    from mypy_boto3_sqs import SQSClient

REFLUSH_MARGIN_S: Final = 5  # past the container TTL: clock granularity, a GetItem in flight
MAX_QUEUE_DELAY_S: Final = 900  # SQS DelaySeconds' ceiling


class CacheFlusher:
    """Flush a REST API stage's authorizer cache, so a cached Allow stops at once."""

    def __init__(self, target: str, client: APIGatewayClient | None = None) -> None:
        api_id, _, stage = target.partition("/")
        self.api_id, self.stage = api_id, stage
        self._client = client

    @property
    def enabled(self) -> bool:
        return bool(self.api_id and self.stage)

    def flush(self) -> bool:
        client = self._client or aws.client("apigateway")
        client.flush_stage_authorizers_cache(restApiId=self.api_id, stageName=self.stage)
        return True


class FlushScheduler:
    """Schedule the second flush of the stage's authorizer cache through the SQS delay queue.

    The first flush, at the change, empties API Gateway's cache; but an authorizer container that
    read the key before the change keeps allowing it from memory for up to ``container_ttl`` seconds
    (``AuthorizerCacheTtlSeconds``) and API Gateway caches that Allow again, for its own TTL. A flush
    after ``container_ttl`` + :data:`REFLUSH_MARGIN_S` removes the last of them, so the revocation
    bound is the container TTL plus the margin and the delivery latency, whatever the stage's TTL.
    """

    def __init__(self, queue_url: str, container_ttl: float, client: SQSClient | None = None) -> None:
        self.queue_url = queue_url
        self.container_ttl = container_ttl
        self._client = client

    @property
    def enabled(self) -> bool:
        return bool(self.queue_url)

    @property
    def delay(self) -> int:
        """Seconds until the second flush (the template's bounds keep it within SQS's 900)."""
        return min(MAX_QUEUE_DELAY_S, math.ceil(max(0.0, self.container_ttl)) + REFLUSH_MARGIN_S)

    def schedule(self, events: Sequence[dict[str, Any]]) -> int:
        """One delayed message for the batch's urgent events; returns its delay. Raises on failure."""
        sqs = self._client or aws.client("sqs")
        body = {
            "kids": sorted({str(e["kid"]) for e in events}),
            "events": sorted(str(e["id"]) for e in events),
            "at": max(int(e["at"] or 0) for e in events),
        }
        sqs.send_message(QueueUrl=self.queue_url, MessageBody=json.dumps(body), DelaySeconds=self.delay)
        return self.delay


class DelayedFlush:
    """The delay queue's consumer: flush the stage's authorizer cache, at most once per invocation.

    The message only says why (kids, change time): the stage flushed is the function's own
    configuration, never the message's. A failed flush fails the record it was tried for, alone;
    the next record of the batch tries again, and a failed record returns to the queue.
    """

    def __init__(self, flusher: CacheFlusher) -> None:
        self.flusher = flusher
        self.flushed = False
        self.kids: set[str] = set()

    def handle(self, body: str) -> None:
        try:
            doc = json.loads(body)
            self.kids.update(str(k) for k in doc.get("kids", []) if isinstance(k, str))
        except (ValueError, AttributeError, TypeError):
            pass  # flushing is always safe: an unreadable message still flushes
        if not self.flushed and self.flusher.enabled:
            self.flushed = self.flusher.flush()
