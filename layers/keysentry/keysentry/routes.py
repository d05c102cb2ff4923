"""Route scopes: which scope a route requires, and the execute-api ARNs a set of scopes allows.

The owner maps routes to scopes in the ``RouteScopes`` template parameter (JSON)::

    {"GET /v1/prices/*": "prices:read", "POST /v1/orders": "orders:write", "GET /self": ""}

``*`` in a path matches anything (as in an IAM policy resource); ``ANY`` or ``*`` as the method
matches every method; an empty scope means any valid key. A route that no pattern covers is denied.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from functools import lru_cache
from typing import Final

from keysentry.errors import ConfigurationError

_METHODS: Final = frozenset({"GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS", "ANY", "*"})


@dataclass(frozen=True)
class RouteRule:
    method: str  # upper case, or "*" for any
    path: str  # starts with "/", may contain "*"
    scope: str  # "" = any valid key
    _regex: re.Pattern[str]

    def matches(self, method: str, path: str) -> bool:
        return (self.method == "*" or self.method == method) and self._regex.fullmatch(path) is not None

    def resource(self) -> str:
        """The method-and-path part of an execute-api ARN: ``GET/v1/prices/*``."""
        return f"{self.method}{self.path}"


@dataclass(frozen=True, eq=False)  # hashed by identity: it keys the lookup caches below
class RouteTable:
    rules: tuple[RouteRule, ...]

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
            method = "*" if method == "ANY" else method
            regex = re.compile(
                "".join(".*" if part == "*" else re.escape(part) for part in re.split(r"(\*)", path))
            )
            rules.append(RouteRule(method, path, scope, regex))
        return cls(tuple(rules))

    def required_scope(self, method: str, path: str) -> str | None:
        """The scope the first matching rule requires; None when no rule covers the route."""
        return _required_scope(self, method, path)

    def allowed_resources(self, scopes: frozenset[str] | tuple[str, ...]) -> tuple[str, ...]:
        """Every route resource the scopes allow, for an Allow policy cached across routes."""
        return _allowed_resources(self, tuple(scopes))


@lru_cache(maxsize=8192)
def _required_scope(table: RouteTable, method: str, path: str) -> str | None:
    for rule in table.rules:
        if rule.matches(method, path):
            return rule.scope
    return None


@lru_cache(maxsize=4096)
def _allowed_resources(table: RouteTable, scopes: tuple[str, ...]) -> tuple[str, ...]:
    held = set(scopes)
    return tuple(rule.resource() for rule in table.rules if rule.scope == "" or rule.scope in held)


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
