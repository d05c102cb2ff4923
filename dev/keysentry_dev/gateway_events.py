"""The events API Gateway sends a Lambda authorizer and a proxy integration, built from one
request: a REST API's REQUEST event and an HTTP API's payload 2.0, how API Gateway reads the
IAM policy an authorizer answers with, and the access log line it writes (with the CloudWatch Logs
subscription event that carries it). For the local gateway (:mod:`keysentry_dev.gateway`)."""

from __future__ import annotations

import base64
import gzip
import json
import re
import time
import uuid
from dataclasses import dataclass
from functools import lru_cache
from typing import Any
from urllib.parse import parse_qsl

from keysentry_dev.template import ACCOUNT, REGION

Headers = list[tuple[str, str]]


def _grouped(pairs: Headers) -> dict[str, list[str]]:
    grouped: dict[str, list[str]] = {}
    for name, value in pairs:
        grouped.setdefault(name, []).append(value)
    return grouped


def _body(body: bytes) -> tuple[str | None, bool]:
    if not body:
        return None, False
    try:
        return body.decode(), False
    except UnicodeDecodeError:
        return base64.b64encode(body).decode(), True


@dataclass(frozen=True)
class Incoming:
    """One request as the gateway received it, the stage taken off its path."""

    api_id: str
    stage: str
    method: str
    path: str
    query: str
    headers: Headers
    body: bytes
    source_ip: str
    resource: str = ""  # the matched route's path template (REST's resourcePath)

    def method_arn(self) -> str:
        return f"arn:aws:execute-api:{REGION}:{ACCOUNT}:{self.api_id}/{self.stage}/{self.method}{self.path}"


def rest_event(request: Incoming) -> dict[str, Any]:
    """A REST API's REQUEST authorizer (and proxy integration) event."""
    multi_headers = _grouped(request.headers)
    multi_query = _grouped(parse_qsl(request.query, keep_blank_values=True))
    text, is_base64 = _body(request.body)
    resource = request.resource or request.path
    return {
        "type": "REQUEST",
        "methodArn": request.method_arn(),
        "resource": resource,
        "path": request.path,
        "httpMethod": request.method,
        "headers": {name: values[-1] for name, values in multi_headers.items()},
        "multiValueHeaders": multi_headers,
        "queryStringParameters": {name: values[-1] for name, values in multi_query.items()} or None,
        "multiValueQueryStringParameters": multi_query or None,
        "requestContext": {
            "path": f"/{request.stage}{request.path}",
            "accountId": ACCOUNT,
            "stage": request.stage,
            "requestId": str(uuid.uuid4()),
            "requestTimeEpoch": int(time.time() * 1000),
            "identity": {"sourceIp": request.source_ip, "userAgent": _header(request.headers, "user-agent")},
            "resourcePath": resource,
            "httpMethod": request.method,
            "apiId": request.api_id,
        },
        "body": text,
        "isBase64Encoded": is_base64,
    }


def http_event(request: Incoming) -> dict[str, Any]:
    """An HTTP API's payload 2.0 event (authorizer and integration) on a named stage reached through
    its execute-api host: ``rawPath`` leads with the stage there, as API Gateway sends it."""
    joined = {name.lower(): ",".join(values) for name, values in _grouped(request.headers).items()}
    text, is_base64 = _body(request.body)
    route = f"{request.method} {request.resource or request.path}"
    return {
        "version": "2.0",
        "type": "REQUEST",
        "routeArn": request.method_arn(),
        "routeKey": route,
        "rawPath": f"/{request.stage}{request.path}",
        "rawQueryString": request.query,
        "headers": joined,
        "requestContext": {
            "accountId": ACCOUNT,
            "apiId": request.api_id,
            "domainName": f"{request.api_id}.execute-api.{REGION}.amazonaws.com",
            "domainPrefix": request.api_id,
            "http": {
                "method": request.method,
                "path": f"/{request.stage}{request.path}",
                "protocol": "HTTP/1.1",
                "sourceIp": request.source_ip,
                "userAgent": _header(request.headers, "user-agent"),
            },
            "requestId": str(uuid.uuid4()),
            "routeKey": route,
            "stage": request.stage,
            "timeEpoch": int(time.time() * 1000),
        },
        "body": text,
        "isBase64Encoded": is_base64,
    }


def _header(headers: Headers, name: str) -> str:
    return next((value for key, value in headers if key.lower() == name), "")


@lru_cache(maxsize=4096)
def _arn_pattern(resource: str) -> re.Pattern[str]:
    # execute-api ARN matching: "*" matches any run of characters, "/" included; "?" one character
    return re.compile("".join(".*" if c == "*" else "." if c == "?" else re.escape(c) for c in resource))


def iam_effect(document: dict[str, Any], arn: str) -> str:
    """How API Gateway reads an authorizer's IAM policy for one method ARN, as IAM does: an
    explicit Deny wins, then an Allow, else Deny."""
    effects = set()
    for statement in document.get("Statement", []):
        resources = statement.get("Resource", [])
        resources = [resources] if isinstance(resources, str) else resources
        if statement.get("Action") == "execute-api:Invoke" and any(
            _arn_pattern(r).fullmatch(arn) for r in resources
        ):
            effects.add(statement.get("Effect"))
    return "Allow" if effects == {"Allow"} else "Deny"


# ---------------------------------------------------------------- what API Gateway writes: the access log line


_CONTEXT_VARIABLE = re.compile(r"\$context\.([A-Za-z0-9_.]+)")


def _escaped(value: str) -> str:
    return json.dumps(value)[1:-1]


def access_log_line(log_format: str, values: dict[str, str]) -> str:
    """The line API Gateway writes for one request: ``log_format`` with each ``$context`` variable
    replaced (``-`` where it has no value, as API Gateway writes)."""
    return _CONTEXT_VARIABLE.sub(lambda m: _escaped(values.get(m.group(1), "") or "-"), log_format)


def logs_event(log_group: str, lines: list[tuple[int, str]]) -> dict[str, Any]:
    """A CloudWatch Logs subscription's event, as the usage function receives it."""
    data = {
        "messageType": "DATA_MESSAGE",
        "owner": ACCOUNT,
        "logGroup": log_group,
        "logStream": "local-gateway",
        "subscriptionFilters": ["local-gateway"],
        "logEvents": [
            {
                "id": f"{timestamp}{index:06d}{uuid.uuid4().int % 10**6:06d}",
                "timestamp": timestamp,
                "message": line,
            }
            for index, (timestamp, line) in enumerate(lines)
        ],
    }
    return {"awslogs": {"data": base64.b64encode(gzip.compress(json.dumps(data).encode())).decode()}}
