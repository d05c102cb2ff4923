"""The check: each recorded call against its function's role; and the grants no call used."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from tests.iam.policy import Request, Statement, evaluate, glob_match
from tests.iam.recorder import Call
from tests.iam.roles import Configuration, Role, configuration, implied, policy_statements, roles, transform


@dataclass(frozen=True)
class Finding:
    function: str  # logical id
    action: str
    resource: str
    reason: str
    operation: str
    test: str
    note: str = ""

    def __str__(self) -> str:
        why = f" ({self.note})" if self.note else ""
        return (
            f"{self.function}: {self.action} on {self.resource}{why} is not granted: {self.reason} "
            f"[{self.operation}, in {self.test}]"
        )


@dataclass
class Report:
    findings: list[Finding] = field(default_factory=list)
    checked: int = 0
    outside: list[tuple[Call, tuple[str, ...]]] = field(default_factory=list)  # not judged, and why
    used: dict[str, set[tuple[str, str, str, str]]] = field(default_factory=lambda: defaultdict(set))
    # by function folder: each configuration it ran with, and the stack it ran against
    configurations: dict[str, dict[tuple[Configuration, int], tuple[Configuration, Any]]] = field(
        default_factory=lambda: defaultdict(dict)
    )


class Checker:
    """Holds the transformed template; checks calls against the stack they were made in."""

    def __init__(self, template: Mapping[str, Any], transformed: Mapping[str, Any] | None = None) -> None:
        self.template = template
        self.roles = roles(template, transformed if transformed is not None else transform(template))
        self._configurations: dict[tuple[str, tuple[tuple[str, str], ...], int], Configuration] = {}

    def _configuration(
        self, role: Role, environment: tuple[tuple[str, str], ...], stack: Any
    ) -> Configuration:
        key = (role.folder, environment, id(stack))
        if key not in self._configurations:
            self._configurations[key] = configuration(role, dict(environment), stack)
        return self._configurations[key]

    def check(self, calls: Iterable[Call], report: Report | None = None, stack: Any = None) -> Report:
        """Each call against the stack it was made in (or ``stack``, when given)."""
        report = report if report is not None else Report()
        for call in calls:
            world = stack if stack is not None else call.stack
            role = self.roles.get(call.function)
            if world is None and not call.error:
                call = replace(call, error="no provisioned stack to check it against")
            if role is None or call.error:
                report.findings.append(
                    Finding(
                        role.function if role else call.function,
                        "?",
                        "?",
                        call.error or "no function of the template has this handler",
                        call.operation,
                        call.test,
                    )
                )
                continue
            config = self._configuration(role, call.environment, world)
            if config.foreign:
                report.outside.append((call, config.foreign))
                continue
            report.configurations[call.function][(config, id(world))] = (config, world)
            policy = policy_statements(role, config, world)
            for request in [r for own in call.requests for r in (own, *implied(own, world))]:
                report.checked += 1
                verdict = evaluate(policy, request)
                if verdict.allowed and verdict.granted_by is not None:
                    report.used[call.function].update(_grants_used(verdict.granted_by, request))
                    continue
                report.findings.append(
                    Finding(
                        role.function,
                        request.action,
                        request.resource,
                        verdict.reason,
                        call.operation,
                        call.test,
                        request.note,
                    )
                )
        return report

    def unexercised(self, report: Report, stack: Any) -> dict[str, list[str]]:
        """By function: each Allow (policy/sid, action, resource) that no checked call used, under
        every configuration the function ran with (or, if it never ran, the template's defaults
        against ``stack``)."""
        out: dict[str, list[str]] = {}
        for folder, role in sorted(self.roles.items()):
            seen = report.configurations.get(folder)
            configs = list(seen.values()) if seen else [(configuration(role, {}, stack), stack)]
            grants: set[tuple[str, str, str, str]] = set()
            for config, world in configs:
                for statement in policy_statements(role, config, world):
                    if statement.effect == "Allow":
                        grants |= {
                            (statement.policy, statement.sid, a, r)
                            for a in statement.actions
                            for r in statement.resources
                        }
            unused = sorted(grants - report.used.get(folder, set()))
            if unused:
                out[role.function] = [f"{policy}/{sid}: {a} on {r}" for policy, sid, a, r in unused]
        return out


def _grants_used(statement: Statement, request: Request) -> set[tuple[str, str, str, str]]:
    return {
        (statement.policy, statement.sid, a, r)
        for a in statement.actions
        if glob_match(a, request.action, fold=True)
        for r in statement.resources
        if glob_match(r, request.resource)
    }
