"""keysentry for ``httpx``: ``httpx.Client(auth=KeysentryAuth(key, signing=...))``, or the same
with an ``httpx.AsyncClient``.

Each request gets the key, and when the key signs, its KS2 signature over what is really sent
(:mod:`keysentry.client.prepare` says what is refused, with :class:`UnsignableRequestError`,
before anything leaves; httpx reads a streamed body first, so it can be signed). After a
response's ``Keysentry-Rotate`` notice, the next request through this auth first collects the
successor, then is sent with the key the client holds after it (:mod:`keysentry.client.holder`).

- The collection goes through a client of its own (``pickup_transport``: its transport, a
  synchronous one for ``httpx.Client``, an async one for ``httpx.AsyncClient``; by default
  httpx's, with the proxy settings of the environment), with its own timeout (5 s to connect,
  10 s for each read), never following a redirect. Whatever goes wrong in it never fails the
  application's request; the holder tries again later.
- With ``httpx.AsyncClient`` an ``async def`` ``on_successor`` or ``load_successor`` is awaited; a
  plain function runs on the event loop (keep it short). The collection runs as a task shielded
  from the request's cancellation: a request cancelled or timed out meanwhile does not lose the
  answer of a one-time pickup, which is still read and stored. With ``httpx.Client`` an ``async
  def`` callback is refused at the first request.
- A redirect never carries the key or a signature: when the answer to a request is a redirect,
  the key and signature headers are taken off the request before httpx copies it to follow the
  redirect (with ``follow_redirects=True``), whatever its origin. httpx tells an auth a response's
  status only after every redirect was followed, and gives it no hook between hops, so this reads
  it from the transport's ``trace`` extension, which httpx's own transports (httpcore) call. A
  transport that answers without httpcore (a cache serving a stored redirect, a retrying or mock
  transport, WSGI or ASGI) does not: wrap the client's transport in :class:`KeysentryTransport`
  (:class:`AsyncKeysentryTransport`), which takes them off whenever its inner transport answers a
  redirect, or leave ``follow_redirects`` off (httpx's default). A redirected response that still
  carried the key is logged as an error.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncGenerator, Callable, Generator
from typing import Any

import httpx
from keysentry.client.holder import KeyHolder, Pickup, PickupError, Successor
from keysentry.client.notice import ROTATE_HEADER
from keysentry.client.pickup import arun, is_async_callable, run
from keysentry.client.prepare import OWN_HEADERS, Signer, UnsignableRequestError, prepare

__all__ = [
    "AsyncKeysentryTransport",
    "KeysentryAuth",
    "KeysentryTransport",
    "Successor",
    "UnsignableRequestError",
]

logger = logging.getLogger("keysentry.client")
REDIRECTS = frozenset({301, 302, 303, 307, 308})
PICKUP_TIMEOUT = httpx.Timeout(10.0, connect=5.0)


class KeysentryAuth(httpx.Auth):
    """``key``: the keysentry key. ``signing``: the hmac signing secret, or the Ed25519 or RSA
    private key, for a key that signs. ``base_path``: the part of the URL's path before the API's
    routes (``/prod``, a REST API's stage, on its execute-api URL). ``self_service`` (the
    management API's https URL, stage included) and ``on_successor`` turn on automatic rotation;
    ``delivery_key`` opens successors sealed to the key's X25519 delivery key;
    ``load_successor`` reads a successor another process sharing the key stored.
    ``pickup_transport``: the httpx transport the collection is sent through (an async one with
    an ``httpx.AsyncClient``)."""

    requires_request_body = True  # the body's digest is signed: httpx reads a stream first

    def __init__(
        self, key: str, *, signing: Any = None, pickup_transport: Any = None, **options: Any
    ) -> None:
        if pickup_transport is not None and not isinstance(
            pickup_transport, httpx.BaseTransport | httpx.AsyncBaseTransport
        ):
            raise TypeError(
                f"pickup_transport must be an httpx transport; got a {type(pickup_transport).__name__}"
            )
        self.holder = KeyHolder(key, signing=signing, **options)
        self.pickup_transport = pickup_transport
        self._async_callbacks = [
            n for n in ("on_successor", "load_successor") if is_async_callable(options.get(n))
        ]
        self._tasks: set[asyncio.Task[None]] = set()

    def __repr__(self) -> str:
        return f"KeysentryAuth(kid={self.holder.kid!r})"

    @property
    def kid(self) -> str:
        """The id of the key in use (it changes when the client switches to a successor)."""
        return self.holder.kid

    def sync_auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        if self._async_callbacks:
            raise TypeError(
                f"{self._async_callbacks[0]} is a coroutine function, which httpx.Client cannot "
                "await: use httpx.AsyncClient, or pass a plain function"
            )
        flow = self.holder.work()
        if flow is not None:
            run(flow, self._send)
        signed = self._sign(request, self.holder.signer, self.holder.base_path)
        _strip_on_redirect(signed, asynchronous=False)
        response = yield signed
        self._observe(response)

    async def async_auth_flow(self, request: httpx.Request) -> AsyncGenerator[httpx.Request, httpx.Response]:
        flow = self.holder.work()
        if flow is not None:
            task = asyncio.ensure_future(arun(flow, self._asend))
            self._tasks.add(task)  # held until done: a shielded task outlives a cancelled request
            task.add_done_callback(self._tasks.discard)
            await asyncio.shield(task)
        signed = self._sign(request, self.holder.signer, self.holder.base_path)
        _strip_on_redirect(signed, asynchronous=True)
        response = yield signed
        self._observe(response)

    def _send(self, pickup: Pickup) -> tuple[int, bytes]:
        transport = self.pickup_transport
        if transport is not None and not isinstance(transport, httpx.BaseTransport):
            raise PickupError("pickup_transport is an async transport: httpx.Client needs a synchronous one")
        with httpx.Client(transport=transport, timeout=PICKUP_TIMEOUT) as client:
            answer = client.send(self._pickup(pickup))
            return answer.status_code, answer.content

    async def _asend(self, pickup: Pickup) -> tuple[int, bytes]:
        transport = self.pickup_transport
        if transport is not None and not isinstance(transport, httpx.AsyncBaseTransport):
            raise PickupError(
                "pickup_transport is a synchronous transport: httpx.AsyncClient needs an async one"
            )
        async with httpx.AsyncClient(transport=transport, timeout=PICKUP_TIMEOUT) as client:
            answer = await client.send(self._pickup(pickup))
            return answer.status_code, answer.content

    def _observe(self, response: httpx.Response) -> None:
        if response.history:  # answered after a redirect: not by the API the key was sent to
            if any(name in response.request.headers for name in OWN_HEADERS):
                logger.error(
                    "key %s followed a redirect: its transport does not report responses to the "
                    "trace extension; wrap it in KeysentryTransport, or set follow_redirects=False",
                    self.holder.kid,
                )
            return
        self.holder.observe(response.headers.get(ROTATE_HEADER))

    def _pickup(self, pickup: Pickup) -> httpx.Request:
        request = httpx.Request("POST", pickup.url, headers={"Accept": "application/json"})
        return self._sign(request, pickup.signer, pickup.base_path)

    def _sign(self, request: httpx.Request, signer: Signer, base_path: str) -> httpx.Request:
        outgoing = prepare(
            signer,
            request.method,
            str(request.url),
            request.headers.multi_items(),
            request.content,
            base_path=base_path,
            clock=self.holder.clock,
        )
        request.url = httpx.URL(outgoing.url)
        request.headers.update(outgoing.headers)
        return request


def _strip_on_redirect(request: httpx.Request, *, asynchronous: bool) -> None:
    """Take the key and signature off ``request`` as soon as its answer's status says redirect,
    before httpx copies its headers to the redirected request (chaining a trace already set)."""
    previous: Callable[..., Any] | None = request.extensions.get("trace")

    def strip(name: str, info: dict[str, Any]) -> None:
        if not name.endswith("receive_response_headers.complete"):
            return
        status = next((part for part in info.get("return_value") or () if isinstance(part, int)), None)
        if status in REDIRECTS:
            for header in OWN_HEADERS:
                request.headers.pop(header, None)

    def trace(name: str, info: dict[str, Any]) -> None:
        strip(name, info)
        if previous is not None:
            previous(name, info)

    async def atrace(name: str, info: dict[str, Any]) -> None:
        strip(name, info)
        if previous is not None:
            await previous(name, info)

    request.extensions = {**request.extensions, "trace": atrace if asynchronous else trace}


class KeysentryTransport(httpx.BaseTransport):
    """``httpx.Client(transport=KeysentryTransport(inner), follow_redirects=True, auth=...)``: the
    key and signature headers are taken off a request whenever ``inner`` answers it with a
    redirect, before httpx copies the request to follow it, whatever ``inner`` is (a cache, a
    retrying transport, MockTransport, WSGI). ``inner``: by default ``httpx.HTTPTransport()``
    (give it ``proxy=`` yourself: a client with its own transport reads no proxy from the
    environment). Wrap the transport of each of the client's ``mounts`` the same way."""

    def __init__(self, inner: httpx.BaseTransport | None = None) -> None:
        self.inner = inner if inner is not None else httpx.HTTPTransport()

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        response = self.inner.handle_request(request)
        _strip_if_redirect(request, response)
        return response

    def close(self) -> None:
        self.inner.close()


class AsyncKeysentryTransport(httpx.AsyncBaseTransport):
    """:class:`KeysentryTransport` for ``httpx.AsyncClient``; ``inner`` by default
    ``httpx.AsyncHTTPTransport()``."""

    def __init__(self, inner: httpx.AsyncBaseTransport | None = None) -> None:
        self.inner = inner if inner is not None else httpx.AsyncHTTPTransport()

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        response = await self.inner.handle_async_request(request)
        _strip_if_redirect(request, response)
        return response

    async def aclose(self) -> None:
        await self.inner.aclose()


def _strip_if_redirect(request: httpx.Request, response: httpx.Response) -> None:
    if 300 <= response.status_code < 400:
        for header in OWN_HEADERS:
            request.headers.pop(header, None)
