"""The authorizer's rules, over its ports: the key store, the nonce table, the peppers and the clock.

Order, cheapest first: the one presented token -> parse + checksum (no I/O) -> in-memory cache
(bounded, TTL) or one strongly consistent GetItem -> digest (constant time) -> status and time ->
IP deny, then allow -> route scope -> signature, when the key requires one. Any internal failure
fails closed.
"""

from __future__ import annotations

import ipaddress
import time
from collections.abc import Callable, Iterable
from dataclasses import replace
from functools import lru_cache
from typing import Any

from keysentry import keyformat
from keysentry.authorizer.cache import DecisionKey, Entry, RecordCache
from keysentry.authorizer.events import Request
from keysentry.authorizer.management import ManagementApi
from keysentry.authorizer.outcomes import Decision, Outcome, failure
from keysentry.authorizer.paths import path_is_canonical
from keysentry.authorizer.respond import HOLDER_ROUTES, Contexts, allowed
from keysentry.authorizer.usage import UsageRecorder
from keysentry.errors import MalformedKeyError
from keysentry.identify import identify_token
from keysentry.model import KeyRecord, Status
from keysentry.nonces import NonceTable
from keysentry.peppers import PepperSource
from keysentry.plans import DEFAULT_PLAN, DEFAULT_PLANS, Plans
from keysentry.routes import RouteTable
from keysentry.settings import TEST_STAGES, AuthorizerSettings
from keysentry.store import KeyStore, from_item

_OK = "ok"
_ACTIVE, _ROTATING = Status.ACTIVE, Status.ROTATING  # module constants: read on every decision


def parse_test_stages(text: str) -> frozenset[str]:
    """The ``TestStages`` parameter: stage names (any API's stage of that name) and ``apiId/stage``
    (that API's stage only), comma-separated. Empty: no stage takes test keys."""
    return TEST_STAGES.parse(TEST_STAGES.name, text)


def _kid_of(token: str) -> str | None:
    """The key id of a token that parsed, for the log of a failure; None for one that did not."""
    try:
        return keyformat.parse(token).kid
    except MalformedKeyError:
        return None


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


def _ip_denial(entry: Entry, source_ip: str | None) -> str | None:
    """IP rules: the deny list first, then the allow list; a key with rules needs a source address."""
    ip = _parse_ip(source_ip)
    if ip is None:
        return "no_source_ip"
    if _ip_in(ip, entry.deny):
        return "ip_denied"
    if entry.allow and not _ip_in(ip, entry.allow):
        return "ip_not_allowed"
    return None


def _status_denial(record: KeyRecord, now: int) -> str | None:
    """A key in any state but active and rotating, or past its lifetime or grace: by
    :meth:`KeyRecord.lapsed`, the rule by which every reading shows it expired."""
    status = record.status
    if status is not _ACTIVE and status is not _ROTATING:
        return f"status_{status.value}"
    lapse = record.lapsed(now)
    return None if lapse is None else lapse.value


def _boundary(record: KeyRecord, now: int) -> float:
    """When the decision on ``record`` may change by the clock alone: its grace or lifetime ends, or
    the quota it exhausted resets (a remembered quota_exceeded must not outlive the mark)."""
    times = [t for t in (record.grace_until, record.expires_at) if t is not None]
    if record.quota_exhausted_until is not None and record.quota_refused(now):
        times.append(record.quota_exhausted_until)
    return min(times, default=float("inf"))


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
        nonces: NonceTable | None = None,
        max_age_ms: int = 5_000,
        max_skew_ms: int = 1_000,
        http_response: str = "simple",
        usage_identifier: bool = False,
        gateway_cache_ttl: float = 0,
        test_stages: frozenset[str] | None = None,
        default_plan: str = DEFAULT_PLAN,
        metered_plans: frozenset[str] | None = None,
        management_api: ManagementApi | None = None,
    ) -> None:
        self.store = store
        self.peppers = peppers
        self.routes = routes
        self.cache = RecordCache(cache_ttl)
        self.clock = clock
        self.monotonic = monotonic
        self.kms_key_id = kms_key_id
        self.nonces = nonces if nonces is not None else NonceTable(nonce_table)
        self.max_age_ms = min(max_age_ms, 60_000)
        self.max_skew_ms = min(max_skew_ms, 60_000)
        self.http_response = http_response  # HTTP APIs: "simple" or "iam" responses
        self.usage_identifier = usage_identifier  # REST: return the key's usage identifier (never the key)
        # How long API Gateway may reuse this authorizer's answers; > 0: signed keys are refused.
        self.gateway_cache_ttl = gateway_cache_ttl
        # The stages ks_test_ keys may call; None: not bound (an embedding that has no stages).
        # Live keys may call any stage, test stages included.
        self.test_stages = test_stages
        # The API whose holder routes a quota-refused key may still call; by default none.
        self.management_api = management_api if management_api is not None else ManagementApi()
        self.usage = UsageRecorder(store, peppers, self.cache.max_entries, self.cache.clear)
        # the plans with a quota (None: the default plans', parsed only then): their keys' context
        # names their chain
        if metered_plans is None:
            metered_plans = Plans.from_json(DEFAULT_PLANS, DEFAULT_PLAN).metered
        self.contexts = Contexts(self.cache.max_entries, default_plan, metered_plans)

    @classmethod
    def from_settings(cls, settings: AuthorizerSettings) -> Authorizer:
        return cls(
            KeyStore(settings.keys_table, audit_retention_days=settings.audit_retention_days),
            PepperSource(settings.pepper_secret_id, max_age=settings.pepper_max_age_seconds),
            RouteTable.from_json(settings.route_scopes),
            cache_ttl=settings.cache_ttl,
            kms_key_id=settings.kms_key_id,
            nonce_table=settings.nonce_table,
            max_age_ms=settings.signature_max_age_ms,
            max_skew_ms=settings.signature_max_skew_ms,
            http_response=settings.http_response,
            usage_identifier=settings.usage_identifier,
            gateway_cache_ttl=settings.gateway_cache_ttl,
            test_stages=settings.test_stages,
            management_api=ManagementApi(settings.management_api_parameter),
            default_plan=settings.default_plan,
            metered_plans=settings.plans().metered,
        )

    @classmethod
    def from_env(cls) -> Authorizer:
        return cls.from_settings(AuthorizerSettings.from_env())

    # ---------------------------------------------------------------- the decision

    def decide(self, request: Request) -> Decision:
        if request.refusal is not None:
            return Decision(Outcome.UNAUTHORIZED, request.refusal)
        tokens = request.tokens
        if len(tokens) != 1:
            return Decision(Outcome.UNAUTHORIZED, "several_keys" if tokens else "missing_key")
        # Everything the decision reads, the ARN asked about too (its path is checked for canonical
        # form, its prefix names the API): its strings, which hash faster than the dataclass.
        arn = request.method_arn
        key = (
            tokens[0],
            request.method,
            request.path,
            (arn.prefix, arn.method, arn.path) if arn is not None else None,
            request.source_ip,
            request.shape,
            request.stage,
            request.api,
            request.sent_path,
        )
        cached = self.cache.decisions.get(key)
        if cached is not None:
            until, wall_until, decision, allowed_record = cached
            now = self.clock()
            if until > self.monotonic() and wall_until > now:
                request.decided_at = int(now)
                if allowed_record is not None:
                    self.usage.record(allowed_record, tokens[0], request.decided_at)
                return decision
            del self.cache.decisions[key]
        decision = self._decide(request)
        if decision.record is not None and decision.outcome in (Outcome.ALLOW, Outcome.DENY):
            return self._remember(key, decision, request)
        return decision

    def context(self, record: KeyRecord, now: int) -> dict[str, str | int | bool]:
        """What the backend learns about the caller (API Gateway passes strings, numbers, booleans)."""
        return self.contexts.context(record, now)

    def _remember(self, key: DecisionKey, decision: Decision, request: Request) -> Decision:
        """Keep a bearer key's decision for the same request; an Allow with its response's parts."""
        record = decision.record
        assert record is not None
        if record.signing.mode != "bearer":
            return decision  # every signed request is verified (and its nonce claimed) afresh
        entry = self.cache.get(record.kid, self.monotonic())
        if entry is None:
            return decision
        now = request.decided_at if request.decided_at is not None else int(self.clock())
        if decision.outcome is Outcome.ALLOW:
            decision = replace(decision, allowed=allowed(self, record, request, now))
        self.cache.remember(key, entry.expires, _boundary(record, now), decision)
        return decision

    def _decide(self, request: Request) -> Decision:
        arn = request.method_arn
        spellings = {request.path, request.signed_path, *((arn.path,) if arn is not None else ())}
        if not all(path_is_canonical(path) for path in spellings):
            return Decision(Outcome.DENY, "path_not_canonical")
        if any(self.routes.escapes_a_literal(path) for path in spellings):
            return Decision(Outcome.DENY, "path_not_canonical")  # e.g. %3A where a rule holds ":"
        token = request.tokens[0]
        try:
            # parse (no I/O for a malformed token), the cache or one GetItem, the digest
            found = identify_token(token, self._entry, self.peppers.for_version)
            if found.record is None:
                assert found.refusal is not None
                return Decision(Outcome.UNAUTHORIZED, found.refusal.value, found.kid)
            return self._decide_known(request, found.record, token)
        except Exception as error:  # fail closed: never an Allow on a failure
            return failure(error, _kid_of(token))

    def _decide_known(self, request: Request, entry: Entry, token: str) -> Decision:
        record = entry.record
        now = request.decided_at = int(self.clock())
        denial = self._denial(entry, request, now)
        if denial:
            return Decision(Outcome.DENY, denial, record.kid, record)
        self.usage.record(record, token, now)
        return Decision(Outcome.ALLOW, _OK, record.kid, record)

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
        """Why a known key with the right secret may not make this request; None: it may."""
        record = entry.record
        denial = _status_denial(record, now)
        if denial:
            return denial
        if record.env == "test" and self.test_stages is not None and not self._test_stage(request):
            return "test_key_on_non_test_stage"
        if entry.allow or entry.deny:
            denial = _ip_denial(entry, request.source_ip)
            if denial:
                return denial
        if record.quota_refused(now) and not self._holder_route(request):
            return "quota_exceeded"  # the usage pipeline's mark, read from the record held: no AWS call
        required = self.routes.required_scope(request.method, request.path)
        if required is None:
            return "route_not_mapped"
        if required and required not in record.scopes:
            return "scope_missing"
        return self._signing_denial(entry, request)

    def _test_stage(self, request: Request) -> bool:
        """Whether ``TestStages`` names the request's stage: by its name (on any API), or as
        ``apiId/stage`` (on that API only)."""
        stages = self.test_stages or frozenset()
        return request.stage in stages or f"{request.api}/{request.stage}" in stages

    def _holder_route(self, request: Request) -> bool:
        """A key holder's own route on the management API (and on no other API that names it)."""
        return (request.method, request.path) in HOLDER_ROUTES and self.management_api.serves(
            request.method_arn
        )

    def _signing_denial(self, entry: Entry, request: Request) -> str | None:
        if entry.record.signing.mode == "bearer":
            return None
        if self.gateway_cache_ttl > 0:
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
                signed,
                request.method,
                request.signed_path,
                request.canonical_query(),
                request.content_type(),
                request.listed_headers(),
            )
        except SignatureError as error:
            return error.reason
        expires = int(self.clock()) + (self.max_age_ms + self.max_skew_ms) // 1000 + 60
        if not self.nonces.claim(f"{entry.record.kid}#{signed.nonce}", expires):
            return "replayed_nonce"
        return None
