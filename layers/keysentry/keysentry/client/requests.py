"""keysentry for ``requests``: ``auth=KeysentryAuth(key, signing=...)`` on a request or a Session.

Each request gets the key, and when the key signs, its KS2 signature over what is really sent
(:mod:`keysentry.client.prepare` says what is refused, with :class:`UnsignableRequestError`,
before anything leaves). A response's ``Keysentry-Rotate`` notice starts the collection of the
successor, sent through the same connection adapter as the request (as requests' own digest auth
does), and the switch (:mod:`keysentry.client.holder`).

The collection runs in the hook of the response that carried the notice, before requests hands
that response to the application: once per rotation (and per ``retry_seconds`` while it fails),
bounded by its own timeout (:data:`PICKUP_TIMEOUT`: 5 s to connect, 10 s for each read), whatever
the application's. It stays on the request path on purpose: a one-time successor is stored by
``on_successor`` on the application's own thread before the request returns, so a process that
exits right after cannot lose it in a background thread, and the callback never runs on a thread
the application does not know. ``on_successor`` and ``load_successor`` are plain functions.

A redirect never carries the key or a signature: the hook of a redirect's response takes them off
the request before requests copies it to follow the redirect (whatever its origin); the
redirected request goes without them and the gateway refuses it. Only a response to a request
that carried the key is read for a notice.
"""

from __future__ import annotations

from typing import Any

import requests
from keysentry.client.holder import KeyHolder, Pickup, Successor
from keysentry.client.notice import ROTATE_HEADER
from keysentry.client.pickup import is_async_callable, run
from keysentry.client.prepare import OWN_HEADERS, UnsignableRequestError, body_bytes, prepare
from requests.auth import AuthBase

__all__ = ["KeysentryAuth", "Successor", "UnsignableRequestError"]

PICKUP_TIMEOUT = (5.0, 10.0)  # (connect, read) seconds: a silent management API never hangs a request


class KeysentryAuth(AuthBase):
    """``key``: the keysentry key. ``signing``: the hmac signing secret, or the Ed25519 or RSA
    private key, for a key that signs. ``base_path``: the part of the URL's path before the API's
    routes (``/prod``, a REST API's stage, on its execute-api URL). ``self_service`` (the
    management API's https URL, stage included) and ``on_successor`` turn on automatic rotation;
    ``delivery_key`` opens successors sealed to the key's X25519 delivery key;
    ``load_successor`` reads a successor another process sharing the key stored."""

    def __init__(self, key: str, *, signing: Any = None, **options: Any) -> None:
        for name in ("on_successor", "load_successor"):
            if is_async_callable(options.get(name)):
                raise TypeError(
                    f"{name} is a coroutine function, and requests runs no event loop to await it: "
                    "pass a plain function (or use httpx.AsyncClient)"
                )
        self.holder = KeyHolder(key, signing=signing, **options)

    def __repr__(self) -> str:
        return f"KeysentryAuth(kid={self.holder.kid!r})"

    @property
    def kid(self) -> str:
        """The id of the key in use (it changes when the client switches to a successor)."""
        return self.holder.kid

    def __call__(self, request: requests.PreparedRequest) -> requests.PreparedRequest:
        body = body_bytes(request.body)
        if body is not None and body is not request.body:
            request.body = body  # the bytes digested are the bytes sent
            request.prepare_content_length(body)
        outgoing = prepare(
            self.holder.signer,
            request.method or "GET",
            request.url or "",
            request.headers.items(),
            body,
            base_path=self.holder.base_path,
            clock=self.holder.clock,
        )
        request.url = outgoing.url
        request.headers.update(outgoing.headers)
        request.hooks["response"].append(self._on_response)
        return request

    def _on_response(self, response: requests.Response, **send_options: Any) -> None:
        sent = response.request.headers
        if not any(name in sent for name in OWN_HEADERS):
            return  # a redirected request: sent without the key, by another API perhaps
        if response.is_redirect:  # requests copies this request to follow it: not with the key
            for name in OWN_HEADERS:
                sent.pop(name, None)
        self.holder.observe(response.headers.get(ROTATE_HEADER))
        flow = self.holder.work()
        if flow is not None:
            run(flow, lambda pickup: self._send(pickup, response.connection, send_options))

    def _send(self, pickup: Pickup, adapter: Any, send_options: dict[str, Any]) -> tuple[int, bytes]:
        """POST the pickup through the response's adapter, with the application's TLS and proxy
        settings but a bounded timeout of its own, and read the answer whole."""
        request = requests.Request("POST", pickup.url, headers={"Accept": "application/json"}).prepare()
        outgoing = prepare(
            pickup.signer,
            "POST",
            pickup.url,
            request.headers.items(),
            None,
            base_path=pickup.base_path,
            clock=self.holder.clock,
        )
        request.url = outgoing.url
        request.headers.update(outgoing.headers)
        options = {name: send_options[name] for name in ("verify", "cert", "proxies") if name in send_options}
        answer = adapter.send(request, stream=False, timeout=PICKUP_TIMEOUT, **options)
        return answer.status_code, answer.content
