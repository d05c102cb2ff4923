"""The consumer's client, driven through requests and httpx against the local stack: the
authorizer handler, the sample backend and the management API's /self routes, under moto."""

from __future__ import annotations

import logging
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519, rsa, x25519
from keysentry import keyformat
from keysentry.client import UnsignableRequestError, sign
from keysentry.model import Status

from functions.rotation import handler as rotation_handler
from tests.conftest import FakeClock
from tests.integration.authz_helpers import event
from tests.integration.client_helpers import (
    API,
    MANAGE,
    LocalGateway,
    httpx_client,
    httpx_transport,
    install_authorizer,
    requests_session,
)

ED25519 = ed25519.Ed25519PrivateKey.generate()
RSA = rsa.generate_private_key(public_exponent=65537, key_size=2048)
SCOPES = ["prices:read", "orders:write"]
PARAMS = {"currency": "usd", "tag": ["b", "a b"]}


def public_pem(private: Any) -> str:
    encoded = private.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return str(encoded.decode())


def issue(service: Any, mode: str, **fields: Any) -> tuple[Any, Any]:
    """A key that signs in ``mode``, and what its holder signs with."""
    if mode == "hmac":
        issued = service.create("acme", actor="ops", scopes=SCOPES, signing="hmac", **fields)
        return issued, issued.signing_secret
    private = {"ed25519": ED25519, "rsa": RSA}[mode]
    issued = service.create(
        "acme", actor="ops", scopes=SCOPES, signing=mode, public_key=public_pem(private), **fields
    )
    return issued, private


class Consumer:
    """An application's HTTP client with the auth class of its library."""

    def __init__(self, library: str, gateway: LocalGateway, key: str, **options: Any) -> None:
        if library == "requests":
            from keysentry.client.requests import KeysentryAuth as RequestsAuth

            self.auth: Any = RequestsAuth(key, base_path="/prod", **options)
            self.session: Any = requests_session(gateway)
        else:
            from keysentry.client.httpx import KeysentryAuth as HttpxAuth

            transport = httpx_transport(gateway)
            self.auth = HttpxAuth(key, base_path="/prod", pickup_transport=transport, **options)
            self.session = httpx_client(gateway)

    def call(self, method: str, path: str, **kwargs: Any) -> tuple[int, Any]:
        response = self.session.request(method, API + path, auth=self.auth, **kwargs)
        return response.status_code, response.json()

    def prices(self) -> int:
        return self.call("GET", "/v1/prices/BTC", params=PARAMS)[0]


def follower(
    library: str, gateway: LocalGateway, issued: Any, secret: Any, clock: FakeClock, **options: Any
) -> Consumer:
    """A consumer of ``issued`` that follows its rotations through the management API."""
    return Consumer(
        library, gateway, issued.token, signing=secret, clock=clock, self_service=MANAGE, **options
    )


@pytest.fixture
def authorizer(stack: Any, clock: FakeClock, monkeypatch: pytest.MonkeyPatch, api_service: Any) -> Any:
    return install_authorizer(stack, clock, monkeypatch)


LIBRARIES = ["requests", "httpx"]


@pytest.mark.parametrize("shape", ["rest", "http"])
@pytest.mark.parametrize("library", LIBRARIES)
@pytest.mark.parametrize("mode", ["hmac", "ed25519", "rsa"])
def test_signed_requests_are_accepted_in_every_mode_through_both_libraries(
    mode: str, library: str, shape: str, service: Any, authorizer: Any, clock: FakeClock, lambda_context: Any
) -> None:
    gateway = LocalGateway(shape, lambda_context)
    issued, signing = issue(service, mode)
    consumer = Consumer(library, gateway, issued.token, signing=signing, clock=clock)

    got, answer = consumer.call("GET", "/v1/prices/BTC", params=PARAMS)
    posted, order = consumer.call("POST", "/v1/orders", json={"symbol": "BTC", "qty": "0.5"})

    assert (got, posted) == (200, 200)
    assert answer["caller"]["key_id"] == order["caller"]["key_id"] == issued.record.kid
    assert answer["caller"]["signing"] == mode
    assert gateway.refused() == []


@pytest.mark.parametrize("library", LIBRARIES)
def test_a_query_in_another_spelling_is_sent_in_the_one_signed(
    library: str, service: Any, authorizer: Any, clock: FakeClock, lambda_context: Any
) -> None:
    """An HTTP API accepts only the canonical spelling; the libraries write ``+`` for a space and
    keep the caller's order. The same request signed by hand but sent as spelled is denied."""
    gateway = LocalGateway("http", lambda_context)
    issued, secret = issue(service, "hmac")
    consumer = Consumer(library, gateway, issued.token, signing=secret, clock=clock)
    spelled = "/v1/prices/BTC?tag=a+b&currency=usd&flag"

    assert consumer.call("GET", spelled)[0] == 200

    query = "tag=a+b&currency=usd&flag"
    headers = sign(
        "GET", "/v1/prices/BTC", query, key=issued.token, secret=secret, timestamp_ms=clock() * 1000
    )
    assert consumer.session.request("GET", API + spelled, headers=headers).status_code == 403


@pytest.mark.parametrize(
    ("library", "request_parts", "reason"),
    [
        ("requests", {"data": (part for part in [b"{}"])}, "stream"),
        ("httpx", {"url": API + "/v1/prices/BTC?q=100%"}, "percent-escape"),
        ("requests", {"url": API + "/v1/prices/BTC?q=%FF"}, "UTF-8"),
        ("httpx", {"headers": {"X-Ks-Signature": "AAAA"}}, "already has"),
        ("requests", {"headers": {"Content-Type": ""}}, "empty Content-Type"),
        ("httpx", {"url": "https://api.example.test/v1/orders"}, "base_path"),
    ],
)
def test_what_cannot_be_sent_as_signed_is_refused_before_it_leaves(
    library: str,
    request_parts: dict[str, Any],
    reason: str,
    service: Any,
    authorizer: Any,
    clock: FakeClock,
    lambda_context: Any,
) -> None:
    gateway = LocalGateway("rest", lambda_context)
    issued, secret = issue(service, "hmac")
    consumer = Consumer(library, gateway, issued.token, signing=secret, clock=clock)
    url = request_parts.pop("url", API + "/v1/orders")

    with pytest.raises(UnsignableRequestError, match=reason) as refused:
        consumer.session.request("POST", url, auth=consumer.auth, **request_parts)

    assert gateway.calls == []
    assert secret not in str(refused.value) and issued.token not in str(refused.value)


def run_schedule(service: Any, lambda_context: Any) -> None:
    rotation_handler.lambda_handler(event("rotation_scheduled"), lambda_context, service=service)


def delivery_options(sealed: bool) -> tuple[dict[str, Any], dict[str, Any]]:
    """(the key's fields, the client's options) for a key with or without an X25519 delivery key."""
    if not sealed:
        return {}, {}
    private = x25519.X25519PrivateKey.generate()
    return {"delivery_key": public_pem(private)}, {"delivery_key": private}


@pytest.mark.parametrize(
    ("library", "shape", "mode", "sealed"),
    [
        ("requests", "rest", "hmac", False),
        ("httpx", "http", "hmac", True),
        ("httpx", "rest", "ed25519", False),
        ("requests", "http", "rsa", True),
    ],
)
def test_a_scheduled_rotation_is_followed_with_no_refused_request(
    library: str,
    shape: str,
    mode: str,
    sealed: bool,
    service: Any,
    authorizer: Any,
    clock: FakeClock,
    lambda_context: Any,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG, logger="keysentry.client")  # the leak guard reads every line
    gateway = LocalGateway(shape, lambda_context)
    key_fields, client_options = delivery_options(sealed)
    issued, signing = issue(service, mode, rotation_days=30, **key_fields)
    stored: list[Any] = []
    consumer = Consumer(
        library,
        gateway,
        issued.token,
        signing=signing,
        clock=clock,
        self_service=MANAGE,
        on_successor=stored.append,
        **client_options,
    )
    assert consumer.prices() == 200

    # Given the schedule rotates the key: it keeps working through its grace window
    clock.advance(days=30)
    run_schedule(service, lambda_context)
    successor_kid = service.get(issued.record.kid).successor
    assert successor_kid is not None

    # When the application goes on calling, from eight threads at once
    with ThreadPoolExecutor(max_workers=8) as pool:
        statuses = list(pool.map(lambda _: consumer.prices(), range(40)))

    # Then the successor was collected once, stored, and is the key in use
    assert set(statuses) == {200}
    assert [call.path for call in gateway.calls].count("/self/successor") == 1
    assert [s.kid for s in stored] == [successor_kid]
    assert keyformat.parse(stored[0].key).kid == successor_kid
    assert (stored[0].signing_secret is not None) == (mode == "hmac")
    assert stored[0].signing_secret != signing
    assert stored[0].grace_ends_at == service.get(issued.record.kid).grace_until
    assert consumer.auth.kid == successor_kid
    assert consumer.prices() == 200 and gateway.calls[-1].kid == successor_kid

    # And after the grace window the predecessor is refused, and the client still succeeds
    clock.advance(days=7, seconds=1)
    run_schedule(service, lambda_context)
    assert service.get(issued.record.kid).status is Status.EXPIRED
    assert consumer.prices() == 200 and gateway.calls[-1].kid == successor_kid
    assert gateway.refused() == []
    stale = Consumer(library, gateway, issued.token, signing=signing, clock=clock)
    assert stale.prices() == 403


def test_a_failing_on_successor_keeps_the_successor_and_the_key_in_use_until_it_succeeds(
    service: Any, authorizer: Any, clock: FakeClock, lambda_context: Any, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="keysentry.client")
    gateway = LocalGateway("rest", lambda_context)
    issued, secret = issue(service, "hmac", rotation_days=30)
    offered: list[Any] = []

    def store(successor: Any) -> None:
        offered.append(successor)
        if len(offered) == 1:
            raise OSError("vault unavailable")

    consumer = follower("requests", gateway, issued, secret, clock, on_successor=store)
    clock.advance(days=30)
    run_schedule(service, lambda_context)
    assert [consumer.prices() for _ in range(3)] == [200, 200, 200]
    assert len(offered) == 1 and consumer.auth.kid == issued.record.kid  # not switched

    clock.advance(61)  # past retry_seconds: the next request offers the same successor again
    assert consumer.prices() == 200
    assert len(offered) == 2 and offered[1] == offered[0]
    assert consumer.auth.kid == offered[0].kid
    assert [call.path for call in gateway.calls].count("/self/successor") == 1  # picked up once
    assert gateway.refused() == []
    assert "OSError" in caplog.text


def test_a_rotation_the_owner_holds_the_successor_of_is_reported_and_the_key_kept(
    service: Any, authorizer: Any, clock: FakeClock, lambda_context: Any, caplog: pytest.LogCaptureFixture
) -> None:
    """An owner's rotation shows the successor to the owner only: nothing waits for pickup."""
    caplog.set_level(logging.DEBUG, logger="keysentry.client")
    gateway = LocalGateway("http", lambda_context)
    issued, secret = issue(service, "hmac")
    stored: list[Any] = []
    consumer = follower("httpx", gateway, issued, secret, clock, on_successor=stored.append)
    service.rotate(issued.record.kid, actor="ops")

    assert [consumer.prices() for _ in range(3)] == [200, 200, 200]
    assert stored == [] and consumer.auth.kid == issued.record.kid
    assert [call.status for call in gateway.calls if call.path == "/self/successor"] == [404]
    assert "an owner's rotation" in caplog.text
