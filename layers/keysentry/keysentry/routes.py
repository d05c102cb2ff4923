"""Route scopes: which scope a route requires, and the execute-api ARNs a set of scopes allows.

The owner maps routes to scopes in the ``RouteScopes`` template parameter (JSON)::

    {"GET /v1/prices/*": "prices:read", "POST /v1/orders": "orders:write", "GET /self": ""}

``*`` in a path matches anything (as in an IAM policy resource); ``ANY`` or ``*`` as the method
matches every method; an empty scope means any valid key. A route that no pattern covers is denied.
The first rule that matches a route decides it.

The policy the authorizer returns may be cached by API Gateway and reused for the key's other
routes, so it must grant exactly what the first-match rule grants, route by route: it allows the
rules whose scope the key holds and explicitly denies (IAM: an explicit Deny wins) every rule the
key lacks that comes before an allowed rule it overlaps. When no such pair of statements can say it
(an allowed rule shadows part of a denied rule that in turn shadows a later allowed rule), the
policy is not ``exact`` and the authorizer allows only the route it was asked about.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from functools import cache, lru_cache
from typing import Final

from keysentry.errors import ConfigurationError

HTTP_METHODS: Final = ("GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS")
_METHODS: Final = frozenset({*HTTP_METHODS, "ANY", "*"})


@dataclass(frozen=True)
class RouteRule:
    method: str  # upper case, or "*" for any
    path: str  # starts with "/", may contain "*"
    scope: str  # "" = any valid key
    _regex: re.Pattern[str]

    def matches(self, method: str, path: str) -> bool:
        return (self.method == "*" or self.method == method) and self._regex.fullmatch(path) is not None

    def methods(self) -> tuple[str, ...]:
        return HTTP_METHODS if self.method == "*" else (self.method,)

    def resources(self) -> tuple[str, ...]:
        """The method-and-path parts of execute-api ARNs: ``GET/v1/prices/*``. A rule for any method
        names each method: in an ARN ``*`` also matches ``/``, so ``*/v1/x`` would match
        ``GET/other/v1/x`` too."""
        return tuple(f"{method}{self.path}" for method in self.methods())

    def overlaps(self, other: RouteRule) -> bool:
        """Whether some (method, path) matches both rules."""
        if self.method != "*" and other.method != "*" and self.method != other.method:
            return False
        return _globs_intersect(self.path, other.path)


@dataclass(frozen=True)
class RoutePolicy:
    """The execute-api resources one set of scopes allows and must deny (method-and-path parts)."""

    allow: tuple[str, ...]
    deny: tuple[str, ...]
    exact: bool  # False: these statements cannot say the first-match decision for every route


# Characters a rule's path may hold literally whose escapes need no refusal of their own: letters,
# digits and unreserved marks (every path refuses their escapes), "/" and the rule wildcard "*".
UNRESERVED: Final = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~"  # RFC 3986
_PLAIN: Final = frozenset(UNRESERVED + "/*")


def literal_escapes(paths: list[str]) -> tuple[str, ...]:
    """The escapes (``%3A``) of the other characters the rules' paths hold literally (``:`` in
    ``/v1/keys/*:revoke``, ``@`` in ``/users/@me``). A backend decodes ``%3A`` to ``:``, but the
    rules match the raw path: ``/v1/keys/k1%3Arevoke`` would match ``/v1/keys/*`` and reach the
    ``:revoke`` route. Such a path is refused, and its cached policy denies it."""
    chars = sorted({c for path in paths for c in path if c not in _PLAIN and c.isascii()})
    return tuple(f"%{ord(c):02X}" for c in chars)


@dataclass(frozen=True, eq=False)  # hashed by identity: it keys the lookup caches below
class RouteTable:
    rules: tuple[RouteRule, ...]
    escapes: tuple[str, ...] = ()  # see literal_escapes

    def escapes_a_literal(self, path: str) -> bool:
        """Whether ``path`` spells one of the rules' literal characters as an escape."""
        if not self.escapes or "%" not in path:
            return False
        upper = path.upper()
        return any(escape in upper for escape in self.escapes)

    def escape_globs(self) -> tuple[str, ...]:
        """ARN globs (after ``{prefix}/*``) for those escapes, hex letters in either case."""
        globs = []
        for escape in self.escapes:
            for high in dict.fromkeys((escape[1], escape[1].lower())):
                for low in dict.fromkeys((escape[2], escape[2].lower())):
                    globs.append(f"%{high}{low}*")
        return tuple(globs)

    @classmethod
    def from_json(cls, text: str) -> RouteTable:
        try:
            doc = json.loads(text or "{}")
        except ValueError:
            raise ConfigurationError("ROUTE_SCOPES is not valid JSON") from None
        if not isinstance(doc, dict):
            raise ConfigurationError("ROUTE_SCOPES must be a JSON object of 'METHOD /path': 'scope'")
        rules = []
        for route, scope in doc.items():
            method, _, path = str(route).strip().partition(" ")
            method = method.upper()
            if method not in _METHODS or not path.startswith("/") or not isinstance(scope, str):
                raise ConfigurationError(f"ROUTE_SCOPES entry {route!r} must be 'METHOD /path': 'scope'")
            if "?" in path or " " in path:  # "?" is a one-character wildcard in an IAM resource
                raise ConfigurationError(f"ROUTE_SCOPES entry {route!r}: a path has no '?' or space")
            method = "*" if method == "ANY" else method
            regex = re.compile(
                "".join(".*" if part == "*" else re.escape(part) for part in re.split(r"(\*)", path))
            )
            rules.append(RouteRule(method, path, scope, regex))
        return cls(tuple(rules), literal_escapes([rule.path for rule in rules]))

    def required_scope(self, method: str, path: str) -> str | None:
        """The scope the first matching rule requires; None when no rule covers the route."""
        return _required_scope(self, method, path)

    def policy_for(self, scopes: frozenset[str] | tuple[str, ...]) -> RoutePolicy:
        """What a policy cached across routes must allow and deny for a key with these scopes."""
        return _policy_for(self, tuple(scopes))


@lru_cache(maxsize=8192)
def _required_scope(table: RouteTable, method: str, path: str) -> str | None:
    for rule in table.rules:
        if rule.matches(method, path):
            return rule.scope
    return None


@lru_cache(maxsize=4096)
def _policy_for(table: RouteTable, scopes: tuple[str, ...]) -> RoutePolicy:
    held = set(scopes)
    rules = table.rules
    allowed = [rule.scope == "" or rule.scope in held for rule in rules]
    # A denied rule matters only where it shadows a later allowed rule: deny it there.
    denied = [
        k
        for k, rule in enumerate(rules)
        if not allowed[k] and any(allowed[j] and rule.overlaps(rules[j]) for j in range(k + 1, len(rules)))
    ]
    # The explicit Deny also hits routes an earlier allowed rule decides: then no pair of statements
    # can be exact.
    exact = not any(allowed[i] and rules[i].overlaps(rules[k]) for k in denied for i in range(k))
    return RoutePolicy(
        tuple(r for rule, ok in zip(rules, allowed, strict=True) if ok for r in rule.resources()),
        tuple(r for k in denied for r in rules[k].resources()),
        exact,
    )


def _globs_intersect(a: str, b: str) -> bool:
    """Whether one string matches both patterns, where ``*`` matches any run of characters."""

    @cache
    def meet(i: int, j: int) -> bool:
        if i == len(a):
            return all(c == "*" for c in b[j:])
        if j == len(b):
            return all(c == "*" for c in a[i:])
        if a[i] == "*":
            return meet(i + 1, j) or meet(i, j + 1)  # the star ends here, or takes b's next symbol
        if b[j] == "*":
            return meet(i, j + 1) or meet(i + 1, j)
        return a[i] == b[j] and meet(i + 1, j + 1)

    return meet(0, 0)


@dataclass(frozen=True)
class MethodArn:
    """``arn:aws:execute-api:{region}:{account}:{api_id}/{stage}/{method}/{path}``."""

    prefix: str  # arn:aws:execute-api:region:account:api_id/stage
    method: str
    path: str  # starts with "/"
    stage: str = ""

    @classmethod
    def parse(cls, arn: str) -> MethodArn | None:
        return parse_method_arn(arn)

    def arn(self) -> str:
        return f"{self.prefix}/{self.method}{self.path}"

    @property
    def api_id(self) -> str:
        return self.prefix.rsplit(":", 1)[-1].split("/", 1)[0]


@lru_cache(maxsize=4096)
def parse_method_arn(arn: str) -> MethodArn | None:  # cached: an API has few routes
    parts = arn.split(":", 5)
    if len(parts) != 6 or parts[2] != "execute-api":
        return None
    pieces = parts[5].split("/", 3)
    if len(pieces) < 3:
        return None
    api_id, stage, method = pieces[0], pieces[1], pieces[2]
    path = "/" + (pieces[3] if len(pieces) == 4 else "")
    return MethodArn(f"{':'.join(parts[:5])}:{api_id}/{stage}", method.upper(), path, stage)
