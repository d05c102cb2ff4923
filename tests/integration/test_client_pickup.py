"""The consumer's collection of a successor when things go wrong around it: async callbacks, a
silent or misconfigured management API, a store without the signing secret, a notice nobody
answers, a request cancelled in the middle of a one-time pickup."""

from __future__ import annotations

import asyncio
import gc
import logging
import threading
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import pytest
import requests
from keysentry import keyformat
from keysentry.client.httpx import KeysentryAuth as HttpxAuth
from keysentry.client.requests import KeysentryAuth as RequestsAuth

from tests.conftest import FakeClock
from tests.integration.client_helpers import (
    API,
    MANAGE,
    LocalGateway,
    httpx_transport,
    install_authorizer,
    serve,
)
from tests.integration.test_client import PARAMS, Consumer, follower, issue, run_schedule

LIBRARIES = ["requests", "httpx"]


@pytest.fixture
def authorizer(stack: Any, clock: FakeClock, monkeypatch: pytest.MonkeyPatch, api_service: Any) -> Any:
    return install_authorizer(stack, clock, monkeypatch)


async def prices(api: str, auth: HttpxAuth, times: int, transport: Any = None) -> list[int]:
    async with httpx.AsyncClient(auth=auth, transport=transport) as client:
        return [(await client.get(api + "/v1/prices/BTC", params=PARAMS)).status_code for _ in range(times)]


def test_an_async_client_awaits_async_callbacks_and_every_process_switches(
    service: Any, authorizer: Any, clock: FakeClock, lambda_context: Any
) -> None:
    gateway = LocalGateway("http", lambda_context)
    issued, secret = issue(service, "hmac", rotation_days=30)
    store: dict[str, Any] = {}

    async def save(successor: Any) -> None:  # what an asyncio application writes
        await asyncio.sleep(0)
        store.update(key=successor.key, signing_secret=successor.signing_secret)

    async def load() -> dict[str, Any]:
        await asyncio.sleep(0)
        return dict(store)

    with serve(gateway, API) as api, serve(gateway, MANAGE) as manage:
        options = {"signing": secret, "base_path": "/prod", "self_service": manage, "clock": clock}
        first, second = (
            HttpxAuth(issued.token, on_successor=save, load_successor=load, **options) for _ in "12"
        )
        clock.advance(days=30)
        run_schedule(service, lambda_context)
        successor = service.get(issued.record.kid).successor

        assert asyncio.run(prices(api, first, 3)) == [200] * 3
        assert keyformat.parse(store["key"]).kid == successor and first.kid == successor
        assert asyncio.run(prices(api, second, 3)) == [200] * 3  # its pickup: 404, then the store
        assert second.kid == successor

        clock.advance(days=7, seconds=1)
        run_schedule(service, lambda_context)
        assert asyncio.run(prices(api, second, 1)) == [200]
    assert gateway.refused() == []


def test_a_sync_client_refuses_async_callbacks_before_anything_is_sent() -> None:
    key = keyformat.generate().token

    async def save(successor: Any) -> None:
        pass

    options = {"self_service": MANAGE, "on_successor": save}
    with pytest.raises(TypeError, match="on_successor is a coroutine function"):
        RequestsAuth(key, **options)
    sent: list[httpx.Request] = []
    transport = httpx.MockTransport(lambda request: sent.append(request) or httpx.Response(200))
    client = httpx.Client(auth=HttpxAuth(key, **options), transport=transport)
    with client, pytest.raises(TypeError, match=r"httpx\.AsyncClient"):
        client.get(API + "/v1/prices/BTC")
    assert sent == []


@pytest.mark.parametrize("library", LIBRARIES)
def test_a_callback_returning_an_awaitable_in_a_sync_client_is_a_failure_not_a_switch(
    library: str, service: Any, authorizer: Any, clock: FakeClock, lambda_context: Any, caplog: Any
) -> None:
    caplog.set_level(logging.DEBUG, logger="keysentry.client")
    gateway = LocalGateway("rest", lambda_context)
    issued, secret = issue(service, "hmac", rotation_days=30)
    stored: list[Any] = []

    async def save(successor: Any) -> None:
        stored.append(successor)

    consumer = Consumer(
        library,
        gateway,
        issued.token,
        signing=secret,
        clock=clock,
        self_service=MANAGE,
        on_successor=lambda successor: save(successor),  # not an async def, yet gives a coroutine
    )
    clock.advance(days=30)
    run_schedule(service, lambda_context)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert [consumer.prices() for _ in range(3)] == [200] * 3
        gc.collect()

    assert stored == [] and consumer.auth.kid == issued.record.kid  # kept the key it can use
    assert "on_successor returned an awaitable" in caplog.text
    assert not [w for w in caught if "never awaited" in str(w.message)]
    consumer.auth.holder.on_successor = stored.append  # the application fixes its callback
    clock.advance(61)
    assert consumer.prices() == 200
    assert [s.kid for s in stored] == [consumer.auth.kid] == [service.get(issued.record.kid).successor]


@contextmanager
def silent_server() -> Iterator[str]:
    """Accepts connections and requests, and never answers until the test ends."""
    release = threading.Event()

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: Any) -> None:
            pass

        def do_POST(self) -> None:
            release.wait(60)

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_port}/prod"
    finally:
        release.set()
        server.shutdown()
        server.server_close()


@pytest.mark.parametrize("library", LIBRARIES)
def test_a_silent_management_api_does_not_hang_the_applications_request(
    library: str,
    service: Any,
    authorizer: Any,
    clock: FakeClock,
    lambda_context: Any,
    caplog: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    caplog.set_level(logging.DEBUG, logger="keysentry.client")
    module: Any = __import__(f"keysentry.client.{library}", fromlist=["PICKUP_TIMEOUT"])
    monkeypatch.setattr(module, "PICKUP_TIMEOUT", (0.5, 0.5) if library == "requests" else httpx.Timeout(0.5))
    gateway = LocalGateway("rest", lambda_context)
    issued, secret = issue(service, "hmac", rotation_days=30)
    clock.advance(days=30)
    run_schedule(service, lambda_context)
    statuses: list[int] = []
    with serve(gateway, API) as api, silent_server() as manage:
        options = {"signing": secret, "base_path": "/prod", "clock": clock, "on_successor": print}
        auth: Any = (RequestsAuth if library == "requests" else HttpxAuth)(
            issued.token, self_service=manage, **options
        )
        session: Any = requests.Session() if library == "requests" else httpx.Client(timeout=None)  # noqa: S113 - what is tested

        def call() -> None:
            with session:  # the application sets no timeout of its own
                statuses.extend(session.get(api + "/v1/prices/BTC", auth=auth).status_code for _ in range(2))

        worker = threading.Thread(target=call, daemon=True)
        worker.start()
        worker.join(30)  # the silent server answers only once the test ends
        assert not worker.is_alive()
    assert statuses == [200, 200] and auth.kid == issued.record.kid
    assert "collecting the successor failed (ReadTimeout)" in caplog.text


@pytest.mark.parametrize("library", LIBRARIES)
def test_a_management_url_that_cannot_be_signed_is_refused_at_once(library: str) -> None:
    auth_class: Any = RequestsAuth if library == "requests" else HttpxAuth
    with pytest.raises(ValueError, match=r"self_service cannot be signed as it is.*dot segment"):
        auth_class(
            keyformat.generate().token, self_service="https://m.example/prod/../prod", on_successor=print
        )
    with pytest.raises(ValueError, match="self_service"):
        auth_class(
            keyformat.generate().token, self_service="https://user:pw@m.example/prod", on_successor=print
        )
    escaped = auth_class(
        keyformat.generate().token, self_service="https://m.example/pr%6Fd/", on_successor=print
    )
    assert escaped.holder.self_service == "https://m.example/prod"


class BrokenTransport(httpx.BaseTransport, httpx.AsyncBaseTransport):
    """A transport with a bug of its own: it raises what no network error is."""

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        raise RuntimeError("transport bug")

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        raise RuntimeError("transport bug")


@pytest.mark.parametrize(
    ("client", "pickup_transport", "logged"),
    [
        ("async", httpx.HTTPTransport(), "httpx.AsyncClient needs an async one"),
        ("sync", httpx.AsyncHTTPTransport(), "httpx.Client needs a synchronous one"),
        ("sync", BrokenTransport(), "collecting the successor failed (RuntimeError)"),
        ("async", BrokenTransport(), "collecting the successor failed (RuntimeError)"),
    ],
)
def test_any_pickup_failure_leaves_the_applications_requests_alone_and_is_retried(
    client: str,
    pickup_transport: Any,
    logged: str,
    service: Any,
    authorizer: Any,
    clock: FakeClock,
    lambda_context: Any,
    caplog: Any,
) -> None:
    caplog.set_level(logging.DEBUG, logger="keysentry.client")
    gateway = LocalGateway("rest", lambda_context)
    issued, secret = issue(service, "hmac", rotation_days=30)
    options = {"signing": secret, "base_path": "/prod", "self_service": MANAGE, "clock": clock}
    auth = HttpxAuth(issued.token, pickup_transport=pickup_transport, on_successor=print, **options)
    clock.advance(days=30)
    run_schedule(service, lambda_context)

    def calls() -> list[int]:
        if client == "async":
            return asyncio.run(prices(API, auth, 3, httpx_transport(gateway)))
        with httpx.Client(auth=auth, transport=httpx_transport(gateway)) as sync:
            return [sync.get(API + "/v1/prices/BTC", params=PARAMS).status_code for _ in range(3)]

    assert calls() == [200] * 3
    assert logged in caplog.text and auth.kid == issued.record.kid
    assert issued.token not in caplog.text and secret not in caplog.text
    caplog.clear()
    clock.advance(61)
    assert calls() == [200] * 3 and logged in caplog.text  # tried again, later
    with pytest.raises(TypeError, match="pickup_transport must be an httpx transport"):
        HttpxAuth(issued.token, pickup_transport=object(), on_successor=print, **options)


def test_a_stored_successor_without_its_signing_secret_never_turns_an_hmac_key_unsigned(
    service: Any, authorizer: Any, clock: FakeClock, lambda_context: Any, caplog: Any
) -> None:
    caplog.set_level(logging.DEBUG, logger="keysentry.client")
    gateway = LocalGateway("http", lambda_context)
    issued, secret = issue(service, "hmac", rotation_days=30)
    store: dict[str, Any] = {}
    options = {
        "signing": secret,
        "clock": clock,
        "self_service": MANAGE,
        "load_successor": lambda: dict(store),
    }
    first = Consumer(
        "requests", gateway, issued.token, on_successor=lambda s: store.update(key=s.key), **options
    )
    second = Consumer("httpx", gateway, issued.token, on_successor=print, **options)
    clock.advance(days=30)
    run_schedule(service, lambda_context)

    assert first.prices() == 200  # collected; its store kept the key and lost the secret
    assert [second.prices() for _ in range(3)] == [200] * 3
    assert second.auth.kid == issued.record.kid  # still the predecessor, still signing
    assert "has no signing_secret" in caplog.text
    assert secret not in caplog.text and store["key"] not in caplog.text and issued.token not in caplog.text
    assert [call.path for call in gateway.refused()] == ["/self/successor"]  # its own pickup: 404


def test_a_notice_nobody_answers_is_asked_less_often_and_not_after_its_grace(
    service: Any, authorizer: Any, clock: FakeClock, lambda_context: Any
) -> None:
    """An owner's rotation: the successor went to the owner, every pickup is a 404."""
    gateway = LocalGateway("rest", lambda_context)
    issued, secret = issue(service, "hmac")
    consumer = follower("requests", gateway, issued, secret, clock, on_successor=print)
    service.rotate(issued.record.kid, actor="ops", grace_days=1)

    def pickups() -> int:
        return [call.path for call in gateway.calls].count("/self/successor")

    for _ in range(60):  # an hour, a request a minute
        assert consumer.prices() == 200
        clock.advance(61)
    assert 2 <= pickups() <= 8  # asked again, less and less often

    clock.advance(days=1)
    run_schedule(service, lambda_context)
    before = pickups()
    for _ in range(12):  # the key has expired: refused, and its notice is over
        assert consumer.prices() == 403
        clock.advance(3600)
    assert pickups() == before


def test_the_grace_end_handed_over_is_the_predecessors_however_late_the_pickup(
    service: Any, authorizer: Any, clock: FakeClock, lambda_context: Any
) -> None:
    """POST /self/successor names the calling key's grace end (``predecessor_grace_until``)."""
    gateway = LocalGateway("rest", lambda_context)
    issued, secret = issue(service, "hmac", rotation_days=30)
    stored: list[Any] = []
    consumer = follower("httpx", gateway, issued, secret, clock, on_successor=stored.append)
    clock.advance(days=30)
    run_schedule(service, lambda_context)

    assert consumer.prices() == 200  # the notice; httpx collects on the next request
    clock.advance(1000)
    assert consumer.prices() == 200
    assert stored[0].grace_ends_at == service.get(issued.record.kid).grace_until


def test_a_request_cancelled_during_a_one_time_pickup_does_not_lose_the_successor(
    service: Any, authorizer: Any, clock: FakeClock, lambda_context: Any
) -> None:
    gateway = LocalGateway("rest", lambda_context)
    issued, secret = issue(service, "hmac", rotation_days=30)
    stored: list[Any] = []
    answering = httpx_transport(gateway)

    async def slow_management_api(request: httpx.Request) -> httpx.Response:
        handed_over = answering.handle_request(request)  # the one-time successor leaves the API
        await asyncio.sleep(0.5)  # and arrives after the application gave up on its request
        return handed_over

    auth = HttpxAuth(
        issued.token,
        signing=secret,
        base_path="/prod",
        clock=clock,
        self_service=MANAGE,
        on_successor=stored.append,
        pickup_transport=httpx.MockTransport(slow_management_api),
    )
    clock.advance(days=30)
    run_schedule(service, lambda_context)
    successor = service.get(issued.record.kid).successor

    async def application() -> list[int]:
        async with httpx.AsyncClient(auth=auth, transport=httpx_transport(gateway)) as client:
            url = API + "/v1/prices/BTC"
            assert (await client.get(url, params=PARAMS)).status_code == 200  # the notice
            with pytest.raises(TimeoutError):
                await asyncio.wait_for(client.get(url, params=PARAMS), 0.1)
            for _ in range(50):
                if stored:
                    break
                await asyncio.sleep(0.05)
            return [(await client.get(url, params=PARAMS)).status_code for _ in range(2)]

    assert asyncio.run(application()) == [200, 200]
    assert [s.kid for s in stored] == [successor] and auth.kid == successor
    assert gateway.calls[-1].kid == successor and gateway.refused() == []
