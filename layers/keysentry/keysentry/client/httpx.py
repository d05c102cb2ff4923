"""keysentry for ``httpx``: ``httpx.Client(auth=KeysentryAuth(key, signing=...))``.

Each request gets the key, and when the key signs, its KS2 signature over what is really sent
(:mod:`keysentry.client.prepare` says what is refused, with :class:`UnsignableRequestError`,
before anything leaves; httpx reads a streamed body first, so it can be signed). After a
response's ``Keysentry-Rotate`` notice, the next request through this auth first collects the
successor, in the same auth flow (its answer is in that request's ``response.history``), and is
then sent with the key the client holds after it (:mod:`keysentry.client.holder`).

The flow is synchronous: with an ``httpx.AsyncClient`` it signs as well, and a collection's
answer is read synchronously.
"""

from __future__ import annotations

from collections.abc import Generator
from typing import Any

import httpx
from keysentry.client.holder import KeyHolder, Pickup, Successor
from keysentry.client.notice import ROTATE_HEADER
from keysentry.client.prepare import Signer, UnsignableRequestError, prepare

__all__ = ["KeysentryAuth", "Successor", "UnsignableRequestError"]


class KeysentryAuth(httpx.Auth):
    """``key``: the keysentry key. ``signing``: the hmac signing secret, or the Ed25519 or RSA
    private key, for a key that signs. ``base_path``: the part of the URL's path before the API's
    routes (``/prod``, a REST API's stage, on its execute-api URL). ``self_service`` (the
    management API's URL, stage included) and ``on_successor`` turn on automatic rotation;
    ``delivery_key`` opens successors sealed to the key's X25519 delivery key."""

    requires_request_body = True  # the body's digest is signed: httpx reads a stream first

    def __init__(self, key: str, *, signing: Any = None, **options: Any) -> None:
        self.holder = KeyHolder(key, signing=signing, **options)

    def __repr__(self) -> str:
        return f"KeysentryAuth(kid={self.holder.kid!r})"

    @property
    def kid(self) -> str:
        """The id of the key in use (it changes when the client switches to a successor)."""
        return self.holder.kid

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        work = self.holder.claim()
        if work is not None:
            try:
                if isinstance(work, Successor):
                    self.holder.store(work)
                else:
                    answer = yield self._pickup(work)
                    self.holder.collected(answer.status_code, answer.read())
            except GeneratorExit:  # the pickup could not be sent: this request fails, a later one retries
                self.holder.failed(ConnectionError("the pickup was not answered"))
                raise
            finally:
                self.holder.release()
        response = yield self._sign(request, self.holder.signer, self.holder.base_path)
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
