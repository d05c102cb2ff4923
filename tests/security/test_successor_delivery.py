"""A consumer whose key rotates on the schedule ends up holding its successor, and only it does.

With an X25519 delivery key the successor is sealed to it: the sealed blob reaches the consumer on
the ``rotated`` alert and from ``POST /self/successor`` (as often as asked, while the predecessor is
in its grace), and only the private key opens it. Without one, ``POST /self/successor`` gives the
plaintext once. Every pickup leaves an audit entry (who, when), never the secret.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from keysentry.authorizer import Authorizer, Outcome, read_request
from keysentry.client import open_successor
from keysentry.envelope import open_sealed
from keysentry.peppers import PepperSource
from keysentry.rotation import RotationJob
from keysentry.routes import RouteTable
from keysentry.store import KeyStore

from functions.alerts import handler as alerts_handler
from tests.conftest import FakeClock
from tests.integration.api_helpers import call
from tests.integration.authz_helpers import event
from tests.integration.stream_helpers import StreamReader, Targets, batch

ROUTES = '{"GET /v1/prices": "prices:read", "GET /v1/prices/*": "prices:read"}'


@pytest.fixture
def consumer() -> Any:
    """The consumer's X25519 key pair: the private half never leaves the test."""
    from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

    return X25519PrivateKey.generate()


def public_pem(private: Any) -> str:
    from cryptography.hazmat.primitives import serialization

    return str(
        private.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )


def private_pem(private: Any) -> bytes:
    from cryptography.hazmat.primitives import serialization

    return bytes(
        private.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )


def authorize(stack: Any, clock: FakeClock, token: str) -> Outcome:
    authorizer = Authorizer(
        KeyStore(stack.refs["KeysTable"]),
        PepperSource(stack.refs["PepperSecret"]),
        RouteTable.from_json(ROUTES),
        cache_ttl=0,
        clock=clock,
    )
    request = read_request(event("authorizer_rest_request_valid", token))
    assert request is not None
    return authorizer.decide(request).outcome


def scheduled_rotation(service: Any, clock: FakeClock, **create: Any) -> str:
    kid: str = service.create(
        "acme", actor="ops", scopes=["prices:read"], rotation_days=30, **create
    ).record.kid
    clock.advance(days=30)
    summary = RotationJob(service).run()
    assert [pair.split("->")[0] for pair in summary.rotated] == [kid]
    return kid


def pickups(service: Any, kid: str) -> list[Any]:
    return [e for e in service.store.audit(kid) if e.action.startswith("successor_")]


def test_a_sealed_successor_reaches_the_consumer_on_the_alert_and_from_self_successor(
    stack: Any,
    api_service: Any,
    clock: FakeClock,
    consumer: Any,
    lambda_context: Any,
) -> None:
    stream, targets = StreamReader(stack.refs["KeysTable"]), Targets(stack)
    kid = scheduled_rotation(api_service, clock, delivery_key=public_pem(consumer))
    successor_kid = api_service.get(kid).successor

    # the rotated alert, as the subscriber receives it
    assert alerts_handler.lambda_handler(batch(stream.read()), lambda_context) == {"batchItemFailures": []}
    rotated = [json.loads(e["Message"]) for e in targets.from_sns()]
    (alert,) = [e for e in rotated if e["type"] == "rotated"]
    assert alert["kid"] == kid and alert["successor"] == successor_kid
    from_alert = open_successor(alert["sealed_successor"], private_key=private_pem(consumer))
    assert from_alert["kid"] == successor_kid
    (on_bus,) = [e["detail"] for e in targets.from_bus() if e["detail-type"] == "key.rotated"]
    assert open_sealed(consumer, on_bus["sealed_successor"]) == from_alert

    # POST /self/successor, called with the predecessor (as often as the consumer needs it)
    for _ in range(2):
        status, doc = call("api_self_successor", lambda_context, kid=kid)
        assert status == 200, doc
        assert doc["kid"] == successor_kid and doc["predecessor"] == kid and "key" not in doc
        assert open_sealed(consumer, doc["sealed_successor"]) == from_alert

    # the consumer, holding only what it was sent, is let in with the successor
    assert authorize(stack, clock, from_alert["key"]) is Outcome.ALLOW

    audit = pickups(api_service, successor_kid)
    assert [(e.action, e.actor, e.at) for e in audit] == [
        ("successor_sealed_fetched", f"key:{kid}", clock())
    ] * 2


def test_a_sealed_blob_opens_only_with_the_consumers_private_key(
    stack: Any, api_service: Any, clock: FakeClock, consumer: Any, lambda_context: Any
) -> None:
    from cryptography.exceptions import InvalidTag
    from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

    kid = scheduled_rotation(api_service, clock, delivery_key=public_pem(consumer))
    status, doc = call("api_self_successor", lambda_context, kid=kid)
    assert status == 200
    with pytest.raises(InvalidTag):
        open_sealed(X25519PrivateKey.generate(), doc["sealed_successor"])


def test_without_a_delivery_key_the_successor_is_given_once_and_the_pickup_is_audited(
    stack: Any, api_service: Any, clock: FakeClock, lambda_context: Any
) -> None:
    kid = scheduled_rotation(api_service, clock)
    successor_kid = api_service.get(kid).successor
    status, doc = call("api_self_successor", lambda_context, kid=kid)
    assert status == 200 and doc["kid"] == successor_kid and "sealed_successor" not in doc
    assert authorize(stack, clock, doc["key"]) is Outcome.ALLOW
    assert call("api_self_successor", lambda_context, kid=kid)[0] == 404
    audit = pickups(api_service, successor_kid)
    assert [(e.action, e.actor, e.at) for e in audit] == [("successor_picked_up", f"key:{kid}", clock())]
    assert doc["key"] not in json.dumps([e.as_dict() for e in api_service.store.audit(successor_kid)])


def test_a_pickup_and_its_audit_entry_land_together(
    stack: Any, api_service: Any, clock: FakeClock, lambda_context: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """If the audit entry cannot be written, the one-time copy is not spent and nothing is given out."""
    from botocore.exceptions import ClientError

    kid = scheduled_rotation(api_service, clock)
    successor_kid = api_service.get(kid).successor
    client = api_service.store.client
    real = client.transact_write_items

    def failing(**kwargs: Any) -> Any:
        raise ClientError({"Error": {"Code": "InternalServerError", "Message": "boom"}}, "TransactWriteItems")

    monkeypatch.setattr(client, "transact_write_items", failing)
    assert call("api_self_successor", lambda_context, kid=kid)[0] >= 500
    assert "pickup" in api_service.store.get_item(successor_kid)
    assert pickups(api_service, successor_kid) == []
    monkeypatch.setattr(client, "transact_write_items", real)
    assert call("api_self_successor", lambda_context, kid=kid)[0] == 200
    assert len(pickups(api_service, successor_kid)) == 1


def test_a_revoked_predecessor_collects_nothing(
    stack: Any, api_service: Any, clock: FakeClock, consumer: Any, lambda_context: Any
) -> None:
    kid = scheduled_rotation(api_service, clock, delivery_key=public_pem(consumer))
    api_service.revoke(kid, actor="sec", reason="stolen laptop")
    assert call("api_self_successor", lambda_context, kid=kid)[0] == 404


def test_a_successor_suspended_since_is_not_handed_out(
    stack: Any, api_service: Any, clock: FakeClock, lambda_context: Any
) -> None:
    kid = scheduled_rotation(api_service, clock)
    api_service.suspend(api_service.get(kid).successor, actor="sec", reason="leak?")
    assert call("api_self_successor", lambda_context, kid=kid)[0] == 404
