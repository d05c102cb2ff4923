"""The three event shapes API Gateway sends an authorizer, each read into one :class:`Request`.

- REST REQUEST (payload 1.0): ``methodArn``, ``headers`` and ``multiValueHeaders``, the source
  address in ``requestContext.identity``; the hot path.
- REST TOKEN: ``methodArn`` and ``authorizationToken`` only (one header, no source address).
- HTTP API payload 2.0: ``routeArn``, ``headers`` (repeated headers joined with commas),
  ``requestContext.http``.

A token comes from ``X-Api-Key`` or ``Authorization: Bearer``, header names in any case, every
value of every map read (or the request refused).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Final

from keysentry.routes import MethodArn, parse_method_arn

MAX_HEADER_VALUES: Final = 8
_API_KEY: Final = "x-api-key"
_KEY_HEADERS: Final = frozenset({_API_KEY, "authorization"})
_KEY_NAME_LENGTHS: Final = frozenset(len(name) for name in _KEY_HEADERS)
_KEY_NAMES_MAX: Final = 4096


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
    api: str | None = None  # the API called (its id): test stages may name it too
    decided_at: int | None = None  # set by the decision: its response is as of the same second
    # The path as the caller sent it, where it is not ``path``: a REST request is decided on its
    # method ARN's path (what API Gateway matches the policy against: the API's own resource path,
    # whatever entry point), while the caller signed, and a custom domain kept, the URL's own
    sent_path: str | None = None

    @property
    def signed_path(self) -> str:
        return self.sent_path if self.sent_path is not None else self.path

    def signature_headers(self) -> dict[str, list[str]]:
        from keysentry.signing import SIGNED_HEADERS

        event = self.event or {}
        return {name: header_values(event, name) for name in SIGNED_HEADERS}

    def listed_headers(self) -> tuple[tuple[str, str], ...]:
        """The headers ``X-Ks-Signed-Headers`` lists, each (name, its one value); () without the
        list. A listed header sent more than once, or not at all, is refused (the backend could read
        another value than the one signed)."""
        from keysentry.signing import HEADER_SIGNED_HEADERS, SignatureError, signed_header_names

        event = self.event or {}
        lists = set(header_values(event, HEADER_SIGNED_HEADERS))
        if not lists:
            return ()
        if len(lists) > 1:
            raise SignatureError("repeated_signature_header")
        names = signed_header_names(lists.pop())
        # a twin spelled with "_" for "-" (X_Account beside X-Account): CGI and WSGI backends read
        # both as HTTP_X_ACCOUNT, so which value they see would be the sender's choice, unsigned
        sent = {
            str(key).lower()
            for headers in (event.get("multiValueHeaders"), event.get("headers"))
            if isinstance(headers, dict)
            for key in headers
        }
        if any(key != key.replace("_", "-") and key.replace("_", "-") in names for key in sent):
            raise SignatureError("ambiguous_signed_header")
        listed = []
        for name in names:
            # REST: every value in the multi-value map, the last again in the other; HTTP APIs join
            # a repeated header's values with commas, so a comma is refused on both shapes alike
            values = header_values(event, name)
            if not values:
                raise SignatureError("missing_signed_header")
            most = 2 if isinstance(event.get("multiValueHeaders"), dict) and self.shape != "http" else 1
            if len(set(values)) > 1 or len(values) > most or "," in values[0]:
                raise SignatureError("repeated_signed_header")
            listed.append((name, values[0]))
        return tuple(listed)

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
        values = _map_values(event.get("multiValueHeaders"), HEADER_CONTENT_TYPE)
        return read_content_type(values or _map_values(event.get("headers"), HEADER_CONTENT_TYPE))


# ---------------------------------------------------------------- headers


def _map_values(headers: Any, name: str) -> list[str]:
    """Every string value of header ``name`` (lower case), in any case, in one header map: a
    single-value map's strings or a multi-value map's lists."""
    values: list[str] = []
    if isinstance(headers, dict):
        for key, found in headers.items():
            if isinstance(key, str) and key.lower() == name:
                values.extend(
                    v for v in (found if isinstance(found, list) else [found]) if isinstance(v, str)
                )
    return values


def header_values(event: dict[str, Any], name: str) -> list[str]:
    """Every value of header ``name`` (lower case), in any case, from both of a REST event's maps."""
    return _map_values(event.get("multiValueHeaders"), name) + _map_values(event.get("headers"), name)


# Header names of both maps (as sent, in order) -> those that carry a key, in each map, and where
# the one X-Api-Key of the common case is. Clients repeat their header set, so the names are matched
# once per distinct set; bounded, cleared when full.
OneApiKey = tuple[str | None, str | None]  # its name in the multi-value map, in the single-value map
KeyNames = tuple[tuple[str, ...], tuple[str, ...], OneApiKey | None]
_KEY_NAMES: dict[tuple[Any, Any], KeyNames] = {}


def _key_names(multi: Any, single: Any) -> KeyNames:
    """The names that carry a key in the multi-value map and in the single-value map (() for a map
    that is not one); and, when those are at most one X-Api-Key per map, its name in each."""
    names = (
        tuple(multi) if isinstance(multi, dict) else None,
        tuple(single) if isinstance(single, dict) else None,
    )
    found = _KEY_NAMES.get(names)
    if found is None:
        in_multi, in_single = _matching(names[0] or ()), _matching(names[1] or ())
        both = in_multi + in_single
        one = None
        if both and len(in_multi) <= 1 and len(in_single) <= 1 and all(len(n) == len(_API_KEY) for n in both):
            one = (in_multi[0] if in_multi else None, in_single[0] if in_single else None)
        found = (in_multi, in_single, one)
        if len(_KEY_NAMES) >= _KEY_NAMES_MAX:
            _KEY_NAMES.clear()
        _KEY_NAMES[names] = found
    return found


def _matching(names: tuple[Any, ...]) -> tuple[str, ...]:
    # most headers are skipped by their length, without lower-casing
    return tuple(
        n for n in names if isinstance(n, str) and len(n) in _KEY_NAME_LENGTHS and n.lower() in _KEY_HEADERS
    )


def _credential(value: str, api_key: bool) -> str:
    """The key in one header value: X-Api-Key's whole value, or Authorization's Bearer credential."""
    if api_key:
        return value.strip()
    scheme, _, credential = value.strip().partition(" ")
    return credential.strip() if scheme.lower() == "bearer" else ""


def _map_tokens(headers: Any, names: tuple[str, ...]) -> list[str]:
    """Every key value in one header map, empty ones included (HTTP APIs join repeats with commas)."""
    values: list[str] = []
    for name in names:
        raw = headers[name]
        api_key = len(name) == len(_API_KEY)
        for value in raw if isinstance(raw, list) else [raw]:
            if isinstance(value, str):
                values.extend(_credential(part, api_key) for part in value.split(","))
    return values


def _one_api_key(multi: Any, single: Any, names: OneApiKey) -> str | None:
    """The common case, read without splitting: one X-Api-Key with one value, the same in both
    maps (or in the one map the event has). None when the headers are anything else."""
    multi_name, single_name = names
    value = None
    if multi_name is not None:
        raw = multi[multi_name]
        if not isinstance(raw, list) or len(raw) != 1:
            return None
        value = raw[0]
    if single_name is not None:
        raw = single[single_name]
        if value is not None and raw != value:
            return None
        value = raw
    return value if isinstance(value, str) and "," not in value else None


def tokens_from_headers(event: dict[str, Any]) -> tuple[tuple[str, ...], str | None]:
    """Every distinct key presented in X-Api-Key or Authorization: Bearer, and a refusal, if any.

    REST events carry the headers twice: ``multiValueHeaders`` (every value) and ``headers`` (the
    last one, which a backend usually reads). Both are read and their keys pooled, so a value in one
    and not in the other is a second key. Every value is read or the request is refused: more than
    ``MAX_HEADER_VALUES`` key values in either map is ``too_many_key_values``, never a partial read.
    """
    multi, single = event.get("multiValueHeaders"), event.get("headers")
    multi_names, single_names, one = _key_names(multi, single)
    if one is not None:
        value = _one_api_key(multi, single, one)
        if value is not None:
            token = value.strip()
            return ((token,) if token else ()), None
    elif not (multi_names or single_names):
        return (), None
    found: list[str] = []
    for headers, names in ((multi, multi_names), (single, single_names)):
        values = _map_tokens(headers, names)
        if len(values) > MAX_HEADER_VALUES:
            return (), "too_many_key_values"
        found.extend(values)
    return tuple(dict.fromkeys(t for t in found if t)), None


# ---------------------------------------------------------------- shapes


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) else None


def read_rest_request(event: dict[str, Any]) -> Request:
    """REST REQUEST authorizer event (payload 1.0)."""
    raw_arn = event["methodArn"]
    arn = parse_method_arn(raw_arn) if isinstance(raw_arn, str) else None
    try:
        ip = event["requestContext"]["identity"]["sourceIp"]
    except (KeyError, TypeError, IndexError):  # missing, or not a map
        ip = None
    method, sent = event.get("httpMethod"), event.get("path")
    if not (isinstance(method, str) and method):
        method = arn.method if arn else ""
    if not (isinstance(sent, str) and sent):
        sent = arn.path if arn else "/"
    tokens, refusal = tokens_from_headers(event)
    stage = arn.stage if arn else None
    ip = ip if isinstance(ip, str) else None
    api = arn.api_id if arn else None
    path = arn.path if arn else sent  # one resource, one spelling, through any host or base path
    spelled = sent if sent != path else None  # positional: this is every request's path
    return Request(
        "request", tokens, ip, method.upper(), path, arn, event, refusal, stage, api, None, spelled
    )


def read_rest_token(event: dict[str, Any]) -> Request:
    """REST TOKEN authorizer event: the one header's value, a key or ``Bearer <key>``."""
    arn = MethodArn.parse(str(event.get("methodArn", "")))
    raw = event.get("authorizationToken")
    tokens: tuple[str, ...] = ()
    if isinstance(raw, str) and raw.strip():
        scheme, _, credential = raw.strip().partition(" ")
        tokens = (credential.strip(),) if scheme.lower() == "bearer" else (raw.strip(),)
    if arn is None:
        return Request("token", tokens, None, "", "/", None, stage=None)
    return Request("token", tokens, None, arn.method, arn.path, arn, stage=arn.stage, api=arn.api_id)


def read_http_request(event: dict[str, Any]) -> Request:
    """HTTP API authorizer event, payload format 2.0."""
    ctx = event.get("requestContext") or {}
    http = ctx.get("http") or {} if isinstance(ctx, dict) else {}
    arn = MethodArn.parse(str(event.get("routeArn", "")))
    method = str(http.get("method") or (arn.method if arn else "")).upper()
    stage = arn.stage if arn else (ctx.get("stage") if isinstance(ctx, dict) else None)
    path = str(event.get("rawPath") or http.get("path") or (arn.path if arn else "/"))
    if _through_execute_api(ctx):  # behind a custom domain the stage is not in the path
        path = _without_stage(path, stage)
    tokens, refusal = tokens_from_headers(event)
    api = arn.api_id if arn else (_text(ctx.get("apiId")) if isinstance(ctx, dict) else None)
    return Request(
        "http", tokens, _text(http.get("sourceIp")), method, path, arn, event, refusal, _text(stage), api
    )


def _through_execute_api(ctx: Any) -> bool:
    """Whether the request came in through the API's own execute-api host
    (``<apiId>.execute-api.<region>.amazonaws.com``, ``.amazonaws.com.cn`` or any other partition's
    suffix), where a named stage leads the path. Through a custom domain the stage is not in the
    path (the API mapping names it), so a first segment that spells the stage is the caller's own."""
    if not isinstance(ctx, dict):
        return False
    api_id, domain = ctx.get("apiId"), ctx.get("domainName")
    if not (isinstance(api_id, str) and api_id):
        return False
    if isinstance(domain, str) and domain:
        return domain.startswith(api_id + ".execute-api.")
    return ctx.get("domainPrefix") == api_id  # no domain name: its first label alone


def _without_stage(path: str, stage: Any) -> str:
    """An HTTP API's path as its routes name it: a named stage's requests carry the stage as the
    path's first segment (``/dev/v1/prices``); the ``$default`` stage's do not."""
    if isinstance(stage, str) and stage and stage != "$default":
        prefix = f"/{stage}"
        if path == prefix:
            return "/"
        if path.startswith(prefix + "/"):
            return path[len(prefix) :]
    return path


def read_request(event: Any) -> Request | None:
    """Detect the event's shape and extract what the decision needs; None for an unknown shape."""
    if not isinstance(event, dict):
        return None
    if event.get("version") == "2.0" and "routeArn" in event:
        return read_http_request(event)
    kind = event.get("type")
    if kind == "REQUEST" and "methodArn" in event:
        return read_rest_request(event)
    if kind == "TOKEN":
        return read_rest_token(event)
    return None
