"""IAM's evaluation of one identity's policies for one request, as far as a function's role needs.

An explicit Deny wins; otherwise any Allow grants; otherwise the request is implicitly denied.
Action and NotAction match case-insensitively with ``*`` and ``?``; Resource and NotResource
case-sensitively. Conditions: the string operators, ``Bool``, ``Null``, the ``ForAnyValue:`` and
``ForAllValues:`` set operators and the ``IfExists`` suffix, over the keys the request carries
(:attr:`Request.context`) or declares it could carry (:attr:`Request.known`). A condition on any
other key cannot be evaluated here: an Allow under it does not grant, a Deny under it is taken to
apply, and the verdict says which statement that was.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import cache
from typing import Any


@dataclass(frozen=True)
class Request:
    action: str  # e.g. "dynamodb:GetItem"
    resource: str  # an ARN
    context: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    known: tuple[str, ...] = ()  # patterns of condition keys whose absence from context means absent
    note: str = ""  # what asked for it, when it is not the call itself (e.g. an SNS topic's KMS key)

    def knows(self, key: str) -> bool:
        return key in self.context or any(glob_match(pattern, key, fold=True) for pattern in self.known)


@dataclass(frozen=True)
class Statement:
    policy: str
    sid: str
    effect: str
    actions: tuple[str, ...] = ()
    not_actions: tuple[str, ...] | None = None
    resources: tuple[str, ...] = ()
    not_resources: tuple[str, ...] | None = None
    condition: Mapping[str, Mapping[str, tuple[str, ...]]] = field(default_factory=dict)

    @property
    def name(self) -> str:
        return f"{self.policy}/{self.sid}" if self.sid else self.policy

    def covers(self, request: Request) -> bool:
        """Whether Action/NotAction and Resource/NotResource select the request (no condition)."""
        if self.not_actions is not None:
            acts = not any(glob_match(p, request.action, fold=True) for p in self.not_actions)
        else:
            acts = any(glob_match(p, request.action, fold=True) for p in self.actions)
        if self.not_resources is not None:
            on = not any(glob_match(p, request.resource) for p in self.not_resources)
        else:
            on = any(glob_match(p, request.resource) for p in self.resources)
        return acts and on


@dataclass(frozen=True)
class Verdict:
    allowed: bool
    granted_by: Statement | None = None
    denied_by: Statement | None = None
    unevaluable: tuple[str, ...] = ()  # statements set aside: their conditions use unknown keys

    @property
    def reason(self) -> str:
        if self.denied_by is not None:
            return f"explicitly denied by {self.denied_by.name}"
        if self.allowed:
            return f"granted by {self.granted_by.name if self.granted_by else '?'}"
        text = "no statement allows it"
        if self.unevaluable:
            text += f" (conditions not evaluable here, so not granting: {', '.join(self.unevaluable)})"
        return text


class Unevaluable(Exception):
    """A condition uses a key or an operator this evaluator does not know."""


def _as_tuple(value: Any) -> tuple[str, ...]:
    if value is None:
        return ()
    if isinstance(value, list | tuple):
        return tuple(str(v) for v in value)
    return (str(value),)


def statements(document: Mapping[str, Any], policy: str) -> list[Statement]:
    """The statements of one policy document (``Statement`` a mapping or a list of them)."""
    raw = document.get("Statement", [])
    out = []
    for i, item in enumerate([raw] if isinstance(raw, Mapping) else raw):
        condition = {
            operator: {key: _as_tuple(values) for key, values in block.items()}
            for operator, block in (item.get("Condition") or {}).items()
        }
        out.append(
            Statement(
                policy=policy,
                sid=str(item.get("Sid", "") or f"#{i}"),
                effect=str(item["Effect"]),
                actions=_as_tuple(item.get("Action")),
                not_actions=_as_tuple(item["NotAction"]) if "NotAction" in item else None,
                resources=_as_tuple(item.get("Resource")),
                not_resources=_as_tuple(item["NotResource"]) if "NotResource" in item else None,
                condition=condition,
            )
        )
    return out


@cache
def _pattern(pattern: str, fold: bool) -> re.Pattern[str]:
    # IAM's wildcards: * any run of characters (slashes and colons too), ? one character
    body = "".join(".*" if c == "*" else "." if c == "?" else re.escape(c) for c in pattern)
    return re.compile(f"^{body}$", re.IGNORECASE | re.DOTALL if fold else re.DOTALL)


def glob_match(pattern: str, value: str, *, fold: bool = False) -> bool:
    return bool(_pattern(pattern, fold).match(value))


_STRING: dict[str, tuple[Callable[[str, str], bool], bool]] = {
    "StringEquals": (lambda p, v: p == v, False),
    "StringNotEquals": (lambda p, v: p == v, True),
    "StringEqualsIgnoreCase": (lambda p, v: p.lower() == v.lower(), False),
    "StringNotEqualsIgnoreCase": (lambda p, v: p.lower() == v.lower(), True),
    "StringLike": (lambda p, v: glob_match(p, v), False),
    "StringNotLike": (lambda p, v: glob_match(p, v), True),
    "ArnEquals": (lambda p, v: p == v, False),
    "ArnLike": (lambda p, v: glob_match(p, v), False),
    "ArnNotEquals": (lambda p, v: p == v, True),
    "ArnNotLike": (lambda p, v: glob_match(p, v), True),
    "Bool": (lambda p, v: p.lower() == v.lower(), False),
}


def _holds(operator: str, key: str, wanted: tuple[str, ...], request: Request) -> bool:
    if not request.knows(key):
        raise Unevaluable(f"{operator} on {key}")
    values = request.context.get(key)
    if operator == "Null":
        return (values is None) == (wanted[0].lower() == "true")
    quantifier, _, base = operator.rpartition(":")
    if_exists = base.endswith("IfExists")
    base = base.removesuffix("IfExists")
    if base not in _STRING:
        raise Unevaluable(f"operator {operator}")
    match, negated = _STRING[base]
    if values is None:
        if if_exists:
            return True
        return quantifier == "ForAllValues" or negated
    hits = [any(match(p, v) for p in wanted) for v in values]
    if quantifier == "ForAllValues":
        return all(not h for h in hits) if negated else all(hits)
    if quantifier == "ForAnyValue":
        return any(not h for h in hits) if negated else any(hits)
    return not any(hits) if negated else any(hits)


def conditions_hold(statement: Statement, request: Request) -> bool:
    """Every operator, every key of it: raises :class:`Unevaluable` when one cannot be decided."""
    return all(
        _holds(operator, key, wanted, request)
        for operator, block in statement.condition.items()
        for key, wanted in block.items()
    )


def evaluate(policy: Sequence[Statement] | Iterable[Statement], request: Request) -> Verdict:
    allow: Statement | None = None
    unevaluable: list[str] = []
    for statement in policy:
        if not statement.covers(request):
            continue
        try:
            holds = conditions_hold(statement, request)
        except Unevaluable as why:
            unevaluable.append(f"{statement.name}: {why}")
            holds = statement.effect == "Deny"  # a Deny that may apply is taken to apply
        if not holds:
            continue
        if statement.effect == "Deny":
            return Verdict(False, denied_by=statement, unevaluable=tuple(unevaluable))
        allow = allow or statement
    return Verdict(allow is not None, granted_by=allow, unevaluable=tuple(unevaluable))
