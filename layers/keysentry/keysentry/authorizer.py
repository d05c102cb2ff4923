"""The API Gateway Lambda authorizer: REST (TOKEN and REQUEST) and HTTP API (payload 2.0).

Order, cheapest first: find the one presented token -> parse + checksum (no I/O) -> in-memory
cache (bounded, TTL) or one strongly consistent GetItem -> digest (constant time) -> status and
time -> IP deny, then allow -> route scope -> response. Unknown or malformed keys get 401; known
keys that are not allowed get an explicit Deny (403) with the reason in the log only. Any internal
failure fails closed.

Imports stay lean (no pydantic, cryptography or X-Ray here): this module is paid on every cold start.
"""

from __future__ import annotations

import ipaddress
import os
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from enum import StrEnum
from functools import lru_cache
from typing import Any, Final

from keysentry import keyformat
from keysentry.errors import MalformedKeyError
from keysentry.model import KeyRecord, Status, network
from keysentry.peppers import PepperSource
from keysentry.routes import MethodArn, RouteTable, parse_method_arn
from keysentry.store import KeyStore, from_item

USAGE_WRITE_INTERVAL_S: Final = 3600
REHASH_RETRY_S: Final = 60
PEPPER_CHECK_S: Final = 1  # how often a request asks the pepper source (which has its own bounded age)
NEGATIVE_TTL_S: Final = 5.0
MAX_HEADER_VALUES: Final = 8


class Outcome(StrEnum):
    ALLOW = "allow"
    DENY = "deny"  # a known key that may not do this: 403
    UNAUTHORIZED = "unauthorized"  # missing, malformed, unknown or wrong key: 401
    ERROR = "error"  # keysentry could not decide: fail closed


@dataclass(frozen=True)
class Decision:
    outcome: Outcome
    reason: str
    kid: str | None = None
    record: KeyRecord | None = None
    error: str | None = None  # the failure's type (and AWS error code), for the log; never its message


@dataclass(slots=True)
class Request:
    """What the authorizer needs of any event shape."""

    shape: str  # "token" | "request" | "http"
    tokens: tuple[str, ...]  # distinct presented tokens (0, 1 or more)
    source_ip: str | None
    method: str
    path: str
    method_arn: MethodArn | None
    event: dict[str, Any] | None = None  # read again only for a key that requires signed requests
    refusal: str | None = None  # the headers could not be read whole: refused before any lookup
    stage: str | None = None  # the API stage called: test keys are bound to test stages

    def signature_headers(self) -> dict[str, list[str]]:
        from keysentry.signing import SIGNED_HEADERS

        event = self.event or {}
        return {name: _header_values(event, name) for name in SIGNED_HEADERS}

    def canonical_query(self) -> str:
        from keysentry.signing import SignatureError, canonical_query

        event = self.event or {}
        if self.shape == "http":
            # The backend gets the raw query too: only its one canonical spelling is accepted.
            raw = str(event.get("rawQueryString") or "")
            canonical = canonical_query(raw)
            if canonical != raw:
                raise SignatureError("noncanonical_query")
            return canonical
        multi = event.get("multiValueQueryStringParameters")
        if isinstance(multi, dict) and multi:
            return canonical_query(multi)
        if event.get("queryStringParameters"):  # only the last value of each name: repeats unseen
            raise SignatureError("incomplete_query")
        return ""

    def content_type(self) -> str:
        """The Content-Type the backend will see: every value, in any case, from the multi-value map
        when the event has one (a REST event's single-value map keeps only the last)."""
        from keysentry.signing import HEADER_CONTENT_TYPE, read_content_type

        event = self.event or {}
        multi = event.get("multiValueHeaders")
        values: list[str] = []
        if isinstance(multi, dict):
            for key, vals in multi.items():
                if isinstance(key, str) and key.lower() == HEADER_CONTENT_TYPE:
                    values.extend(
                        v for v in (vals if isinstance(vals, list) else [vals]) if isinstance(v, str)
                    )
        if not values:
            headers = event.get("headers")
            if isinstance(headers, dict):
                for key, val in headers.items():
                    if isinstance(key, str) and key.lower() == HEADER_CONTENT_TYPE and isinstance(val, str):
                        values.append(val)
        return read_content_type(values)


# ---------------------------------------------------------------- event shapes


def _header_values(event: dict[str, Any], name: str) -> list[str]:
    """Every value of header ``name`` (lower case), in any case, single- or multi-value."""
    values: list[str] = []
    multi = event.get("multiValueHeaders")
    if isinstance(multi, dict):
        for key, vals in multi.items():
            if isinstance(key, str) and key.lower() == name and isinstance(vals, list):
                values.extend(v for v in vals if isinstance(v, str))
    headers = event.get("headers")
    if isinstance(headers, dict):
        for key, val in headers.items():
            if isinstance(key, str) and key.lower() == name and isinstance(val, str):
                values.append(val)
    return values


_KEY_HEADERS: Final = frozenset({"x-api-key", "authorization"})


# Header names (as sent, in order) -> those that carry a key. Clients repeat their header set, so
# the names are matched once per distinct set; bounded, cleared when full.
_KEY_NAMES: dict[tuple[Any, ...], tuple[str, ...]] = {}


def _key_names(headers: Any) -> tuple[str, ...]:
    """The names in a header map that carry a key; () for anything but a map."""
    if not isinstance(headers, dict):
        return ()
    names = tuple(headers)
    found = _KEY_NAMES.get(names)
    if found is not None:
        return found
    found = tuple(
        n
        for n in names
        # len("x-api-key"), len("authorization"): most headers are skipped without lower-casing
        if isinstance(n, str) and len(n) in (9, 13) and n.lower() in _KEY_HEADERS
    )
    if len(_KEY_NAMES) >= 4096:
        _KEY_NAMES.clear()
    _KEY_NAMES[names] = found
    return found


def _tokens_from_headers(event: dict[str, Any]) -> tuple[tuple[str, ...], str | None]:
    """Every distinct key presented in X-Api-Key or Authorization: Bearer, and a refusal, if any.

    REST events carry the headers twice: ``multiValueHeaders`` (every value) and ``headers`` (the
    last one, which a backend usually reads). Both are read and their keys pooled, so a value in one
    and not in the other is a second key. Every value is read or the request is refused: more than
    ``MAX_HEADER_VALUES`` key values in either map is ``too_many_key_values``, never a partial read.
    """
    multi = event.get("multiValueHeaders")
    single = event.get("headers")
    multi_names = _key_names(multi)
    single_names = _key_names(single)
    if len(multi_names) <= 1 and len(single_names) <= 1:  # the common case: one X-Api-Key
        common, value = True, None
        if multi_names:
            raw = multi[multi_names[0]]  # type: ignore[index]
            common = len(multi_names[0]) == 9 and isinstance(raw, list) and len(raw) == 1
            value = raw[0] if common else None
        if single_names and common:
            raw = single[single_names[0]]  # type: ignore[index]
            common = len(single_names[0]) == 9 and (value is None or raw == value)
            value = raw
        if common and isinstance(value, str) and "," not in value:
            value = value.strip()
            return ((value,) if value else ()), None
    found: list[str] = []
    for source, key_names in ((multi, multi_names), (single, single_names)):
        values: list[str] = []
        for name in key_names:
            raw = source[name]  # type: ignore[index]
            api_key = len(name) == 9
            for value in raw if isinstance(raw, list) else [raw]:
                if not isinstance(value, str):
                    continue
                for part in value.split(","):  # HTTP APIs join repeated headers with commas
                    if api_key:
                        values.append(part.strip())
                        continue
                    scheme, _, credential = part.strip().partition(" ")
                    values.append(credential.strip() if scheme.lower() == "bearer" else "")
        if len(values) > MAX_HEADER_VALUES:
            return (), "too_many_key_values"
        found.extend(values)
    return tuple(dict.fromkeys(t for t in found if t)), None


def read_request(event: Any) -> Request | None:
    """Detect the event's shape and extract what the decision needs; None for an unknown shape."""
    if not isinstance(event, dict):
        return None
    if event.get("version") == "2.0" and "routeArn" in event:
        ctx = event.get("requestContext") or {}
        http = ctx.get("http") or {} if isinstance(ctx, dict) else {}
        arn = MethodArn.parse(str(event.get("routeArn", "")))
        method = str(http.get("method") or (arn.method if arn else "")).upper()
        path = str(event.get("rawPath") or http.get("path") or (arn.path if arn else "/"))
        ip = http.get("sourceIp")
        found, refusal = _tokens_from_headers(event)
        stage = arn.stage if arn else (ctx.get("stage") if isinstance(ctx, dict) else None)
        return Request(
            "http",
            found,
            ip if isinstance(ip, str) else None,
            method,
            path,
            arn,
            event,
            refusal,
            stage if isinstance(stage, str) else None,
        )
    if event.get("type") == "TOKEN":
        arn = MethodArn.parse(str(event.get("methodArn", "")))
        raw = event.get("authorizationToken")
        tokens: tuple[str, ...] = ()
        if isinstance(raw, str) and raw.strip():
            scheme, _, credential = raw.strip().partition(" ")
            tokens = (credential.strip(),) if scheme.lower() == "bearer" else (raw.strip(),)
        return Request(
            "token",
            tokens,
            None,
            arn.method if arn else "",
            arn.path if arn else "/",
            arn,
            stage=arn.stage if arn else None,
        )
    if event.get("type") == "REQUEST" and "methodArn" in event:  # REST REQUEST: the hot path
        raw_arn = event["methodArn"]
        arn = parse_method_arn(raw_arn) if isinstance(raw_arn, str) else None
        ip = None
        ctx = event.get("requestContext")
        if isinstance(ctx, dict):
            identity = ctx.get("identity")
            if isinstance(identity, dict):
                ip = identity.get("sourceIp")
        raw_method, raw_path = event.get("httpMethod"), event.get("path")
        method = (
            raw_method.upper() if isinstance(raw_method, str) and raw_method else (arn.method if arn else "")
        )
        path = raw_path if isinstance(raw_path, str) and raw_path else (arn.path if arn else "/")
        tokens, refusal = _tokens_from_headers(event)
        return Request(
            "request",
            tokens,
            ip if isinstance(ip, str) else None,
            method,
            path,
            arn,
            event,
            refusal,
            arn.stage if arn else None,
        )
    return None


# ---------------------------------------------------------------- paths

# Anything here may make a path match one rule yet reach another route: dot segments, encoded or
# back slashes, encodings of characters that never need one, control characters, IAM wildcards,
# Unicode that normalizes to a separator. Plain paths have none of them and cost one scan.
_SUSPECT_CHARS: Final = frozenset("%.\\;*?")
_NEVER_ENCODED: Final = (
    frozenset(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~/\\%*?;")
    | frozenset(range(0x20))
    | {0x7F}
)
_SEPARATORS: Final = "./\\%;*?"


def path_is_canonical(path: str) -> bool:
    """Whether a request path is one API Gateway, the rules and the backend all read the same way."""
    if path.isascii() and path.isprintable() and _SUSPECT_CHARS.isdisjoint(path) and "//" not in path:
        return True  # the common case
    return _path_is_canonical(path)


@lru_cache(maxsize=1024)
def _path_is_canonical(path: str) -> bool:
    import re
    import unicodedata

    if not path.isprintable() or "\\" in path or "*" in path or "?" in path or "//" in path:
        return False
    for segment in path.split("/"):
        if segment.split(";", 1)[0] in (".", ".."):  # "..;" is ".." to some servers
            return False
    decoded = bytearray()
    pos = 0
    for match in re.finditer(r"%([0-9A-Fa-f]{2})?", path):
        if match.group(1) is None:
            return False  # a "%" that encodes nothing
        byte = int(match.group(1), 16)
        if byte in _NEVER_ENCODED:
            return False
        decoded += path[pos : match.start()].encode() + bytes([byte])
        pos = match.end()
    decoded += path[pos:].encode()
    try:
        text = decoded.decode("utf-8")  # overlong forms (%C0%AE) are not UTF-8
    except UnicodeDecodeError:
        return False
    if not text.isprintable():
        return False
    if not text.isascii():  # e.g. a fullwidth dot or solidus that a backend folds to "." or "/"
        folded = unicodedata.normalize("NFKC", text)
        if any(folded.count(c) != text.count(c) for c in _SEPARATORS):
            return False
    return True


def _noncanonical_globs() -> tuple[str, ...]:
    """ARN globs (after ``{prefix}/*``: any method, then the path) for the spellings
    :func:`path_is_canonical` refuses, so that a cached Allow never covers them: dot segments (also
    with ``;`` after them), ``//``, a backslash, and the encoding of every byte that never needs one
    (``.``, ``/``, ``\\``, ``%``, ``;``, letters, digits, control characters ...) in either case.
    ``*`` matches any run of characters, ``/`` included; ``?`` one character."""
    globs = ["/./*", "/../*", "/.", "/..", "/.;*", "/..;*", "//*", "\\*", "%", "%?"]
    globs += ["%0?*", "%1?*"]  # control characters (and a "%0" that encodes nothing)
    globs += ["%/*", "%.*", "%;*", "%\\*", "%%*"]  # a "%" that encodes nothing, before a separator
    for byte in sorted(b for b in _NEVER_ENCODED if b >= 0x20):
        code = f"{byte:02X}"
        high, low = code[0], code[1]
        for h in dict.fromkeys((high, high.lower())):
            for lo in dict.fromkeys((low, low.lower())):
                globs.append(f"%{h}{lo}*")
    return tuple(dict.fromkeys(globs))


# Appended to ``{prefix}/*``: e.g. ``{prefix}/*/../*`` matches ``{prefix}/GET/v1/prices/../admin``.
NONCANONICAL_GLOBS: Final = _noncanonical_globs()


# ---------------------------------------------------------------- the cache


@dataclass(frozen=True)
class Entry:
    record: KeyRecord
    allow: tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]
    deny: tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]
    expires: float
    verifier: Any = None  # signed keys: holds an hmac secret in memory no longer than the record


class RecordCache:
    """Key records by kid, bounded (LRU) with a TTL; plus a short negative cache for unknown kids."""

    def __init__(self, ttl: float, max_entries: int = 10_000, negative_ttl: float = NEGATIVE_TTL_S) -> None:
        self.ttl = ttl
        self.max_entries = max_entries
        self.negative_ttl = min(negative_ttl, ttl)
        self._entries: OrderedDict[str, Entry] = OrderedDict()
        self._missing: OrderedDict[str, float] = OrderedDict()
        # (token, method, path, source ip) -> (expires, decision), for bearer keys only: the same
        # request gets the same answer until the record's TTL or the key's next time boundary.
        self.decisions: dict[tuple[Any, ...], tuple[float, float, Decision]] = {}

    def get(self, kid: str, now: float) -> Entry | None:
        entry = self._entries.get(kid)
        if entry is None:
            return None
        if entry.expires <= now:
            del self._entries[kid]
            return None
        return entry

    def put(self, record: KeyRecord, now: float, verifier: Any = None) -> Entry:
        entry = Entry(
            record,
            # records stored before mapped networks were normalised on input are normalised here
            tuple(network(c) for c in record.allow_cidrs),
            tuple(network(c) for c in record.deny_cidrs),
            now + self.ttl,
            verifier,
        )
        if self.ttl > 0:
            self._entries[record.kid] = entry
            self._entries.move_to_end(record.kid)
            while len(self._entries) > self.max_entries:
                self._entries.popitem(last=False)
        return entry

    def is_missing(self, kid: str, now: float) -> bool:
        until = self._missing.get(kid)
        if until is None:
            return False
        if until <= now:
            del self._missing[kid]
            return False
        return True

    def mark_missing(self, kid: str, now: float) -> None:
        if self.negative_ttl > 0:
            self._missing[kid] = now + self.negative_ttl
            while len(self._missing) > self.max_entries:
                self._missing.popitem(last=False)

    def remember(self, key: tuple[Any, ...], until: float, wall_until: float, decision: Decision) -> None:
        """Keep a decision until the record's TTL (monotonic) or the key's next time boundary (wall clock)."""
        if self.ttl <= 0:
            return
        if len(self.decisions) >= self.max_entries:
            self.decisions.clear()
        self.decisions[key] = (until, wall_until, decision)

    def clear(self) -> None:
        self._entries.clear()
        self._missing.clear()
        self.decisions.clear()


# ---------------------------------------------------------------- decisions


def _ip_in(ip: ipaddress.IPv4Address | ipaddress.IPv6Address, nets: Iterable[Any]) -> bool:
    return any(ip.version == net.version and ip in net for net in nets)


@lru_cache(maxsize=4096)
def _parse_ip(text: str | None) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    """Parsed once per distinct source address (callers repeat theirs)."""
    if not text:
        return None
    try:
        ip = ipaddress.ip_address(text.strip())
    except ValueError:
        return None
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    return ip


def parse_test_stages(text: str) -> frozenset[str]:
    """The ``TestStages`` parameter: stage names, comma-separated. Empty: no stage takes test keys."""
    return frozenset(name.strip() for name in text.split(",") if name.strip())


def failure(error: BaseException, kid: str | None = None) -> Decision:
    """The fail-closed decision for any exception: its type and AWS error code, never its message.

    botocore's HTTP-level errors (ReadTimeoutError, ConnectionClosedError, ...) carry
    ``response=None``; only a dict response has an error code.
    """
    response = getattr(error, "response", None)
    code = ""
    if isinstance(response, dict):
        details = response.get("Error")
        if isinstance(details, dict):
            code = str(details.get("Code") or "")
    return Decision(Outcome.ERROR, "internal_error", kid, error=f"{type(error).__name__} {code}".strip())


class Authorizer:
    def __init__(
        self,
        store: KeyStore,
        peppers: PepperSource,
        routes: RouteTable,
        *,
        cache_ttl: float = 30.0,
        clock: Callable[[], float] = time.time,
        monotonic: Callable[[], float] = time.monotonic,
        kms_key_id: str = "",
        nonce_table: str = "",
        max_age_ms: int = 5_000,
        max_skew_ms: int = 1_000,
        http_response: str = "simple",
        usage_identifier: bool = False,
        gateway_cache_ttl: float = 0,
        test_stages: frozenset[str] | None = None,
    ) -> None:
        self.store = store
        self.peppers = peppers
        self.routes = routes
        self.cache = RecordCache(cache_ttl)
        self.clock = clock
        self.monotonic = monotonic
        self.kms_key_id = kms_key_id
        self.nonce_table = nonce_table
        self.max_age_ms = min(max_age_ms, 60_000)
        self.max_skew_ms = min(max_skew_ms, 60_000)
        self.http_response = http_response  # HTTP APIs: "simple" or "iam" responses
        self.usage_identifier = usage_identifier  # REST: return the key as usageIdentifierKey
        # How long API Gateway may reuse this authorizer's answers; > 0: signed keys are refused.
        self.gateway_cache_ttl = gateway_cache_ttl
        # The stages ks_test_ keys may call; None: not bound (an embedding that has no stages).
        # Live keys may call any stage, test stages included.
        self.test_stages = test_stages
        self._touched: dict[str, float] = {}
        self._contexts: dict[tuple[str, int], dict[str, str | int | bool]] = {}
        self._current = ""  # the current pepper version, as of _current_until (wall clock)
        self._current_until = 0

    @classmethod
    def from_env(cls) -> Authorizer:
        env = os.environ.get
        return cls(
            KeyStore(
                env("KEYS_TABLE", "keysentry-keys"),
                audit_retention_days=int(env("AUDIT_RETENTION_DAYS", "400") or 400),
            ),
            PepperSource(env("PEPPER_SECRET_ID", "keysentry/pepper")),
            RouteTable.from_json(env("ROUTE_SCOPES", "{}")),
            cache_ttl=float(env("AUTH_CACHE_TTL", "30") or 30),
            kms_key_id=env("KMS_KEY_ID", ""),
            nonce_table=env("NONCE_TABLE", ""),
            max_age_ms=int(env("SIGNATURE_MAX_AGE_MS", "5000") or 5000),
            max_skew_ms=int(env("SIGNATURE_MAX_SKEW_MS", "1000") or 1000),
            http_response=env("AUTHORIZER_HTTP_RESPONSE", "simple"),
            usage_identifier=env("USAGE_IDENTIFIER", "false").lower() == "true",
            gateway_cache_ttl=float(env("GATEWAY_CACHE_TTL", "0") or 0),
            test_stages=parse_test_stages(env("TEST_STAGES", "")),
        )

    def decide(self, request: Request) -> Decision:
        if request.refusal is not None:
            return Decision(Outcome.UNAUTHORIZED, request.refusal)
        if not request.tokens:
            return Decision(Outcome.UNAUTHORIZED, "missing_key")
        if len(request.tokens) > 1:
            return Decision(Outcome.UNAUTHORIZED, "several_keys")
        key = (
            request.tokens[0],
            request.method,
            request.path,
            request.source_ip,
            request.shape,
            request.stage,
        )
        cached = self.cache.decisions.get(key)
        if cached is not None:
            now = self.clock()
            if cached[0] > self.monotonic() and cached[1] > now:
                decision = cached[2]
                if decision.outcome is Outcome.ALLOW and decision.record is not None:
                    self._record_use(decision.record, request.tokens[0], int(now))
                return decision
            del self.cache.decisions[key]
        decision = self._decide(request)
        if decision.outcome in (Outcome.ALLOW, Outcome.DENY) and decision.record is not None:
            self._remember(key, decision)
        return decision

    def _remember(self, key: tuple[Any, ...], decision: Decision) -> None:
        record = decision.record
        assert record is not None
        if record.signing.mode != "bearer":
            return  # every signed request is verified (and its nonce claimed) afresh
        entry = self.cache.get(record.kid, self.monotonic())
        if entry is None:
            return
        boundaries = [b for b in (record.grace_until, record.expires_at) if b is not None]
        self.cache.remember(key, entry.expires, min(boundaries, default=float("inf")), decision)

    def _decide(self, request: Request) -> Decision:
        arn = request.method_arn
        if not path_is_canonical(request.path) or (
            arn is not None and arn.path != request.path and not path_is_canonical(arn.path)
        ):
            return Decision(Outcome.DENY, "path_not_canonical")
        try:
            parsed = keyformat.parse(request.tokens[0])
        except MalformedKeyError:
            return Decision(Outcome.UNAUTHORIZED, "malformed_key")
        kid = parsed.kid
        try:
            entry = self._entry(kid)
            if entry is None:
                return Decision(Outcome.UNAUTHORIZED, "unknown_key", kid)
            record = entry.record
            peppers = self.peppers.for_version(record.pepper_version)
            if not peppers.verify(parsed.token, record.digest, record.pepper_version):
                return Decision(Outcome.UNAUTHORIZED, "wrong_digest", kid)
            now = int(self.clock())
            denial = self._denial(entry, request, now)
            if denial:
                return Decision(Outcome.DENY, denial, kid, record)
            self._record_use(record, parsed.token, now)
            return Decision(Outcome.ALLOW, "ok", kid, record)
        except Exception as error:  # fail closed: never an Allow on a failure
            return failure(error, kid)

    def _entry(self, kid: str) -> Entry | None:
        now = self.monotonic()
        entry = self.cache.get(kid, now)
        if entry is not None:
            return entry
        if self.cache.is_missing(kid, now):
            return None
        item = self.store.get_item(kid)
        if item is None:
            self.cache.mark_missing(kid, now)
            return None
        record = from_item(item)
        return self.cache.put(
            record, now, self._verifier(record) if record.signing.mode != "bearer" else None
        )

    def _verifier(self, record: KeyRecord) -> Any:
        """Only for keys that require signed requests: the signing module (and cryptography) load here."""
        from keysentry.signing import Verifier

        signing = record.signing
        if signing.mode == "hmac":
            from keysentry.envelope import KmsBox

            if not signing.secret_ciphertext:
                raise ValueError("hmac key without its secret")
            secret = KmsBox(self.kms_key_id).decrypt(record.kid, "signing", signing.secret_ciphertext)
            return Verifier("hmac", secret=secret)
        return Verifier(signing.mode, public_key_pem=signing.public_key_pem)

    def _denial(self, entry: Entry, request: Request, now: int) -> str | None:
        record = entry.record
        if record.status is Status.ROTATING:
            if record.grace_until is None or record.grace_until <= now:
                return "grace_ended"
        elif record.status is not Status.ACTIVE:
            return f"status_{record.status.value}"
        if record.expires_at is not None and record.expires_at <= now:
            return "expired"
        if record.env == "test" and self.test_stages is not None and request.stage not in self.test_stages:
            return "test_key_on_non_test_stage"
        if entry.allow or entry.deny:
            ip = _parse_ip(request.source_ip)
            if ip is None:
                return "no_source_ip"
            if _ip_in(ip, entry.deny):
                return "ip_denied"
            if entry.allow and not _ip_in(ip, entry.allow):
                return "ip_not_allowed"
        required = self.routes.required_scope(request.method, request.path)
        if required is None:
            return "route_not_mapped"
        if required and required not in record.scopes:
            return "scope_missing"
        if self.gateway_cache_ttl > 0 and record.signing.mode != "bearer":
            # API Gateway would reuse an Allow without the nonce check: a replay would pass.
            return "signed_key_behind_gateway_cache"
        if entry.verifier is not None:
            return self._signature_denial(entry, request)
        return None

    def _signature_denial(self, entry: Entry, request: Request) -> str | None:
        from keysentry.signing import SignatureError, check_time, read_signed

        if request.shape == "token":
            return "signature_needs_request_authorizer"  # a TOKEN authorizer sees one header only
        try:
            signed = read_signed(request.signature_headers())
            check_time(signed, int(self.clock() * 1000), self.max_age_ms, self.max_skew_ms)
            entry.verifier.verify(
                signed, request.method, request.path, request.canonical_query(), request.content_type()
            )
        except SignatureError as error:
            return error.reason
        expires = int(self.clock()) + (self.max_age_ms + self.max_skew_ms) // 1000 + 60
        if not self._claim_nonce(entry.record.kid, signed.nonce, expires):
            return "replayed_nonce"
        return None

    def _claim_nonce(self, kid: str, nonce: str, expires_at: int) -> bool:
        """A conditional put: the first request with this nonce wins, every replay is refused."""
        from botocore.exceptions import ClientError

        try:
            self.store.client.put_item(
                TableName=self.nonce_table,
                Item={"pk": {"S": f"{kid}#{nonce}"}, "expires_at": {"N": str(expires_at)}},
                ConditionExpression="attribute_not_exists(pk)",
            )
        except ClientError as error:
            if error.response["Error"]["Code"] == "ConditionalCheckFailedException":
                return False
            raise
        return True

    def _record_use(self, record: KeyRecord, token: str, now: int) -> None:
        """Keep last_used_at within an hour, without a write per request; re-hash an old pepper."""
        if (
            now < self._current_until
            and record.pepper_version == self._current
            and now - self._touched.get(record.kid, 0) < USAGE_WRITE_INTERVAL_S
        ):
            return  # the common case: used, and recorded, within the hour, under the current pepper
        peppers = self.peppers.get()  # in memory; re-read from Secrets Manager at its bounded age
        self._current, self._current_until = peppers.current, now + PEPPER_CHECK_S
        rehash = peppers.needs_rehash(record.pepper_version)
        if now - self._touched.get(record.kid, 0) < (REHASH_RETRY_S if rehash else USAGE_WRITE_INTERVAL_S):
            return  # recorded within the hour; a re-hash tried within the minute
        last = max(self._touched.get(record.kid, 0), record.last_used_at or 0)
        if not rehash and now - last < USAGE_WRITE_INTERVAL_S:
            self._touched[record.kid] = last  # recorded recently (maybe by another container)
            return
        self._touched[record.kid] = now
        if len(self._touched) > self.cache.max_entries:
            self._touched.clear()
        try:
            if rehash:  # audited: action rehash, pepper version from -> to
                self.store.rehash(record, peppers.digest(token), peppers.current, now)
            else:
                self.store.touch(record.kid, now, stale_before=now - USAGE_WRITE_INTERVAL_S)
        except Exception:  # usage tracking never changes the decision
            return
        if rehash:
            self.cache.clear()

    # ---------------------------------------------------------------- responses

    def context(self, record: KeyRecord, now: int) -> dict[str, str | int | bool]:
        """What the backend learns about the caller (API Gateway passes strings, numbers, booleans)."""
        due = record.grace_until if record.status is Status.ROTATING else record.rotate_after
        base = self._contexts.get((record.kid, record.version))
        if base is None:
            if len(self._contexts) >= self.cache.max_entries:
                self._contexts.clear()
            base = self._contexts[(record.kid, record.version)] = _context_base(record)
        return {**base, "rotate_in_seconds": max(0, (due or now) - now)}


def _context_base(record: KeyRecord) -> dict[str, str | int | bool]:
    return {
        "key_id": record.kid,
        "owner_id": record.owner_id,
        "scopes": ",".join(record.scopes),
        "status": record.status.value,
        "env": record.env,
        "successor": record.successor or "",
        "signing": record.signing.mode,
    }


@lru_cache(maxsize=4096)
def _allow_document(routes: RouteTable, prefix: str, scopes: tuple[str, ...]) -> dict[str, Any] | None:
    """The policy document for a key with these scopes on one API stage: it allows the routes the
    scopes allow and explicitly denies the narrower rules they lack, so that API Gateway's cached
    copy decides every route as the authorizer would (see ``RouteTable.policy_for``). None when
    the scopes allow nothing, or when no document can be exact (then the response names the one
    route asked about). A last Deny covers the non-canonical spellings :func:`path_is_canonical`
    refuses (:data:`NONCANONICAL_GLOBS`), which the allowed globs would otherwise match. Built once, shared by the responses that use it, never modified."""
    rules = routes.policy_for(scopes)
    if not rules.allow or not rules.exact:
        return None
    statements = [_statement("Allow", [f"{prefix}/{r}" for r in rules.allow])]
    if rules.deny:
        statements.append(_statement("Deny", [f"{prefix}/{r}" for r in rules.deny]))
    # The allowed globs match paths the authorizer refuses (``GET/v1/prices/*`` matches
    # ``/v1/prices/..%2Fadmin``): the cached copy denies them as the authorizer would.
    statements.append(_statement("Deny", [f"{prefix}/*{g}" for g in NONCANONICAL_GLOBS]))
    return {"Version": "2012-10-17", "Statement": statements}


def _statement(effect: str, resources: list[str]) -> dict[str, Any]:
    return {"Action": "execute-api:Invoke", "Effect": effect, "Resource": resources}


def policy(principal: str, effect: str, resources: list[str]) -> dict[str, Any]:
    return {
        "principalId": principal,
        "policyDocument": {"Version": "2012-10-17", "Statement": [_statement(effect, resources)]},
    }


# Denials that depend on the route asked about; every other denial of a known key holds on every
# route of the stage (the gateway's cache key holds the key and the source address).
ROUTE_DENIALS: Final = frozenset({"route_not_mapped", "scope_missing", "path_not_canonical"})


def _deny_response(authorizer: Authorizer, request: Request, decision: Decision) -> dict[str, Any]:
    arn = request.method_arn
    principal = decision.kid or "anonymous"
    if arn is None:
        return policy(principal, "Deny", ["*"])
    record = decision.record
    if record is None or decision.reason in ROUTE_DENIALS:
        if record is not None and decision.reason != "path_not_canonical":
            document = _allow_document(authorizer.routes, arn.prefix, record.scopes)
            if document is not None:  # the key's policy already denies this route; say so too
                statements = [*document["Statement"], _statement("Deny", [arn.arn()])]
                return {"principalId": principal, "policyDocument": {**document, "Statement": statements}}
        return policy(principal, "Deny", [arn.arn()])
    return policy(principal, "Deny", [f"{arn.prefix}/*"])


class Unauthorized(Exception):  # API Gateway answers 401 for exactly this message
    def __init__(self) -> None:
        super().__init__("Unauthorized")


def respond(authorizer: Authorizer, request: Request, decision: Decision) -> dict[str, Any]:
    """Turn a decision into the response API Gateway expects for the event's shape."""
    simple = request.shape == "http" and authorizer.http_response == "simple"
    if decision.outcome is Outcome.ALLOW:
        record = decision.record
        assert record is not None
        context = authorizer.context(record, int(authorizer.clock()))
        if simple:
            return {"isAuthorized": True, "context": context}
        arn = request.method_arn
        if arn is None:  # nothing to allow by ARN: never fall back to a wildcard
            return policy(record.kid, "Deny", ["*"])
        document = _allow_document(authorizer.routes, arn.prefix, record.scopes)
        if document is None:  # no policy is exact for every route: allow the one asked about
            document = policy(record.kid, "Allow", [arn.arn()])["policyDocument"]
        response = {"principalId": record.kid, "policyDocument": document, "context": context}
        if authorizer.usage_identifier and request.shape != "http":
            response["usageIdentifierKey"] = request.tokens[0]
        return response
    if simple:
        return {"isAuthorized": False}
    if decision.outcome is Outcome.UNAUTHORIZED and request.shape != "http":
        raise Unauthorized()
    if decision.outcome is Outcome.ERROR and request.shape != "http":
        raise RuntimeError("authorizer error")  # a 500, which API Gateway does not cache
    return _deny_response(authorizer, request, decision)
