"""A decision, turned into the response API Gateway expects for the event's shape: an IAM policy
(REST, and HTTP APIs with IAM responses) or a simple ``isAuthorized`` (HTTP APIs), the context the
backend reads, the usage identifier; 401 is the exception API Gateway knows by its message.

An Allow's policy covers every route the key's scopes allow, so that API Gateway's cached copy is
right on every route; a known key's Deny covers the stage unless it depends on the route.
"""

from __future__ import annotations

from functools import lru_cache
from typing import TYPE_CHECKING, Any, Final

from keysentry.authorizer.events import Request
from keysentry.authorizer.outcomes import Allowed, Context, Decision, Outcome
from keysentry.authorizer.paths import NONCANONICAL_GLOBS
from keysentry.model import KeyRecord, Status, context_metadata
from keysentry.plans import DEFAULT_PLAN, usage_identifier
from keysentry.routes import MethodArn, RouteTable

if TYPE_CHECKING:
    from keysentry.authorizer.decide import Authorizer

# Denials that depend on the route asked about; every other denial of a known key holds on every
# route of the stage (the gateway's cache key holds the key and the source address).
ROUTE_DENIALS: Final = frozenset({"route_not_mapped", "scope_missing", "path_not_canonical"})
# The key holder's own routes on keysentry's management API: a key refused for its quota still reads
# itself (when the refusal ends), revokes itself, rotates and collects its successor there.
HOLDER_ROUTES: Final = frozenset(
    {
        ("GET", "/self"),
        ("GET", "/self/usage"),
        ("POST", "/self/rotate"),
        ("POST", "/self/successor"),
        ("POST", "/self/revoke"),
    }
)


class Unauthorized(Exception):  # API Gateway answers 401 for exactly this message
    def __init__(self) -> None:
        super().__init__("Unauthorized")


class Contexts:
    """What the backend learns about the caller (API Gateway passes strings, numbers, booleans):
    the parts that change only with the record are built once per record version."""

    def __init__(
        self, max_entries: int, default_plan: str = DEFAULT_PLAN, metered: frozenset[str] = frozenset()
    ) -> None:
        self.max_entries = max_entries
        self.default_plan = default_plan  # the plan of a key without one
        self.metered = metered  # the plans with a quota: their keys' context names their chain
        self._bases: dict[tuple[str, int], Context] = {}

    def base(self, record: KeyRecord) -> tuple[Context, int | None]:
        """The context but for ``rotate_in_seconds``, and the time that counts down to."""
        due = record.grace_until if record.status is Status.ROTATING else record.rotate_after
        base = self._bases.get((record.kid, record.version))
        if base is None:
            if len(self._bases) >= self.max_entries:
                self._bases.clear()
            base = {**_owner_context(record, self.default_plan, self.metered), **_context_base(record)}
            self._bases[(record.kid, record.version)] = base
        return base, due

    def context(self, record: KeyRecord, now: int) -> Context:
        base, due = self.base(record)
        return _with_countdown(base, due, now)


def _with_countdown(base: Context, due: int | None, now: int) -> Context:
    return {**base, "rotate_in_seconds": max(0, (due or now) - now)}


def _context_base(record: KeyRecord) -> Context:
    return {
        "key_id": record.kid,
        "owner_id": record.owner_id,
        "scopes": ",".join(record.scopes),
        "status": record.status.value,
        "env": record.env,
        "successor": record.successor or "",
        "signing": record.signing.mode,
    }


def _owner_context(record: KeyRecord, default_plan: str, metered: frozenset[str]) -> Context:
    """The key's plan, and the metadata its owner named for the backend: entries whose key starts
    with ``ctx_`` (at most ten, strings; :func:`keysentry.model.context_metadata`). keysentry's own
    context keys never start with ``ctx_``: an owner's entry cannot stand in for one.

    ``meter``: on a plan with a quota, the first key of the key's rotation chain (its own id for a
    key that starts one), which the access log carries to the usage pipeline so that the chain's
    requests count against one quota; "" on a plan without one, which spares the pipeline every
    quota read and write for the key."""
    plan = record.plan or default_plan
    meter = (record.meter or record.kid) if plan in metered else ""
    return {**context_metadata(record.metadata), "plan": plan, "meter": meter}


def allowed(authorizer: Authorizer, record: KeyRecord, request: Request, now: int) -> Allowed:
    """An Allow's response parts for ``record`` on the request's stage, to remember with the decision."""
    base, due = authorizer.contexts.base(record)
    arn = request.method_arn
    prefix = arn.prefix if arn is not None else None
    return Allowed(prefix, authorizer.routes, _document(authorizer, record, request, now), base, due)


def _document(authorizer: Authorizer, record: KeyRecord, request: Request, now: int) -> dict[str, Any] | None:
    """The Allow's policy for every route of the stage; None where it must name only the route asked
    about: no stage; a key refused for its quota, allowed only its own routes (HOLDER_ROUTES), so
    that a cached copy allows no other; or a request whose path is not its ARN's (an HTTP API's
    path behind a custom domain). API Gateway matches the policy against the ARN; a REST request is
    decided on the ARN's path itself, the API's own resource path through any host or base path."""
    arn = request.method_arn
    if arn is None or arn.path != request.path or record.quota_refused(now):
        return None
    return _allow_document(authorizer.routes, arn.prefix, record.scopes)


@lru_cache(maxsize=4096)
def _allow_document(routes: RouteTable, prefix: str, scopes: tuple[str, ...]) -> dict[str, Any] | None:
    """The policy document for a key with these scopes on one API stage: it allows the routes the
    scopes allow and explicitly denies the narrower rules they lack, so that API Gateway's cached
    copy decides every route as the authorizer would (see ``RouteTable.policy_for``). None when
    the scopes allow nothing, or when no document can be exact (then the response names the one
    route asked about). A last Deny covers the non-canonical spellings ``path_is_canonical``
    refuses (:data:`NONCANONICAL_GLOBS`), which the allowed globs would otherwise match.
    Built once, shared by the responses that use it, never modified."""
    rules = routes.policy_for(scopes)
    if not rules.allow or not rules.exact:
        return None
    statements = [_statement("Allow", [f"{prefix}/{r}" for r in rules.allow])]
    if rules.deny:
        statements.append(_statement("Deny", [f"{prefix}/{r}" for r in rules.deny]))
    # The allowed globs match paths the authorizer refuses (``GET/v1/prices/*`` matches
    # ``/v1/prices/..%2Fadmin``): the cached copy denies them as the authorizer would.
    # So do the escapes of the rules' own literal characters (``%3A`` where a rule holds ``:``).
    globs = NONCANONICAL_GLOBS + routes.escape_globs()
    statements.append(_statement("Deny", [f"{prefix}/*{g}" for g in globs]))
    return {"Version": "2012-10-17", "Statement": statements}


def _statement(effect: str, resources: list[str]) -> dict[str, Any]:
    return {"Action": "execute-api:Invoke", "Effect": effect, "Resource": resources}


def policy(principal: str, effect: str, resources: list[str]) -> dict[str, Any]:
    return {
        "principalId": principal,
        "policyDocument": {"Version": "2012-10-17", "Statement": [_statement(effect, resources)]},
    }


def _allow_response(
    authorizer: Authorizer, request: Request, decision: Decision, simple: bool
) -> dict[str, Any]:
    record = decision.record
    assert record is not None
    arn = request.method_arn
    prefix = arn.prefix if arn is not None else None
    parts = decision.allowed
    now = request.decided_at if request.decided_at is not None else int(authorizer.clock())
    if parts is not None and parts.prefix == prefix and parts.routes is authorizer.routes:
        base, due, document = parts.base, parts.due, parts.document
    else:
        base, due = authorizer.contexts.base(record)
        document = _document(authorizer, record, request, now)
    context = _with_countdown(base, due, now)
    if simple:
        return {"isAuthorized": True, "context": context}
    if arn is None:  # nothing to allow by ARN: never fall back to a wildcard
        return policy(record.kid, "Deny", ["*"])
    if document is None:  # no policy is exact for every route: allow the one asked about
        document = policy(record.kid, "Allow", [arn.arn()])["policyDocument"]
    response = {"principalId": record.kid, "policyDocument": document, "context": context}
    if authorizer.usage_identifier and request.shape != "http":
        response["usageIdentifierKey"] = usage_identifier(record.kid)  # API Gateway meters it; never the key
    return response


def _route_deny(
    routes: RouteTable, arn: MethodArn, principal: str, record: KeyRecord | None, reason: str
) -> dict[str, Any]:
    """A Deny of the one route asked about; for a known key whose policy already denies it, that
    policy with the route's Deny added (a cached copy then decides every route alike)."""
    if record is not None and reason != "path_not_canonical":
        document = _allow_document(routes, arn.prefix, record.scopes)
        if document is not None:
            statements = [*document["Statement"], _statement("Deny", [arn.arn()])]
            return {"principalId": principal, "policyDocument": {**document, "Statement": statements}}
    return policy(principal, "Deny", [arn.arn()])


def _deny_response(authorizer: Authorizer, request: Request, decision: Decision) -> dict[str, Any]:
    arn = request.method_arn
    principal = decision.kid or "anonymous"
    if arn is None:
        return policy(principal, "Deny", ["*"])
    if decision.record is None or decision.reason in ROUTE_DENIALS:
        return _route_deny(authorizer.routes, arn, principal, decision.record, decision.reason)
    return policy(principal, "Deny", [f"{arn.prefix}/*"])


def respond(authorizer: Authorizer, request: Request, decision: Decision) -> dict[str, Any]:
    """Turn a decision into the response API Gateway expects for the event's shape."""
    simple = request.shape == "http" and authorizer.http_response == "simple"
    if decision.outcome is Outcome.ALLOW:
        return _allow_response(authorizer, request, decision, simple)
    if simple:
        return {"isAuthorized": False}
    if decision.outcome is Outcome.UNAUTHORIZED and request.shape != "http":
        raise Unauthorized()
    if decision.outcome is Outcome.ERROR and request.shape != "http":
        raise RuntimeError("authorizer error")  # a 500, which API Gateway does not cache
    return _deny_response(authorizer, request, decision)
