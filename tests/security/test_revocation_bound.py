"""A revoked key is refused within a stated bound, whatever API Gateway's own cache TTL.

The measurement: API Gateway's authorizer cache (TTL ``GatewayAuthorizerCacheTtlSeconds``) is modelled
in front of the real :class:`Authorizer` (one warm container, in-memory TTL ``AuthorizerCacheTtlSeconds``),
both on a fake wall clock and a fake monotonic clock. The key is used once a second; it is revoked at
t0; the keys table's stream records reach the real alerts handler, and the delay queue's message the
real flush handler, when the system would deliver them. The lag is the time from t0 to the last
request that was let in, over several phases of the caches against t0 (the worst is the container
reading the key just before the revoke).

Stated bound, with ``FlushAuthorizerCache`` set: container TTL + :data:`REFLUSH_MARGIN_S` + the
stream's and the queue's delivery latency. Without the flush, a stage that caches: gateway TTL +
container TTL.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

import pytest
from keysentry.alerts import MAX_QUEUE_DELAY_S, REFLUSH_MARGIN_S, CacheFlusher, FlushScheduler
from keysentry.authorizer import Authorizer, Outcome, Request, read_request, respond
from keysentry.peppers import PepperSource
from keysentry.routes import RouteTable
from keysentry.store import KeyStore

from functions.alerts import handler as alerts_handler
from functions.cache_flush import handler as flush_handler
from tests.conftest import FakeClock, template
from tests.integration.authz_helpers import event
from tests.integration.stream_helpers import StreamReader, batch

CONTAINER_TTL = 30  # AuthorizerCacheTtlSeconds' default
STREAM_LATENCY = 2  # change -> alerts function: the 1 s batching window and the stream's polling
QUEUE_LATENCY = 2  # delayed message visible -> flush function: SQS polling
BOUND = CONTAINER_TTL + REFLUSH_MARGIN_S + STREAM_LATENCY + QUEUE_LATENCY
ROUTES = '{"GET /v1/prices": "prices:read", "GET /v1/prices/*": "prices:read"}'
TARGET = "a1b2c3d4e5/prod"


class Monotonic:
    def __init__(self) -> None:
        self.now = 10_000.0

    def __call__(self) -> float:
        return self.now


@dataclass
class Gateway:
    """API Gateway's authorizer cache in front of the authorizer container: keyed by the identity
    source (X-Api-Key), each result (Allow or Deny policy) kept ``ttl`` seconds; 0 caches nothing."""

    ttl: int
    authorizer: Authorizer
    cache: dict[str, tuple[int, str]] = field(default_factory=dict)
    flushes: list[int] = field(default_factory=list)
    now: int = 0

    def request(self, token: str) -> str:
        hit = self.cache.get(token)
        if hit is not None and hit[0] > self.now:
            return hit[1]
        effect = authorize(self.authorizer, token)
        if self.ttl > 0:
            self.cache[token] = (self.now + self.ttl, effect)
        return effect

    # what CacheFlusher calls: apigateway's FlushStageAuthorizersCache
    def flush_stage_authorizers_cache(self, restApiId: str, stageName: str) -> dict[str, Any]:
        assert f"{restApiId}/{stageName}" == TARGET
        self.cache.clear()
        self.flushes.append(self.now)
        return {}


_REQUESTS: dict[str, Request] = {}


def authorize(authorizer: Authorizer, token: str) -> str:
    """The real authorizer's decision and response, as the gateway gets them: Allow or Deny."""
    request = _REQUESTS.get(token)
    if request is None:
        request = read_request(event("authorizer_rest_request_valid", token))
        assert request is not None
        _REQUESTS.clear()
        _REQUESTS[token] = request
    decision = authorizer.decide(request)
    if decision.outcome not in (Outcome.ALLOW, Outcome.DENY):
        return decision.outcome.value
    # an Allow document's first statement allows; the Deny statements after it are for other routes
    statement = respond(authorizer, request, decision)["policyDocument"]["Statement"][0]
    return str(statement["Effect"])


@dataclass
class DelayQueue:
    """What FlushScheduler calls: sqs SendMessage, delivered DelaySeconds + the polling latency later."""

    clock: FakeClock
    due: list[tuple[int, dict[str, Any]]] = field(default_factory=list)

    def pending(self, now: int) -> bool:
        return any(due >= now for due, _ in self.due)

    def send_message(self, QueueUrl: str, MessageBody: str, DelaySeconds: int) -> dict[str, Any]:
        record = sqs_record(f"m{len(self.due)}", MessageBody)
        self.due.append((self.clock() + DelaySeconds + QUEUE_LATENCY, record))
        return {"MessageId": record["messageId"]}


@dataclass
class Deployment:
    stack: Any
    service: Any
    clock: FakeClock
    lambda_context: Any

    def lag(
        self,
        gateway_ttl: int,
        container_phase: int,
        gateway_phase: int,
        *,
        flush: bool = True,
        second_flush: bool = True,
    ) -> int:
        """Seconds from the revoke (t0) to the last request the flushed stage let in.

        The key is used every second on the stage, and every second on another API that shares the
        authorizer and does not cache (so the container holds the key, as it does under real
        traffic). The container last read the key ``container_phase`` seconds before t0; the stage's
        cache last missed ``gateway_phase`` seconds before t0.
        """
        mono = Monotonic()
        authorizer = Authorizer(
            KeyStore(self.stack.refs["KeysTable"]),
            PepperSource(self.stack.refs["PepperSecret"]),
            RouteTable.from_json(ROUTES),
            cache_ttl=CONTAINER_TTL,
            clock=self.clock,
            monotonic=mono,
        )
        gateway, queue = Gateway(gateway_ttl, authorizer), DelayQueue(self.clock)
        stream = StreamReader(self.stack.refs["KeysTable"])
        issued = self.service.create("acme", actor="ops", scopes=["prices:read"])
        stream.read()
        # The other API reads the key from the start: the container refreshes it every T, the last
        # time `container_phase` seconds before t0. The stage's first request is a miss, cached for
        # G: its steady state, `gateway_phase` seconds after a miss at t0.
        rounds = max(1, -(-(gateway_phase - container_phase) // CONTAINER_TTL))
        t0 = self.clock() + container_phase + rounds * CONTAINER_TTL
        stage_from = t0 - gateway_phase if gateway_ttl else self.clock()
        end = t0 + gateway_ttl + CONTAINER_TTL + BOUND + 10
        last_allow = None
        while self.clock() <= end:
            now = self.clock()
            allowing = any(until > now and effect == "Allow" for until, effect in gateway.cache.values())
            if now > t0 + CONTAINER_TTL + STREAM_LATENCY and not queue.pending(now) and not allowing:
                break  # no container holds the old record and no stage entry allows: it is over
            now = gateway.now = self.clock()
            if now == t0:
                self.service.revoke(issued.record.kid, actor="sec", reason="leaked")
            if now == t0 + STREAM_LATENCY:  # the stream's records reach the alerts function
                response = alerts_handler.lambda_handler(
                    batch(stream.read()),
                    self.lambda_context,
                    flusher=CacheFlusher(TARGET if flush else "", client=gateway),
                    reflush=FlushScheduler("queue" if second_flush else "", CONTAINER_TTL, client=queue),
                )
                assert response == {"batchItemFailures": []}
            for _, record in [d for d in queue.due if d[0] == now]:
                response = flush_handler.lambda_handler(
                    {"Records": [record]}, self.lambda_context, flusher=CacheFlusher(TARGET, client=gateway)
                )
                assert response == {"batchItemFailures": []}
            authorize(authorizer, issued.token)  # the other API
            if now >= stage_from and gateway.request(issued.token) == "Allow" and now >= t0:
                last_allow = now
            self.clock.advance(1)
            mono.now += 1
        gateway.now = self.clock()
        assert gateway.request(issued.token) == "Deny"
        return -1 if last_allow is None else last_allow - t0

    def worst(self, gateway_ttl: int, **kwargs: Any) -> int:
        """The longest lag over phases of the container and the stage's cache against the revoke."""
        gateway_phases = {1, 2, CONTAINER_TTL - 2, CONTAINER_TTL - 1, gateway_ttl // 2, gateway_ttl - 1}
        gateway_phases = {p for p in gateway_phases if 1 <= p < gateway_ttl} or {1}
        lags = [
            self.lag(gateway_ttl, container_phase, gateway_phase, **kwargs)
            for container_phase in (1, CONTAINER_TTL // 2)
            for gateway_phase in sorted(gateway_phases)
        ]
        return max(lags)


def sqs_record(message_id: str, body: str) -> dict[str, Any]:
    return {
        "messageId": message_id,
        "receiptHandle": "r",
        "body": body,
        "attributes": {},
        "messageAttributes": {},
        "eventSource": "aws:sqs",
        "eventSourceARN": "arn:aws:sqs:us-east-1:123456789012:flush",
        "awsRegion": "us-east-1",
    }


@pytest.fixture
def deployment(stack: Any, service: Any, clock: FakeClock, lambda_context: Any) -> Deployment:
    return Deployment(stack, service, clock, lambda_context)


@pytest.mark.parametrize("gateway_ttl", [0, 30, 300, 3600])
def test_a_revoked_key_is_refused_within_the_container_ttl_and_a_margin_whatever_the_gateway_ttl(
    deployment: Deployment, gateway_ttl: int
) -> None:
    lag = deployment.worst(gateway_ttl)
    assert 0 <= lag <= BOUND, f"last Allow {lag} s after the revoke (bound {BOUND} s)"


@pytest.mark.parametrize("gateway_ttl", [300, 3600])
def test_without_the_second_flush_a_caching_stage_outlives_the_bound(
    deployment: Deployment, gateway_ttl: int
) -> None:
    """The container read the key 1 s before the revoke; after the first flush the stage asks it
    again and caches its stale Allow for the stage's whole TTL."""
    assert deployment.lag(gateway_ttl, 1, 2) <= BOUND
    lag = deployment.lag(gateway_ttl, 1, 2, second_flush=False)
    assert lag > BOUND
    assert lag >= gateway_ttl


@pytest.mark.parametrize("gateway_ttl", [0, 30, 300])
def test_without_any_flush_the_bound_is_the_gateway_ttl_plus_the_container_ttl(
    deployment: Deployment, gateway_ttl: int
) -> None:
    """Worst: the stage's cache misses just before the container's record expires."""
    gateway_phase = max(1, gateway_ttl - CONTAINER_TTL + 3)
    lag = deployment.lag(gateway_ttl, 1, gateway_phase, flush=False)
    assert lag <= gateway_ttl + CONTAINER_TTL
    assert lag >= gateway_ttl + CONTAINER_TTL - 4 if gateway_ttl else lag == CONTAINER_TTL - 2


def test_the_second_flush_is_due_after_the_longest_container_ttl_the_template_allows() -> None:
    """SQS delays a message at most 900 s: the template's TTL bounds must keep the delay within it."""
    ttl = template()["Parameters"]["AuthorizerCacheTtlSeconds"]
    assert ttl["MaxValue"] + REFLUSH_MARGIN_S <= MAX_QUEUE_DELAY_S
    assert FlushScheduler("q", ttl["MaxValue"]).delay == ttl["MaxValue"] + REFLUSH_MARGIN_S
    assert FlushScheduler("q", ttl["Default"]).delay == ttl["Default"] + REFLUSH_MARGIN_S
    assert template()["Parameters"]["GatewayAuthorizerCacheTtlSeconds"]["MaxValue"] == 3600


def test_the_alerts_function_schedules_the_second_flush_and_the_stage_is_flushed_when_it_arrives(
    stack: Any, service: Any, lambda_context: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Through the template's queue (moto): the alerts function's environment names it, and the
    message waits the container TTL plus the margin."""
    from keysentry import aws

    variables = template()["Resources"]["AlertsFunction"]["Properties"]["Environment"]["Variables"]
    assert variables["AUTHORIZER_CACHE_FLUSH_QUEUE_URL"] == {
        "Fn::If": ["FlushesAuthorizerCache", {"Ref": "AuthorizerCacheFlushQueue"}, ""]
    }
    assert variables["AUTH_CACHE_TTL"] == {"Ref": "AuthorizerCacheTtlSeconds"}
    monkeypatch.setenv("AUTHORIZER_CACHE_FLUSH_QUEUE_URL", stack.refs["AuthorizerCacheFlushQueue"])
    monkeypatch.setenv("AUTH_CACHE_TTL", "30")

    class Stage:
        flushed = 0

        def flush_stage_authorizers_cache(self, restApiId: str, stageName: str) -> None:
            Stage.flushed += 1

    stream = StreamReader(stack.refs["KeysTable"])
    kid = service.create("acme", actor="ops").record.kid
    service.suspend(kid, actor="sec", reason="leak?")
    response = alerts_handler.lambda_handler(
        batch(stream.read()), lambda_context, flusher=CacheFlusher(TARGET, client=Stage())
    )
    assert response == {"batchItemFailures": []} and Stage.flushed == 1
    sqs = aws.client("sqs")
    url = stack.refs["AuthorizerCacheFlushQueue"]
    assert sqs.receive_message(QueueUrl=url).get("Messages", []) == [], "delayed, not visible yet"
    attributes = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["ApproximateNumberOfMessagesDelayed"])
    assert attributes["Attributes"]["ApproximateNumberOfMessagesDelayed"] == "1"


def sqs_event(*bodies: str) -> dict[str, Any]:
    return {"Records": [sqs_record(f"m{i}", body) for i, body in enumerate(bodies)]}


def test_the_flush_handler_flushes_once_per_batch_and_a_failed_flush_fails_only_its_record(
    stack: Any, lambda_context: Any
) -> None:
    class Flaky:
        calls = 0

        def flush_stage_authorizers_cache(self, restApiId: str, stageName: str) -> None:
            Flaky.calls += 1
            if Flaky.calls == 1:
                raise RuntimeError("TooManyRequestsException")

    body = json.dumps({"kids": ["AAAAAAAAAAAA"], "events": ["e"], "at": 1})
    response = flush_handler.lambda_handler(
        sqs_event(body, "not json", body), lambda_context, flusher=CacheFlusher(TARGET, client=Flaky())
    )
    assert response == {"batchItemFailures": [{"itemIdentifier": "m0"}]}
    assert Flaky.calls == 2, "one failed attempt, then one flush for the rest of the batch"


def test_when_the_second_flush_cannot_be_scheduled_the_urgent_records_are_retried_not_alerted(
    stack: Any, service: Any, lambda_context: Any
) -> None:
    class Down:
        def send_message(self, **kwargs: Any) -> None:
            raise RuntimeError("sqs unavailable")

    class Stage:
        def flush_stage_authorizers_cache(self, restApiId: str, stageName: str) -> None:
            return None

    published: list[str] = []

    class Publisher:
        def publish(self, events: Any) -> set[str]:
            published.extend(e["type"] for e in events)
            return set()

    stream = StreamReader(stack.refs["KeysTable"])
    kid = service.create("acme", actor="ops").record.kid
    service.revoke(kid, actor="sec", reason="leaked")
    records = stream.read()
    response = alerts_handler.lambda_handler(
        batch(records),
        lambda_context,
        publisher=Publisher(),
        flusher=CacheFlusher(TARGET, client=Stage()),
        reflush=FlushScheduler("queue", CONTAINER_TTL, client=Down()),
    )
    (revoked,) = [
        r["dynamodb"]["SequenceNumber"]
        for r in records
        if r["dynamodb"].get("NewImage", {}).get("status", {}).get("S") == "revoked"
    ]
    assert published == ["created"]
    assert response == {"batchItemFailures": [{"itemIdentifier": revoked}]}
    # redelivered: flushed and scheduled this time, then alerted
    queue = DelayQueue(FakeClock())
    response = alerts_handler.lambda_handler(
        batch([r for r in records if r["dynamodb"]["SequenceNumber"] >= revoked]),
        lambda_context,
        publisher=Publisher(),
        flusher=CacheFlusher(TARGET, client=Stage()),
        reflush=FlushScheduler("queue", CONTAINER_TTL, client=queue),
    )
    assert response == {"batchItemFailures": []} and published == ["created", "revoked"]
    assert len(queue.due) == 1
