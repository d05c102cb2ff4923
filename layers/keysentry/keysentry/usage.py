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

import functools
import ipaddress
import json
import re
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Final

HOUR: Final = 3600
DAY: Final = 86_400
MAX_NETWORKS: Final = 50  # distinct source networks kept per key and hour; the rest count as "other"
MAX_ROUTES: Final = 50  # distinct routes kept per key and hour (an API's own routes; the rest: "other")
MAX_REASONS: Final = 20  # distinct refusal reasons kept per key and hour
OTHER: Final = "other"
# A log line's number past this (ms of latency, bytes of a response, ms since 1970) is not a request's.
MAX_FIELD: Final = 10**15
# Refusals of a token that names no key: its key id is the caller's invention, so they are counted
# once for the authorizer, not under a key of the caller's choosing (a write per invented id).
NO_KEY_REASONS: Final = frozenset({"malformed_key", "unknown_key"})
AUTHORIZER: Final = "authorizer"  # the keyless name those refusals count under

# The access log format every protected API writes (API Gateway $context variables; a variable a
# stage cannot fill is written as "-"). An owner adds the same format to their own APIs. The path,
# the one field a caller writes, comes last: should it break the line, every field before it (the
# key, its chain's meter, the source address, the status) is still read (Batch._unreadable).
ACCESS_LOG_FIELDS: Final = {
    "requestId": "$context.requestId",
    "requestTime": "$context.requestTimeEpoch",
    "apiId": "$context.apiId",
    "stage": "$context.stage",
    "keyId": "$context.authorizer.key_id",
    # the first key of the key's rotation chain, when its plan has a quota (a chain counts as one)
    "meter": "$context.authorizer.meter",
    "sourceIp": "$context.identity.sourceIp",
    "status": "$context.status",
    "httpMethod": "$context.httpMethod",
    "route": "$context.resourcePath",
    "responseLength": "$context.responseLength",
    "latency": "$context.responseLatency",
    "authorizerError": "$context.authorizer.error",
    "path": "$context.path",
}
ACCESS_LOG_FORMAT: Final = json.dumps(ACCESS_LOG_FIELDS, separators=(",", ":"))
# HTTP APIs name the route by its route key ("GET /v1/prices/{symbol}"); the rest is the same.
HTTP_ACCESS_LOG_FIELDS: Final = {**ACCESS_LOG_FIELDS, "route": "$context.routeKey"}
HTTP_ACCESS_LOG_FORMAT: Final = json.dumps(HTTP_ACCESS_LOG_FIELDS, separators=(",", ":"))


_OCTET: Final = r"(?:25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])"  # as ipaddress reads one
_IPV4: Final = re.compile(rf"({_OCTET}\.{_OCTET}\.{_OCTET})\.{_OCTET}")


def network_of(ip: str) -> str | None:
    """The source network a request counts under: IPv4 /24, IPv6 /48; None when not an address."""
    v4 = _IPV4.fullmatch(ip)  # the common case, without building an address object
    if v4 is not None:
        return v4.group(1) + ".0/24"
    return _network_of(ip)


@functools.lru_cache(maxsize=4096)
def _network_of(ip: str) -> str | None:
    try:
        address = ipaddress.ip_address(ip)
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    prefix = 24 if address.version == 4 else 48
    return str(ipaddress.ip_network(f"{address}/{prefix}", strict=False))


def _number(value: Any) -> int:
    """A counter's value from a log field ("-", missing, or more than any request has: 0). Sums of
    such values stay far inside DynamoDB's numbers (38 digits), which would refuse the batch."""
    try:
        number = int(value)
    except (TypeError, ValueError):
        try:
            number = int(float(value))
        except (TypeError, ValueError, OverflowError):
            return 0
    return number if 0 <= number <= MAX_FIELD else 0


_STATUS_CLASS: Final = {str(code): f"{code // 100}xx" for code in range(100, 600)}  # as the log writes it


def _status_class(value: Any) -> str:
    status = _number(value)
    return f"{status // 100}xx" if 100 <= status <= 599 else OTHER


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
    # requests of later keys of the chain this key started (their ``meter``): counted by day only
    chained: int = 0

    def add_request(self, line: dict[str, Any]) -> None:
        self.requests += 1
        self.bytes += _number(line.get("responseLength"))
        self.latency_ms += _number(line.get("latency"))
        status = line.get("status")
        self.by_status[_STATUS_CLASS.get(status) or _status_class(status)] += 1  # type: ignore[arg-type]
        _bounded(self.by_route, _route(line), MAX_ROUTES)
        network = network_of(_text(line.get("sourceIp")))
        if network is not None:
            _bounded(self.networks, network, MAX_NETWORKS)

    def add_refusal(self, reason: str) -> None:
        _bounded(self.refusals, reason, MAX_REASONS)

    def merge(self, other: KeyHour, *, bounded: bool = True) -> None:
        """Add another period's counts (an hour into its day); ``bounded``: keep the per-hour bounds."""
        self.requests += other.requests
        self.bytes += other.bytes
        self.latency_ms += other.latency_ms
        self.chained += other.chained
        self.by_status.update(other.by_status)
        for mine, theirs, bound in (
            (self.by_route, other.by_route, MAX_ROUTES),
            (self.networks, other.networks, MAX_NETWORKS),
            (self.refusals, other.refusals, MAX_REASONS),
        ):
            for name, count in theirs.items():
                _bounded(mine, name, bound if bounded else len(mine) + 1, count)

    def metered(self) -> int:
        """The requests a quota counts: this key's, and its chain's later keys'."""
        return self.requests + self.chained

    def counted(self) -> int:
        """Every line this hour holds: its requests and its refusals."""
        return self.requests + sum(self.refusals.values())


def _bounded(counter: Counter[str], name: str, bound: int, count: int = 1) -> None:
    """Count ``name``, or "other" once ``bound`` distinct names are held."""
    known = name in counter or len(counter) < bound
    counter[name if known else OTHER] += count


# What the counters keep of a line's names. A route is the gateway's template, never the raw path (the
# caller's to choose: unbounded, and where a careless client may put its key); a reason is one of the
# authorizer's; an id is an id. Anything else counts under "other", so nothing a caller sends is stored.
_ROUTE: Final = re.compile(r"(?:[A-Z]{3,7} )?(?:/[A-Za-z0-9/{}+._~:@-]{0,200}|\$default)")
_REASON: Final = re.compile(r"[a-z0-9_]{1,64}")
_KID: Final = re.compile(r"[0-9A-Za-z]{12}")  # keyformat's key id
_API_ID: Final = re.compile(r"[0-9A-Za-z]{1,32}")
_METHOD: Final = re.compile(r"[A-Z]{3,7}")
# The start of a line in ACCESS_LOG_FORMAT up to the key id, and on to the status: the gateway's
# fields, none a caller's. A line in the format before the path came last has the key id only.
# JSON's blanks between a name and its colon, which the gateway never writes (Batch._access)
_BLANK_BEFORE_COLON: Final = re.compile(r'"\s+:')
_KEYED_PREFIX: Final = re.compile(
    r'\{"requestId":"[0-9A-Za-z=+/_-]{1,64}","requestTime":"[0-9]{1,16}","apiId":"[0-9A-Za-z]{1,32}",'
    r'"stage":"[$0-9A-Za-z_-]{1,128}","keyId":"(?P<keyId>[0-9A-Za-z]{12})",'
    r'(?:"meter":"(?P<meter>[0-9A-Za-z]{0,12}|-)","sourceIp":"(?P<sourceIp>[0-9A-Fa-f.:]{1,45}|-)",'
    r'"status":"(?P<status>[0-9]{1,3}|-)",)?'
)


def _name(value: Any, shape: re.Pattern[str]) -> str:
    """``value`` if it has ``shape`` and cannot hold a key; otherwise "" (unset, "-") or "other"."""
    text = _text(value)
    if not text:
        return ""
    return text if shape.fullmatch(text) and "ks_" not in text else OTHER


def _route(line: dict[str, Any]) -> str:
    """ "METHOD /resource": REST's resource path, or an HTTP API's route key (which holds the method)."""
    route, method = line.get("route"), line.get("httpMethod")
    if isinstance(route, str) and isinstance(method, str):
        return _route_name(route, method)  # an API has few routes: each pair is checked once
    return OTHER


@functools.lru_cache(maxsize=1024)
def _route_name(route: str, method: str) -> str:
    name = _name(route, _ROUTE)
    if not name or name == OTHER:
        return OTHER
    if " " in name or name == "$default":
        return name
    return f"{_name(method, _METHOD) or '-'} {name}"


@dataclass
class Batch:
    """One subscription batch, folded: per (kid, hour start) and, without a key, per (api, hour);
    and, from the lines' ``meter`` (the authorizer's: set for a key whose plan has a quota, to the
    first key of its rotation chain), the requests of later keys of a chain per (its first key, day
    start), each such key's meter, and which keys' lines said they have no quota."""

    keys: dict[tuple[str, int], KeyHour] = field(default_factory=dict)
    keyless: dict[tuple[str, int], KeyHour] = field(default_factory=dict)
    chained: Counter[tuple[str, int]] = field(default_factory=Counter)
    meters: dict[str, str] = field(default_factory=dict)
    metered: set[str] = field(default_factory=set)  # keys with a line naming a meter
    unmetered: set[str] = field(default_factory=set)  # keys with a line whose meter is empty
    unreadable: int = 0

    def _hour(self, table: dict[tuple[str, int], KeyHour], name: str, timestamp_ms: int) -> KeyHour:
        key = (name, timestamp_ms // 1000 // HOUR * HOUR)
        hour = table.get(key)
        if hour is None:
            hour = table[key] = KeyHour()
        return hour

    def reader(self, log_group: str, authorizer_log_group: str) -> Callable[[str, int], None]:
        """How to read a delivery's lines: a decision only from the authorizer's own log group, an
        access log line only from any other. Anyone who can write to a subscribed log group (a backend's
        own, subscribed by mistake) could otherwise pass off lines as the authorizer's refusals of a
        key and have it suspended. Without the authorizer's group named, by the line's shape."""
        if not authorizer_log_group:
            return self.add_line
        return self.add_decision_line if log_group == authorizer_log_group else self.add_access_line

    def add_line(self, message: str, timestamp_ms: int) -> None:
        """One line of either source, told apart by its fields: an access log line has a request id,
        the authorizer's lines a message. Anything else is counted as unreadable."""
        line = _json_object(message)
        if line is not None and "requestId" in line:
            self._access(line, message, timestamp_ms)
        elif line is not None and "message" in line:
            self._decision(line, timestamp_ms)
        else:
            self._unreadable(message, timestamp_ms)

    def add_access_line(self, message: str, timestamp_ms: int) -> None:
        """One access log line (its event's timestamp, ms): counted under its key, or its API."""
        line = _json_object(message)
        if line is None or "requestId" not in line:
            self._unreadable(message, timestamp_ms)
            return
        self._access(line, message, timestamp_ms)

    def _unreadable(self, message: str, timestamp_ms: int) -> None:
        """A line that cannot be read whole is unreadable; one that starts as the format does still
        counts as a request of its key, so that a caller who writes a quote into the path cannot
        make their own requests go uncounted: the fields before the path are the gateway's own, so
        the key id there is the authorizer's. In the format with the path last, so are the meter
        (the request counts toward its chain's quota), the source address (its network is watched)
        and the status."""
        self.unreadable += 1
        found = _KEYED_PREFIX.match(message)
        if found is None:
            return
        kid, fields = found.group("keyId"), found.groupdict()
        self._hour(self.keys, kid, timestamp_ms).add_request(fields)
        if fields["meter"] is not None:
            self._meter(kid, _name(fields["meter"], _KID), timestamp_ms)

    def _access(self, line: dict[str, Any], message: str, timestamp_ms: int) -> None:
        # a field named twice (JSON keeps the last: a forged key id, meter or address after the
        # gateway's), a name spelled with blanks before its colon, which the gateway never writes,
        # or a value holding '":'
        if message.count('":') != len(line) or _BLANK_BEFORE_COLON.search(message):
            self._unreadable(message, timestamp_ms)
            return
        kid = _name(line.get("keyId"), _KID)
        when = _number(line.get("requestTime"))
        if abs(when - timestamp_ms) > 86_400_000:  # unset, or not this line's: the event's own time
            when = timestamp_ms
        if kid and kid != OTHER:
            self._hour(self.keys, kid, when).add_request(line)
            if "meter" in line:
                self._meter(kid, _name(line["meter"], _KID), when)
        else:
            self._hour(self.keyless, _name(line.get("apiId"), _API_ID) or OTHER, when).add_request(line)

    def _meter(self, kid: str, meter: str, when_ms: int) -> None:
        """What the line's ``meter`` says of the key's quota: none (empty: no quota to count), its
        own, or its chain's, whose first key's day counts the request too."""
        if not meter:
            self.unmetered.add(kid)
            return
        self.metered.add(kid)
        if meter not in (OTHER, kid):
            self.meters[kid] = meter
            self.chained[(meter, when_ms // 1000 // DAY * DAY)] += 1

    def quota_free(self) -> frozenset[str]:
        """The keys whose every line said their plan has no quota: no quota to hold them to."""
        return frozenset(self.unmetered - self.metered)

    def add_decision_line(self, message: str, timestamp_ms: int) -> None:
        """One authorizer log line: a refusal of a known key counts under its reason; other lines
        (allows at DEBUG, cold starts, anything else) are not usage and are passed over."""
        line = _json_object(message)
        if line is None:
            self.unreadable += 1
            return
        self._decision(line, timestamp_ms)

    def _decision(self, line: dict[str, Any], timestamp_ms: int) -> None:
        if line.get("message") != "decision" or line.get("outcome") not in ("deny", "unauthorized"):
            return
        kid, reason = _name(line.get("key_id"), _KID), _name(line.get("reason"), _REASON) or OTHER
        if kid and kid != OTHER and reason not in NO_KEY_REASONS:
            self._hour(self.keys, kid, timestamp_ms).add_refusal(reason)
        else:
            self._hour(self.keyless, AUTHORIZER, timestamp_ms).add_refusal(reason)


def _json_object(message: str) -> dict[str, Any] | None:
    """The line's JSON object; None when it is not one.

    An access log line is flat: one ``"name":`` per field. The gateway writes the caller's path into
    it; should a quote in the path go unescaped, the fields a caller appends (a key id after the real
    one, which a JSON reader keeps) leave more names in the text than in the object, and the line is
    unreadable (:meth:`Batch._access`). Counting is cheaper than a hook that builds every object twice;
    a value that holds an escaped quote before a colon is refused too, on the safe side."""
    try:
        line = json.loads(message)
    except ValueError:
        return None
    return line if isinstance(line, dict) else None
