"""API Gateway in-process, for a real HTTP client stack: requests (a transport adapter) and httpx
(a MockTransport) hand each request to :class:`LocalGateway`, which builds the event API Gateway
would (REST REQUEST or HTTP API payload 2.0), asks the authorizer handler, and when it allows,
calls the sample backend handler, or the management API handler for the /self routes.

Two APIs, each on its stage ``/prod``: the sample API (``API``, REST or HTTP as asked) and the
management API (``MANAGE``, always REST). One event at a time, as one Lambda container serves them.
:func:`serve` puts the gateway behind a real local HTTP server, for a client's own transport
(sockets, redirects, httpx.AsyncClient).
"""

from __future__ import annotations

import base64
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import httpx
import requests
from keysentry import keyformat
from keysentry.authorizer import Unauthorized
from keysentry_dev import gateway_events
from keysentry_dev.gateway import http_server
from keysentry_dev.gateway_events import Incoming
from requests.structures import CaseInsensitiveDict

from functions.api import handler as api_handler
from functions.authorizer import handler as authorizer_handler
from functions.sample_backend import handler as backend_handler
from tests.integration import authz_helpers
from tests.integration.authz_helpers import iam_effect

API = "https://api.example.test/prod"
MANAGE = "https://manage.example.test/prod"
STAGE = "/prod"
ROUTES = (
    '{"GET /v1/prices/*": "prices:read", "POST /v1/orders": "orders:write", '
    '"GET /self": "", "POST /self/successor": ""}'
)
ARN = "arn:aws:execute-api:us-east-1:123456789012:{api}/prod/{method}{path}"
Headers = list[tuple[str, str]]


@dataclass(frozen=True)
class Call:
    """One request as the gateway saw it: which key (by id), where, and the answer's status."""

    kid: str | None
    method: str
    path: str
    status: int


def _kid(headers: Headers) -> str | None:
    for name, value in headers:
        if name.lower() == "x-api-key":
            try:
                return keyformat.parse(value).kid
            except ValueError:
                return None
    return None


def _incoming(api: str, method: str, path: str, query: str, headers: Headers, body: bytes) -> Incoming:
    return Incoming(api, STAGE[1:], method, path, query, headers, body, "203.0.113.10")


def rest_event(api: str, method: str, path: str, query: str, headers: Headers, body: bytes) -> dict[str, Any]:
    return gateway_events.rest_event(_incoming(api, method, path, query, headers, body))


def http_event(api: str, method: str, path: str, query: str, headers: Headers, body: bytes) -> dict[str, Any]:
    return gateway_events.http_event(_incoming(api, method, path, query, headers, body))


def _as_rest_context(context: dict[str, Any], principal: str) -> dict[str, Any]:
    """REST APIs hand the backend every context value as a string."""
    strings = {k: (str(v).lower() if isinstance(v, bool) else str(v)) for k, v in context.items()}
    return {**strings, "principalId": principal}


class LocalGateway:
    def __init__(self, shape: str, lambda_context: Any) -> None:
        assert shape in ("rest", "http")
        self.shape = shape
        self.lambda_context = lambda_context
        self.calls: list[Call] = []
        self._lock = threading.Lock()

    def refused(self) -> list[Call]:
        return [call for call in self.calls if call.status >= 400]

    def handle(self, method: str, url: str, headers: Headers, body: bytes) -> tuple[int, Headers, bytes]:
        parts = urlsplit(url)
        assert parts.path.startswith(STAGE + "/"), url
        path, management = parts.path[len(STAGE) :], parts.hostname == urlsplit(MANAGE).hostname
        shape = "rest" if management else self.shape
        build = rest_event if shape == "rest" else http_event
        event = build("m4n4g3m3nt" if management else "a1b2c3d4e5", method, path, parts.query, headers, body)
        with self._lock:
            status, out_headers, content = self._serve(event, shape, management)
            self.calls.append(Call(_kid(headers), method, path, status))
        return status, out_headers, content

    def _serve(self, event: dict[str, Any], shape: str, management: bool) -> tuple[int, Headers, bytes]:
        asked = {k: v for k, v in event.items() if k not in ("body", "isBase64Encoded")}
        try:
            answer = authorizer_handler.lambda_handler(asked, self.lambda_context)
        except Unauthorized:
            return 401, [], b'{"message":"Unauthorized"}'
        except Exception:
            return 500, [], b'{"message":null}'
        if shape == "http":
            if not answer.get("isAuthorized"):
                return 403, [], b'{"message":"Forbidden"}'
            event["requestContext"]["authorizer"] = {"lambda": answer.get("context", {})}
        else:
            if iam_effect(answer["policyDocument"], event["methodArn"]) != "Allow":
                return 403, [], b'{"Message":"User is not authorized to access this resource"}'
            event["requestContext"]["authorizer"] = _as_rest_context(answer["context"], answer["principalId"])
        backend = api_handler if management else backend_handler
        response = backend.lambda_handler(event, self.lambda_context)
        content = response.get("body") or ""
        raw = base64.b64decode(content) if response.get("isBase64Encoded") else content.encode()
        out = [(k, str(v)) for k, v in (response.get("headers") or {}).items()]
        out += [(k, str(v)) for k, vs in (response.get("multiValueHeaders") or {}).items() for v in vs]
        return int(response["statusCode"]), out, raw


class GatewayAdapter(requests.adapters.BaseAdapter):
    """requests' transport: every request goes to the local gateway instead of the network."""

    def __init__(self, gateway: LocalGateway) -> None:
        super().__init__()
        self.gateway = gateway

    def send(self, request: requests.PreparedRequest, *args: Any, **kwargs: Any) -> requests.Response:
        body = request.body.encode() if isinstance(request.body, str) else request.body or b""
        assert isinstance(body, bytes), "a streamed body reached the network"
        status, headers, content = self.gateway.handle(
            request.method or "GET", request.url or "", list(request.headers.items()), body
        )
        response = requests.Response()
        response.status_code, response._content, response.url = status, content, request.url or ""
        response.headers = CaseInsensitiveDict(dict(headers))
        response.request, response.connection = request, self  # type: ignore[attr-defined]
        return response

    def close(self) -> None:
        pass


def requests_session(gateway: LocalGateway) -> requests.Session:
    session = requests.Session()
    session.mount("https://", GatewayAdapter(gateway))
    return session


def httpx_transport(gateway: LocalGateway) -> httpx.MockTransport:
    def handle(request: httpx.Request) -> httpx.Response:
        status, headers, content = gateway.handle(
            request.method, str(request.url), request.headers.multi_items(), request.read()
        )
        return httpx.Response(status, headers=headers, content=content)

    return httpx.MockTransport(handle)


def httpx_client(gateway: LocalGateway, auth: httpx.Auth | None = None) -> httpx.Client:
    return httpx.Client(transport=httpx_transport(gateway), auth=auth)


@contextmanager
def serve(gateway: LocalGateway, api: str = API) -> Iterator[str]:
    """A real HTTP server on 127.0.0.1 in front of the gateway, serving ``api`` (API or MANAGE):
    yields its URL, stage included (``http://127.0.0.1:<port>/prod``)."""
    origin = api[: -len(STAGE)]

    def answer(
        method: str, target: str, headers: Headers, body: bytes, client: str
    ) -> tuple[int, Headers, bytes]:
        return gateway.handle(method, origin + target, headers, body)

    with http_server(answer) as port:
        yield f"http://127.0.0.1:{port}{STAGE}"


def install_authorizer(stack: Any, clock: Any, monkeypatch: Any) -> Any:
    """The authorizer over the test stack with ROUTES, no container cache (a rotation is seen at
    once, as after the cache's TTL), signed requests checked against the test's clock."""
    return authz_helpers.install_authorizer(
        stack,
        clock,
        ROUTES,
        monkeypatch,
        cache_ttl=0,
        kms_key_id=stack.refs["SigningSecretsKey"],
        nonce_table=stack.refs["NonceTable"],
    )
