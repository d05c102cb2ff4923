"""The consumer's client over real sockets and the edges of a rotation: redirects never carry the
key, httpx.AsyncClient follows a rotation, processes sharing a key all switch, a wrong notice or an
unreachable management API costs nothing, and a path is sent in the spelling the authorizer takes."""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import pytest
import requests
from keysentry import keyformat
from keysentry.client import UnsignableRequestError
from keysentry.client.httpx import AsyncKeysentryTransport, KeysentryTransport
from keysentry.client.httpx import KeysentryAuth as HttpxAuth
from keysentry.client.requests import KeysentryAuth as RequestsAuth

from tests.conftest import FakeClock
from tests.integration.client_helpers import API, MANAGE, LocalGateway, install_authorizer, serve
from tests.integration.test_client import PARAMS, Consumer, delivery_options, follower, issue, run_schedule

LIBRARIES = ["requests", "httpx"]
OUR_HEADERS = (
    "x-api-key",
    "x-ks-algorithm",
    "x-ks-timestamp",
    "x-ks-nonce",
    "x-ks-content-sha256",
    "x-ks-signature",
)


@pytest.fixture
def authorizer(stack: Any, clock: FakeClock, monkeypatch: pytest.MonkeyPatch, api_service: Any) -> Any:
    return install_authorizer(stack, clock, monkeypatch)


@contextmanager
def recording_server(
    host: str, redirect_to: str | None, status: int = 302
) -> Iterator[tuple[str, list[dict[str, str]]]]:
    """A server on ``host`` that records each request's headers and answers ``status`` (a
    redirect) to ``redirect_to``, or 200."""
    seen: list[dict[str, str]] = []

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args: Any) -> None:
            pass

        def do_GET(self) -> None:
            seen.append({k.lower(): v for k, v in self.headers.items()} | {":path": self.path})
            target = None if self.path.endswith("/landed") else redirect_to
            self.send_response(status if target else 200)
            if target:
                self.send_header("Location", target)
            self.send_header("Content-Length", "0")
            self.end_headers()

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://{host}:{server.server_port}", seen
    finally:
        server.shutdown()
        server.server_close()


def get_following_redirects(library: str, url: str, key: str) -> None:
    if library == "requests":
        requests.get(url, auth=RequestsAuth(key, signing="s" * 43, base_path="/prod"), timeout=5)
    elif library == "httpx":
        with httpx.Client(
            auth=HttpxAuth(key, signing="s" * 43, base_path="/prod"), follow_redirects=True
        ) as c:
            c.get(url)
    else:

        async def fetch() -> None:
            auth = HttpxAuth(key, signing="s" * 43, base_path="/prod")
            async with httpx.AsyncClient(auth=auth, follow_redirects=True) as client:
                await client.get(url)

        asyncio.run(fetch())


@pytest.mark.parametrize("where", ["other host", "same origin"])
@pytest.mark.parametrize("library", ["requests", "httpx", "httpx async"])
def test_a_redirect_never_carries_the_key_or_its_signature(library: str, where: str) -> None:
    key = keyformat.generate().token
    with recording_server("localhost", None) as (elsewhere, landed):
        target = elsewhere + "/prod/landed" if where == "other host" else "/prod/landed"
        with recording_server("127.0.0.1", target) as (api, asked):
            get_following_redirects(library, api + "/prod/v1/items", key)

    followed = landed if where == "other host" else asked[1:]
    assert asked[0]["x-api-key"] == key and len(followed) == 1  # the API got the key; the redirect went
    assert [name for name in OUR_HEADERS if name in followed[0]] == []
    assert key not in str(followed)


class CachingTransport(httpx.BaseTransport, httpx.AsyncBaseTransport):
    """What an HTTP cache does (hishel, for one): a permanent redirect is stored, and served again
    without reaching the network, so httpx's own transport never sees it."""

    def __init__(self, asynchronous: bool) -> None:
        self.inner: Any = httpx.AsyncHTTPTransport() if asynchronous else httpx.HTTPTransport()
        self.cache: dict[str, tuple[int, Any]] = {}

    def _hit(self, request: httpx.Request) -> httpx.Response | None:
        hit = self.cache.get(str(request.url))
        return None if hit is None else httpx.Response(hit[0], headers=hit[1])

    def _keep(self, request: httpx.Request, response: httpx.Response) -> httpx.Response:
        if response.status_code == 301:
            self.cache[str(request.url)] = (301, response.headers.raw)
        return response

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        return self._hit(request) or self._keep(request, self.inner.handle_request(request))

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        return self._hit(request) or self._keep(request, await self.inner.handle_async_request(request))


def mock_api(asynchronous: bool, seen: list[dict[str, str]]) -> httpx.MockTransport:
    """httpx's MockTransport (WSGI and ASGI transports answer the same way, without httpcore): the
    API redirects to another host."""

    def answer(request: httpx.Request) -> httpx.Response:
        seen.append(dict(request.headers) | {":host": request.url.host})
        if request.url.host == "api.example.test":
            return httpx.Response(302, headers={"Location": "https://elsewhere.example/landed"})
        return httpx.Response(200)

    async def aanswer(request: httpx.Request) -> httpx.Response:
        return answer(request)

    return httpx.MockTransport(aanswer if asynchronous else answer)


@pytest.mark.parametrize("asynchronous", [False, True])
@pytest.mark.parametrize("inner", ["cache", "mock"])
def test_a_transport_that_answers_without_httpcore_never_lets_a_redirect_carry_the_key(
    inner: str, asynchronous: bool
) -> None:
    key = keyformat.generate().token
    seen: list[dict[str, str]] = []
    wrap: Any = AsyncKeysentryTransport if asynchronous else KeysentryTransport
    auth = HttpxAuth(key, signing="s" * 43)

    async def aget(transport: Any, url: str, times: int) -> None:
        async with httpx.AsyncClient(auth=auth, transport=transport, follow_redirects=True) as client:
            for _ in range(times):
                await client.get(url)

    def get(transport: Any, url: str, times: int) -> None:
        if asynchronous:
            asyncio.run(aget(transport, url, times))
            return
        with httpx.Client(auth=auth, transport=transport, follow_redirects=True) as client:
            for _ in range(times):
                client.get(url)

    if inner == "mock":
        get(wrap(mock_api(asynchronous, seen)), "https://api.example.test/v1/items", 1)
        asked, followed = seen[:1], seen[1:]
    else:
        with recording_server("localhost", None) as (elsewhere, landed):
            moved = elsewhere + "/prod/landed"
            with recording_server("127.0.0.1", moved, status=301) as (api, asked):
                get(wrap(CachingTransport(asynchronous)), api + "/prod/v1/items", 2)  # the second: cached
        followed = landed
    assert asked[0]["x-api-key"] == key and len(followed) == (1 if inner == "mock" else 2)
    assert [name for headers in followed for name in OUR_HEADERS if name in headers] == []
    assert key not in str(followed)


def test_an_async_httpx_client_follows_a_scheduled_rotation_over_real_sockets(
    service: Any, authorizer: Any, clock: FakeClock, lambda_context: Any
) -> None:
    gateway = LocalGateway("http", lambda_context)
    issued, secret = issue(service, "hmac", rotation_days=30)
    stored: list[Any] = []

    async def call(api: str, auth: HttpxAuth, times: int) -> list[int]:
        async with httpx.AsyncClient(auth=auth) as client:
            return [
                (await client.get(api + "/v1/prices/BTC", params=PARAMS)).status_code for _ in range(times)
            ]

    with serve(gateway, API) as api, serve(gateway, MANAGE) as manage:
        auth = HttpxAuth(
            issued.token,
            signing=secret,
            base_path="/prod",
            self_service=manage,
            on_successor=stored.append,
            clock=clock,
        )
        assert asyncio.run(call(api, auth, 1)) == [200]
        clock.advance(days=30)
        run_schedule(service, lambda_context)
        successor = service.get(issued.record.kid).successor

        assert asyncio.run(call(api, auth, 4)) == [200] * 4
        assert [s.kid for s in stored] == [successor] and auth.kid == successor

        clock.advance(days=7, seconds=1)
        run_schedule(service, lambda_context)
        assert asyncio.run(call(api, auth, 2)) == [200, 200]
    assert gateway.calls[-1].kid == successor and gateway.refused() == []


@pytest.mark.parametrize("sealed", [False, True])
def test_processes_sharing_a_key_all_switch_and_none_is_refused_after_grace(
    sealed: bool, service: Any, authorizer: Any, clock: FakeClock, lambda_context: Any
) -> None:
    """Unsealed, the first pickup is the only one: the others read the store it wrote."""
    gateway = LocalGateway("rest", lambda_context)
    fields, options = delivery_options(sealed)
    issued, secret = issue(service, "hmac", rotation_days=30, **fields)
    store: dict[str, Any] = {"key": issued.token, "signing_secret": secret}

    def save(successor: Any) -> None:
        store.update(key=successor.key, signing_secret=successor.signing_secret)

    workers = [
        Consumer(
            library,
            gateway,
            issued.token,
            signing=secret,
            clock=clock,
            self_service=MANAGE,
            on_successor=save,
            load_successor=lambda: dict(store),
            **options,
        )
        for library in ("requests", "httpx", "requests")
    ]
    clock.advance(days=30)
    run_schedule(service, lambda_context)
    successor = service.get(issued.record.kid).successor

    for _ in range(3):
        assert [worker.prices() for worker in workers] == [200, 200, 200]
    assert [worker.auth.kid for worker in workers] == [successor] * 3

    clock.advance(days=7, seconds=1)
    run_schedule(service, lambda_context)
    assert [worker.prices() for worker in workers] == [200, 200, 200]
    assert gateway.refused() == []


@pytest.mark.parametrize("library", LIBRARIES)
def test_a_wrong_notice_does_not_cost_the_one_time_successor(
    library: str, service: Any, authorizer: Any, clock: FakeClock, lambda_context: Any
) -> None:
    gateway = LocalGateway("rest", lambda_context)
    issued, secret = issue(service, "hmac", rotation_days=30)
    stored: list[Any] = []
    consumer = follower(library, gateway, issued, secret, clock, on_successor=stored.append)
    clock.advance(days=30)
    run_schedule(service, lambda_context)
    successor = service.get(issued.record.kid).successor

    # a stale cache or another backend names a successor that is not the key's
    consumer.auth.holder.observe(f"key={issued.record.kid}; successor={keyformat.new_kid()}; in=600")
    assert [consumer.prices() for _ in range(3)] == [200, 200, 200]

    assert [s.kid for s in stored] == [successor] and consumer.auth.kid == successor
    assert [call.path for call in gateway.calls].count("/self/successor") == 1


@pytest.mark.parametrize("library", LIBRARIES)
def test_an_unreachable_management_api_never_fails_the_applications_request(
    library: str, service: Any, authorizer: Any, clock: FakeClock, lambda_context: Any, caplog: Any
) -> None:
    caplog.set_level(logging.DEBUG, logger="keysentry.client")
    gateway = LocalGateway("rest", lambda_context)
    issued, secret = issue(service, "hmac", rotation_days=30)
    with serve(gateway, API) as api:
        options = {"signing": secret, "base_path": "/prod", "clock": clock, "on_successor": print}
        unreachable = "http://127.0.0.1:1/prod"  # nothing listens on port 1
        if library == "requests":
            auth: Any = RequestsAuth(issued.token, self_service=unreachable, **options)
            session: Any = requests.Session()
        else:
            auth = HttpxAuth(issued.token, self_service=unreachable, **options)
            session = httpx.Client()
        clock.advance(days=30)
        run_schedule(service, lambda_context)
        with session:
            statuses = [session.get(api + "/v1/prices/BTC", auth=auth).status_code for _ in range(3)]

    assert statuses == [200, 200, 200] and auth.kid == issued.record.kid
    assert "collecting the successor failed (ConnectError)" in caplog.text or "ConnectionError" in caplog.text


@pytest.mark.parametrize(
    "self_service",
    [
        "manage.example.com/prod",
        "http://manage.example.com/prod",
        "ftp://127.0.0.1/prod",
        "https://x/prod?a=1",
    ],
)
@pytest.mark.parametrize("library", LIBRARIES)
def test_a_management_url_that_would_leak_or_break_the_pickup_is_refused_at_once(
    library: str, self_service: str
) -> None:
    auth_class: Any = RequestsAuth if library == "requests" else HttpxAuth
    key = keyformat.generate().token
    with pytest.raises(ValueError, match="self_service") as refused:
        auth_class(key, self_service=self_service, on_successor=print)
    assert key not in str(refused.value)
    assert auth_class(key, self_service="http://localhost:3000/prod", on_successor=print).kid


@pytest.mark.parametrize("shape", ["rest", "http"])
@pytest.mark.parametrize("library", LIBRARIES)
def test_a_needless_escape_in_the_path_is_sent_as_the_authorizer_takes_it(
    library: str, shape: str, service: Any, authorizer: Any, clock: FakeClock, lambda_context: Any
) -> None:
    gateway = LocalGateway(shape, lambda_context)
    issued, secret = issue(service, "hmac")
    consumer = Consumer(library, gateway, issued.token, signing=secret, clock=clock)

    assert consumer.call("GET", "/v1/prices/a%7Eb%2D%41")[0] == 200
    assert gateway.calls[-1].path == "/v1/prices/a~b-A"
    with pytest.raises(UnsignableRequestError, match="dot segment"):
        consumer.call("GET", "/v1/prices/%2E%2E/orders")
