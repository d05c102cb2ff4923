"""keysentry for ``httpx``: ``httpx.Client(auth=KeysentryAuth(key, signing=...))``, or the same
with an ``httpx.AsyncClient``.

Each request gets the key, and when the key signs, its KS2 signature over what is really sent
(:mod:`keysentry.client.prepare` says what is refused, with :class:`UnsignableRequestError`,
before anything leaves; httpx reads a streamed body first, so it can be signed). After a
response's ``Keysentry-Rotate`` notice, the next request through this auth first collects the
successor, then is sent with the key the client holds after it (:mod:`keysentry.client.holder`).

- The collection goes through a client of its own (``pickup_transport``: its transport; by
  default httpx's, with the proxy settings of the environment), never following a redirect: a
  management API that cannot be reached, or answers an error, never fails the application's
  request; the holder tries again later.
- A redirect never carries the key or a signature: when the answer to a request is a redirect,
  the key and signature headers are taken off the request before httpx copies it to follow the
  redirect (with ``follow_redirects=True``), whatever its origin; the redirected request goes
  without them and the gateway refuses it. httpx reports a response's status to the auth only
  after every redirect was followed, so this reads it from the transport's ``trace`` extension,
  which httpx's own transports (httpcore) call; with a transport that does not, leave
  ``follow_redirects`` off (httpx's default).
"""

from __future__ import annotations

import logging
from collections.abc import AsyncGenerator, Callable, Generator
from typing import Any

import httpx
from keysentry.client.holder import KeyHolder, Pickup, Successor
from keysentry.client.notice import ROTATE_HEADER
from keysentry.client.prepare import OWN_HEADERS, Signer, UnsignableRequestError, prepare

__all__ = ["KeysentryAuth", "Successor", "UnsignableRequestError"]

logger = logging.getLogger("keysentry.client")
REDIRECTS = frozenset({301, 302, 303, 307, 308})
PICKUP_TIMEOUT = 10.0


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
        self.holder = KeyHolder(key, signing=signing, **options)
        self.pickup_transport = pickup_transport

    def __repr__(self) -> str:
        return f"KeysentryAuth(kid={self.holder.kid!r})"

    @property
    def kid(self) -> str:
        """The id of the key in use (it changes when the client switches to a successor)."""
        return self.holder.kid

    def sync_auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        work = self.holder.claim()
        if work is not None:
            try:
                if isinstance(work, Successor):
                    self.holder.store(work)
                else:
                    self._collect(work)
            finally:
                self.holder.release()
        signed = self._sign(request, self.holder.signer, self.holder.base_path)
        _strip_on_redirect(signed, asynchronous=False)
        response = yield signed
        self._observe(response)

    async def async_auth_flow(self, request: httpx.Request) -> AsyncGenerator[httpx.Request, httpx.Response]:
        work = self.holder.claim()
        if work is not None:
            try:
                if isinstance(work, Successor):
                    self.holder.store(work)
                else:
                    await self._acollect(work)
            finally:
                self.holder.release()
        signed = self._sign(request, self.holder.signer, self.holder.base_path)
        _strip_on_redirect(signed, asynchronous=True)
        response = yield signed
        self._observe(response)

    def _collect(self, pickup: Pickup) -> None:
        try:
            with httpx.Client(transport=self.pickup_transport, timeout=PICKUP_TIMEOUT) as client:
                answer = client.send(self._pickup(pickup))
        except (httpx.HTTPError, OSError) as error:
            self.holder.failed(error)
            return
        self.holder.collected(answer.status_code, answer.content)

    async def _acollect(self, pickup: Pickup) -> None:
        try:
            async with httpx.AsyncClient(transport=self.pickup_transport, timeout=PICKUP_TIMEOUT) as client:
                answer = await client.send(self._pickup(pickup))
        except (httpx.HTTPError, OSError) as error:
            self.holder.failed(error)
            return
        self.holder.collected(answer.status_code, answer.content)

    def _observe(self, response: httpx.Response) -> None:
        if response.history:  # answered after a redirect: not by the API the key was sent to
            if any(name in response.request.headers for name in OWN_HEADERS):
                logger.error(
                    "key %s followed a redirect: its transport does not report responses to the "
                    "trace extension; set follow_redirects=False",
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
