"""Any change that can narrow what a key may do flushes the stage's authorizer cache, twice, as a
revoke does: a narrowing policy change (scopes removed, a denied range added, a public key that
makes the key require signed requests), an expiry and a rotation. Without the flush API Gateway
keeps serving its cached Allow for up to GatewayAuthorizerCacheTtlSeconds."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from keysentry.alerts import FLUSH_ON, SEVERITY, CacheFlusher, FlushScheduler

from functions.alerts import handler as alerts_handler
from tests.conftest import FakeClock
from tests.integration.stream_helpers import StreamReader, batch
from tests.security.test_revocation_bound import CONTAINER_TTL, TARGET, DelayQueue


class Stage:
    def __init__(self) -> None:
        self.flushes = 0

    def flush_stage_authorizers_cache(self, restApiId: str, stageName: str) -> dict[str, Any]:
        assert f"{restApiId}/{stageName}" == TARGET
        self.flushes += 1
        return {}


class Publisher:
    def __init__(self) -> None:
        self.events: list[dict[str, Any]] = []

    def publish(self, events: Any) -> set[str]:
        self.events.extend(events)
        return set()


def _ed25519_pem() -> str:
    return (
        Ed25519PrivateKey.generate()
        .public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )


CHANGES: dict[str, tuple[str, Callable[[Any, str], Any]]] = {
    "scopes_removed": (
        "policy_changed",
        lambda s, kid: s.update(kid, actor="ops", scopes=["prices:read"]),
    ),
    "deny_cidr_added": (
        "policy_changed",
        lambda s, kid: s.update(kid, actor="ops", deny_cidrs=["203.0.113.0/24"]),
    ),
    "public_key_registered": (
        "policy_changed",
        lambda s, kid: s.update(kid, actor="ops", public_key=_ed25519_pem()),
    ),
    "expired": (
        "expired",
        lambda s, kid: s.expire(s.get(kid), actor="rotation-schedule", reason="lifetime ended"),
    ),
    "rotated": ("rotated", lambda s, kid: s.rotate(kid, actor="ops", reason="routine")),
}


@pytest.mark.parametrize("change", sorted(CHANGES))
def test_a_narrowing_change_flushes_the_stage_and_schedules_the_second_flush(
    stack: Any, service: Any, lambda_context: Any, change: str
) -> None:
    kind, apply = CHANGES[change]
    stream = StreamReader(stack.refs["KeysTable"])
    kid = service.create("acme", actor="ops", scopes=["prices:read", "orders:write"]).record.kid
    stream.read()
    apply(service, kid)
    stage, queue, publisher = Stage(), DelayQueue(FakeClock()), Publisher()
    response = alerts_handler.lambda_handler(
        batch(stream.read()),
        lambda_context,
        publisher=publisher,
        flusher=CacheFlusher(TARGET, client=stage),
        reflush=FlushScheduler("queue", CONTAINER_TTL, client=queue),
    )
    assert response == {"batchItemFailures": []}
    (event,) = [e for e in publisher.events if e["kid"] == kid]
    assert event["type"] == kind
    assert stage.flushes == 1, "the stage's cached Allow outlives the change"
    assert len(queue.due) == 1, "no second flush: a warm container refills the stage's cache"
    assert event["authorizer_cache_flushed"] is True
    assert event["authorizer_cache_reflush_in"] == CONTAINER_TTL + 5


def test_only_changes_that_cannot_narrow_a_key_skip_the_flush() -> None:
    """Every event type either flushes or only widens (or announces) what a key may do."""
    assert set(SEVERITY) - FLUSH_ON == {"created", "resumed", "rotation_due_soon"}
