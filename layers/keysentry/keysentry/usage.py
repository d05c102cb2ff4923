"""Usage: a batch of log lines to per-key, per-hour counters, in memory (pure: no I/O).

Two sources, both delivered by CloudWatch Logs subscriptions, neither on the authorizer's path:
- the protected APIs' JSON access logs (:data:`ACCESS_LOG_FORMAT`): what really happened, also when
  API Gateway answered from its cached authorizer result;
- the authorizer's own ``decision`` log lines: why a key was refused.

:class:`Batch` folds the lines into one :class:`KeyHour` per (key, hour), so a batch costs one write
per key and hour, not one per request. Lines without a key id (refused before a key was known) are
counted per API and hour; a line that cannot be read is counted and skipped, never fatal.
"""

from __future__ import annotations

import ipaddress
import json
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Final

HOUR: Final = 3600
MAX_NETWORKS: Final = 50  # distinct source networks kept per key and hour; the rest count as "other"
OTHER: Final = "other"

# The access log format every protected API writes (API Gateway $context variables; a variable a
# stage cannot fill is written as "-"). An owner adds the same format to their own APIs.
ACCESS_LOG_FIELDS: Final = {
    "requestId": "$context.requestId",
    "requestTime": "$context.requestTimeEpoch",
    "apiId": "$context.apiId",
    "stage": "$context.stage",
    "keyId": "$context.authorizer.key_id",
    "httpMethod": "$context.httpMethod",
    "route": "$context.resourcePath",
    "path": "$context.path",
    "status": "$context.status",
    "sourceIp": "$context.identity.sourceIp",
    "responseLength": "$context.responseLength",
    "latency": "$context.responseLatency",
    "authorizerError": "$context.authorizer.error",
}
ACCESS_LOG_FORMAT: Final = json.dumps(ACCESS_LOG_FIELDS, separators=(",", ":"))
# HTTP APIs name the route by its route key ("GET /v1/prices/{symbol}"); the rest is the same.
HTTP_ACCESS_LOG_FIELDS: Final = {**ACCESS_LOG_FIELDS, "route": "$context.routeKey"}
HTTP_ACCESS_LOG_FORMAT: Final = json.dumps(HTTP_ACCESS_LOG_FIELDS, separators=(",", ":"))


def network_of(ip: str) -> str | None:
    """The source network a request counts under: IPv4 /24, IPv6 /48; None when not an address."""
    try:
        address = ipaddress.ip_address(ip)
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    prefix = 24 if address.version == 4 else 48
    return str(ipaddress.ip_network(f"{address}/{prefix}", strict=False))


def _number(value: Any) -> int:
    """A counter's value from a log field ("-" or missing: 0)."""
    try:
        return max(int(float(value)), 0)
    except (TypeError, ValueError):
        return 0


def _text(value: Any) -> str:
    return value if isinstance(value, str) and value not in ("", "-") else ""


@dataclass
class KeyHour:
    """What one key did in one hour."""

    requests: int = 0
    bytes: int = 0
    latency_ms: int = 0  # the sum: divided by requests, the mean
    by_status: Counter[str] = field(default_factory=Counter)  # "2xx", "4xx", ...
    by_route: Counter[str] = field(default_factory=Counter)  # "GET /v1/prices/{id}"
    networks: Counter[str] = field(default_factory=Counter)  # "203.0.113.0/24", at most MAX_NETWORKS
    refusals: Counter[str] = field(default_factory=Counter)  # the authorizer's reasons

    def add_request(self, line: dict[str, Any]) -> None:
        self.requests += 1
        self.bytes += _number(line.get("responseLength"))
        self.latency_ms += _number(line.get("latency"))
        status = _number(line.get("status"))
        self.by_status[f"{status // 100}xx" if 100 <= status <= 599 else OTHER] += 1
        route = _text(line.get("route")) or _text(line.get("path")) or OTHER
        self.by_route[f"{_text(line.get('httpMethod')) or '-'} {route}"] += 1
        network = network_of(_text(line.get("sourceIp")))
        if network is not None:
            known = network in self.networks or len(self.networks) < MAX_NETWORKS
            self.networks[network if known else OTHER] += 1


@dataclass
class Batch:
    """One subscription batch, folded: per (kid, hour start) and, without a key, per (api, hour)."""

    keys: dict[tuple[str, int], KeyHour] = field(default_factory=dict)
    keyless: dict[tuple[str, int], KeyHour] = field(default_factory=dict)
    unreadable: int = 0

    def _hour(self, table: dict[tuple[str, int], KeyHour], name: str, timestamp_ms: int) -> KeyHour:
        start = timestamp_ms // 1000 // HOUR * HOUR
        return table.setdefault((name, start), KeyHour())

    def add_access_line(self, message: str, timestamp_ms: int) -> None:
        """One access log line (its event's timestamp, ms): counted under its key, or its API."""
        line = _json_object(message)
        if line is None or "requestId" not in line:
            self.unreadable += 1
            return
        kid = _text(line.get("keyId"))
        when = _number(line.get("requestTime")) or timestamp_ms
        if kid:
            self._hour(self.keys, kid, when).add_request(line)
        else:
            self._hour(self.keyless, _text(line.get("apiId")) or OTHER, when).add_request(line)

    def add_decision_line(self, message: str, timestamp_ms: int) -> None:
        """One authorizer log line: a refusal of a known key counts under its reason; other lines
        (allows at DEBUG, cold starts, anything else) are not usage and are passed over."""
        line = _json_object(message)
        if line is None:
            self.unreadable += 1
            return
        if line.get("message") != "decision" or line.get("outcome") not in ("deny", "unauthorized"):
            return
        kid, reason = _text(line.get("key_id")), _text(line.get("reason")) or OTHER
        if kid:
            self._hour(self.keys, kid, timestamp_ms).refusals[reason] += 1


def _json_object(message: str) -> dict[str, Any] | None:
    try:
        line = json.loads(message)
    except ValueError:
        return None
    return line if isinstance(line, dict) else None
