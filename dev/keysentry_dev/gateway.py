"""A local API Gateway without Docker: ``keysentry local up --gateway``.

It serves, on a local port, the routes template.yaml gives the sample API (REST, or the HTTP API with
``--api http``) and the management API's routes behind keysentry's authorizer (``/self``...), each
through the real handlers named by the template (``CodeUri`` and ``Handler``, loaded from their files
as SAM does): the authorizer decides, the backend answers, and the access log line API Gateway would
write (the API's own ``Format`` from template.yaml) goes to the usage function, so a key's usage is
counted as it is on AWS. Handlers run one at a time, as one Lambda container serves them.

What it does not do: API Gateway's own authorizer cache, throttling, usage plans, and routes that need
IAM (the owner's routes: the CLI reaches the tables directly). ``sam local start-api`` with Docker
(``make e2e``) runs the functions in Lambda's own image.
"""

from __future__ import annotations

import base64
import importlib.util
import json
import logging
import os
import re
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import ModuleType
from typing import Any
from urllib.parse import urlsplit

from keysentry_dev.gateway_events import (
    Headers,
    Incoming,
    access_log_line,
    http_event,
    iam_effect,
    logs_event,
    rest_event,
)
from keysentry_dev.template import Stack

Handler = Callable[[dict[str, Any], Any], dict[str, Any]]

# The stand-in for an HTTP API's id: the local stack makes no HTTP API (moto's apigatewayv2 is not
# needed for anything else).
HTTP_API_ID = "h77p4p1d00"


@dataclass
class LambdaContext:
    """What a handler reads of Lambda's context object."""

    function_name: str
    memory_limit_in_mb: int = 512
    invoked_function_arn: str = ""
    aws_request_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    timeout_ms: int = 10_000

    def get_remaining_time_in_millis(self) -> int:
        return self.timeout_ms


# ---------------------------------------------------------------- routes from the template


@dataclass(frozen=True)
class Route:
    method: str  # GET, POST, ... or ANY
    template: str  # /v1/prices/{symbol}
    function: str  # the logical id of the function that serves it
    management: bool  # the management API (REST) rather than the sample API

    def matches(self, method: str, path: str) -> bool:
        if self.method not in ("ANY", method):
            return False
        pattern = re.sub(
            r"\\\{[^/]+?\\\+\\\}|\\\{[^/]+?\\\}",
            lambda m: ".+" if m.group(0).endswith("\\+\\}") else "[^/]+",
            re.escape(self.template),
        )
        return re.fullmatch(pattern, path) is not None


def routes(template: dict[str, Any], api: str) -> list[Route]:
    """The sample API's routes (``api``: rest or http) and the management API's routes behind
    keysentry's authorizer, as the functions' events in template.yaml declare them."""
    sample = "SampleApi" if api == "rest" else "SampleHttpApi"
    found: list[Route] = []
    for logical, resource in template.get("Resources", {}).items():
        if resource.get("Type") != "AWS::Serverless::Function":
            continue
        for event in (resource.get("Properties", {}).get("Events") or {}).values():
            props = event.get("Properties") or {}
            target = props.get("RestApiId") or props.get("ApiId") or {}
            name = target.get("Ref") if isinstance(target, dict) else None
            kind = event.get("Type")
            route = Route(str(props.get("Method", "ANY")).upper(), str(props.get("Path", "")), logical, False)
            if name == sample and kind == ("Api" if api == "rest" else "HttpApi"):
                found.append(route)
            elif name == "ManagementApi" and kind == "Api":
                authorizer = (props.get("Auth") or {}).get("Authorizer")
                if authorizer == "KeysentryAuthorizer":
                    found.append(Route(route.method, route.template, logical, True))
    return found


def load_handler(template_dir: Path, logical: str, resource: dict[str, Any]) -> Handler:
    """A function's handler, from its ``CodeUri`` and ``Handler``, as SAM loads it."""
    props = resource.get("Properties", {})
    module_name, attribute = str(props["Handler"]).rsplit(".", 1)
    path = template_dir / str(props["CodeUri"]) / f"{module_name.replace('.', '/')}.py"
    spec = importlib.util.spec_from_file_location(f"keysentry_local_functions.{logical}", path)
    if spec is None or spec.loader is None:
        raise FileNotFoundError(f"{logical}: no handler at {path}")
    module: ModuleType = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    handler: Handler = getattr(module, attribute)
    return handler


def _identity_headers(api: dict[str, Any]) -> list[str]:
    """The headers the API's keysentry authorizer takes its identity from."""
    authorizer = ((api.get("Auth") or {}).get("Authorizers") or {}).get("KeysentryAuthorizer") or {}
    return [str(name) for name in (authorizer.get("Identity") or {}).get("Headers") or []]


# ---------------------------------------------------------------- the gateway


@dataclass(frozen=True)
class Answer:
    status: int
    headers: Headers
    body: bytes


def _json(status: int, body: bytes) -> Answer:
    return Answer(status, [("Content-Type", "application/json")], body)


@dataclass(frozen=True)
class Answers:
    """What API Gateway itself answers, per kind of API."""

    not_found: Answer  # no route for the method and path
    forbidden: Answer  # the authorizer refused
    failed: Answer  # the authorizer failed
    bad_gateway: Answer  # the backend failed


UNAUTHORIZED = _json(401, b'{"message":"Unauthorized"}')
ANSWERS = {
    "rest": Answers(
        _json(403, b'{"message":"Missing Authentication Token"}'),
        _json(403, b'{"message":"User is not authorized to access this resource"}'),
        _json(500, b'{"message":null}'),
        _json(502, b'{"message":"Internal server error"}'),
    ),
    "http": Answers(
        _json(404, b'{"message":"Not Found"}'),
        _json(403, b'{"message":"Forbidden"}'),
        _json(500, b'{"message":"Internal Server Error"}'),
        _json(500, b'{"message":"Internal Server Error"}'),
    ),
}


class _Refusals(logging.Handler):
    """The authorizer's refusals, as its log group receives them and its subscription (the usage
    function's, for the refusals only) sends them on."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.lines: list[tuple[int, str]] = []

    def emit(self, record: logging.LogRecord) -> None:
        if record.getMessage() != "decision" or getattr(record, "outcome", None) not in (
            "deny",
            "unauthorized",
        ):
            return
        fields = {name: getattr(record, name, None) for name in ("outcome", "reason", "key_id", "shape")}
        self.lines.append((int(record.created * 1000), json.dumps({"message": "decision", **fields})))


class LocalGateway:
    """The sample API and the management API's keysentry routes, in process, over a local stack."""

    def __init__(self, stack: Stack, template_dir: Path, api: str = "rest") -> None:
        if api not in ("rest", "http"):
            raise ValueError("api is rest or http")
        self.stack, self.api = stack, api
        resources = stack.template.get("Resources", {})
        self.routes = routes(stack.template, api)
        wanted = sorted({"AuthorizerFunction", "UsageFunction", *(route.function for route in self.routes)})
        # As in Lambda, a handler reads its settings from the environment (some at import)
        os.environ.update(self._environment(wanted))
        os.environ.setdefault("POWERTOOLS_METRICS_DISABLED", "true")  # metrics are CloudWatch's; logs stay
        self.handlers = {name: load_handler(template_dir, name, resources[name]) for name in wanted}
        self.stage = str(stack.parameters()["Stage"])
        self.sample_id = stack.refs.get("SampleApi", "") if api == "rest" else HTTP_API_ID
        self.management_id = stack.refs.get("ManagementApi", "")
        sample = resources.get("SampleApi" if api == "rest" else "SampleHttpApi", {}).get("Properties", {})
        logs = sample.get("AccessLogSetting") or sample.get("AccessLogSettings") or {}
        self.log_format = str(logs.get("Format", ""))
        group = (logs.get("DestinationArn") or {}).get("Fn::GetAtt", ["", ""])
        self.log_group = stack.refs.get(group[0] if isinstance(group, list) else str(group).split(".")[0], "")
        # API Gateway answers 401 itself, without asking the authorizer, when an identity source is missing
        self.identity = {
            management: _identity_headers(resources.get(name, {}).get("Properties", {}))
            for management, name in (
                (False, "SampleApi" if api == "rest" else "SampleHttpApi"),
                (True, "ManagementApi"),
            )
        }
        self._lock = threading.Lock()

    def _environment(self, functions: list[str]) -> dict[str, str]:
        """What the served functions read: the template's Globals and each one's own variables."""
        env = self.stack.function_environment()
        resources = self.stack.template.get("Resources", {})
        for name in functions:
            variables = resources[name].get("Properties", {}).get("Environment", {}).get("Variables", {})
            env.update(self.stack.environment(variables))
        return env

    def handle(self, method: str, target: str, headers: Headers, body: bytes, source_ip: str) -> Answer:
        parts = urlsplit(target)
        prefix = f"/{self.stage}"
        if not (parts.path == prefix or parts.path.startswith(prefix + "/")):
            return ANSWERS[self.api].not_found
        path = parts.path[len(prefix) :] or "/"
        route = next((r for r in self.routes if r.matches(method, path)), None)
        if route is None:
            return ANSWERS[self.api].not_found
        api_id = self.management_id if route.management else self.sample_id
        shape = "rest" if route.management else self.api
        request = Incoming(
            api_id, self.stage, method, path, parts.query, headers, body, source_ip, route.template
        )
        event = rest_event(request) if shape == "rest" else http_event(request)
        started = time.time()
        with self._lock:
            present = {name.lower() for name, _ in headers}
            if any(name.lower() not in present for name in self.identity[route.management]):
                answer, context = UNAUTHORIZED, dict[str, Any]()  # API Gateway's own: no authorizer call
            else:
                answer, context = self._serve(event, shape, route)
            if not route.management and self.log_group:
                self._meter(event, shape, answer, context, started)
        return answer

    def _authorize(self, event: dict[str, Any]) -> dict[str, Any]:
        """The authorizer's answer; the refusals it logs go to the usage function, as its log
        group's subscription sends them."""
        asked = {k: v for k, v in event.items() if k not in ("body", "isBase64Encoded")}
        refusals = _Refusals()
        logger = logging.getLogger(os.environ.get("POWERTOOLS_SERVICE_NAME", "keysentry"))
        logger.addHandler(refusals)
        try:
            return dict(self.handlers["AuthorizerFunction"](asked, LambdaContext("AuthorizerFunction")))
        finally:
            logger.removeHandler(refusals)
            group = os.environ.get("AUTHORIZER_LOG_GROUP", "")
            if group and refusals.lines:
                self._to_usage(group, refusals.lines)

    def _serve(self, event: dict[str, Any], shape: str, route: Route) -> tuple[Answer, dict[str, Any]]:
        answers = ANSWERS[shape]
        try:
            decided = self._authorize(event)
        except Exception as error:
            return (UNAUTHORIZED if type(error).__name__ == "Unauthorized" else answers.failed), {}
        context: dict[str, Any] = dict(decided.get("context") or {})
        if shape == "http":
            if not decided.get("isAuthorized", "policyDocument" in decided):
                return answers.forbidden, {}
            if (
                "policyDocument" in decided
                and iam_effect(decided["policyDocument"], event["routeArn"]) != "Allow"
            ):
                return answers.forbidden, {}
            event["requestContext"]["authorizer"] = {"lambda": context}
        else:
            if iam_effect(decided.get("policyDocument") or {}, event["methodArn"]) != "Allow":
                return answers.forbidden, {}
            strings = {k: (str(v).lower() if isinstance(v, bool) else str(v)) for k, v in context.items()}
            event["requestContext"]["authorizer"] = {**strings, "principalId": decided.get("principalId", "")}
        try:
            response = self.handlers[route.function](event, LambdaContext(route.function))
        except Exception:
            return answers.bad_gateway, context
        content = response.get("body") or ""
        raw = base64.b64decode(content) if response.get("isBase64Encoded") else str(content).encode()
        out = [(k, str(v)) for k, v in (response.get("headers") or {}).items()]
        out += [(k, str(v)) for k, vs in (response.get("multiValueHeaders") or {}).items() for v in vs]
        return Answer(int(response.get("statusCode", 200)), out, raw), context

    def _meter(
        self, event: dict[str, Any], shape: str, answer: Answer, context: dict[str, Any], started: float
    ) -> None:
        ctx = event["requestContext"]
        values = {
            "requestId": ctx["requestId"],
            "requestTimeEpoch": str(ctx.get("requestTimeEpoch") or ctx.get("timeEpoch")),
            "apiId": ctx["apiId"],
            "stage": ctx["stage"],
            "httpMethod": event.get("httpMethod") or ctx.get("http", {}).get("method", ""),
            "resourcePath": ctx.get("resourcePath", ""),
            "routeKey": event.get("routeKey", ""),
            "path": ctx.get("path") if shape == "rest" else event.get("rawPath", ""),
            "status": str(answer.status),
            "identity.sourceIp": ctx.get("identity", {}).get("sourceIp")
            or ctx.get("http", {}).get("sourceIp", ""),
            "responseLength": str(len(answer.body)),
            "responseLatency": str(int((time.time() - started) * 1000)),
            **{f"authorizer.{k}": str(v) for k, v in context.items()},
        }
        self._to_usage(self.log_group, [(int(time.time() * 1000), access_log_line(self.log_format, values))])

    def _to_usage(self, log_group: str, lines: list[tuple[int, str]]) -> None:
        try:
            self.handlers["UsageFunction"](logs_event(log_group, lines), LambdaContext("UsageFunction"))
        except Exception as error:  # the request was served; its count is what is lost, as on AWS
            print(f"# usage: {log_group}'s lines were not counted ({type(error).__name__})", flush=True)


Answering = Callable[[str, str, Headers, bytes, str], tuple[int, Headers, bytes]]


@contextmanager
def http_server(answer: Answering, host: str = "127.0.0.1", port: int = 0) -> Iterator[int]:
    """A threaded HTTP/1.1 server on ``host``:``port`` (0: a free one) whose every request is
    ``answer(method, target, headers, body, client address)``; yields the port it listens on."""

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args: Any) -> None:
            pass

        def _forward(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            headers = [(k, v) for k, v in self.headers.items() if k.lower() not in ("host", "content-length")]
            status, out, content = answer(self.command, self.path, headers, body, self.client_address[0])
            self.send_response(status)
            for name, value in out:
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(content)))
            self.end_headers()
            self.wfile.write(content)

        do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _forward

    server = ThreadingHTTPServer((host, port), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server.server_port
    finally:
        server.shutdown()
        server.server_close()


@contextmanager
def serve(gateway: LocalGateway, host: str = "127.0.0.1", port: int = 0) -> Iterator[str]:
    """An HTTP server in front of the gateway; yields its URL, stage included."""

    def answer(
        method: str, target: str, headers: Headers, body: bytes, client: str
    ) -> tuple[int, Headers, bytes]:
        answered = gateway.handle(method, target, headers, body, client)
        return answered.status, answered.headers, answered.body

    with http_server(answer, host, port) as bound:
        shown = "127.0.0.1" if host in ("0.0.0.0", "::") else host  # noqa: S104
        yield f"http://{shown}:{bound}/{gateway.stage}"
