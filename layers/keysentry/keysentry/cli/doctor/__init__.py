"""``keysentry doctor``: a deployment checked end to end, one line per check, with what to do when
one fails. Exit 0 only when every check holds, 1 when one fails; 2 and 5 as every command (a
setting missing or wrong; AWS unreachable, or the stack not there).

:mod:`.checks` holds the checks, pure functions over what :mod:`.fetch` (every AWS call) read.
"""

from __future__ import annotations

import argparse
import time
from typing import TYPE_CHECKING, Any

from keysentry.cli.failures import EXIT_FAILED, EXIT_OK
from keysentry.cli.stack import STACK_VAR, resolve
from keysentry.errors import ConfigurationError

if TYPE_CHECKING:
    from keysentry.cli.doctor.checks import Check
    from keysentry.cli.output import Output
    from keysentry.cli.stack import Services

__all__ = ["add_parser", "cmd_doctor", "report"]

WIDTH = 21


def add_parser(top: Any, common: argparse.ArgumentParser) -> None:
    """``keysentry doctor`` in the command line's grammar (``top``: its subcommands)."""
    doctor = top.add_parser(
        "doctor",
        help="check a deployed stack end to end: tables, pepper, KMS, rotation schedule, alarms, usage "
        "subscriptions, the authorizer's settings, GitHub's scanning keys (exit 1 when one fails)",
        parents=[common],
    )
    doctor.set_defaults(func=cmd_doctor)


def cmd_doctor(args: argparse.Namespace, out: Output, services: Services) -> int:
    from keysentry import aws
    from keysentry.cli.doctor.checks import evaluate
    from keysentry.cli.doctor.fetch import gather

    args.refresh = True  # a diagnosis reads the stack as it is now, not as cached
    services.resolved = resolved = resolve(args, required=())
    if resolved.stack is None:
        raise ConfigurationError(
            f"doctor checks a deployed stack: pass --stack NAME (or set {STACK_VAR}); for the local "
            "stack, the name keysentry local up prints"
        )
    checks = evaluate(gather(resolved.stack.name, resolved.environ, resolved.sources, time.time()))
    region = str(aws.session().get_config_variable("region") or "")
    doc, lines = report(resolved.stack.name, region, checks)
    out.emit(doc, "\n".join(lines))
    return EXIT_OK if doc["ok"] else EXIT_FAILED


def report(stack: str, region: str, checks: list[Check]) -> tuple[dict[str, Any], list[str]]:
    """The JSON document and the text lines of a run: a line per check, its remedy on it."""
    held = sum(c.ok for c in checks)
    doc = {
        "stack": stack,
        "region": region,
        "ok": held == len(checks),
        "checks": [c.as_dict() for c in checks],
    }
    lines = [f"stack {stack}" + (f" ({region})" if region else "")]
    for c in checks:
        line = f"{'ok' if c.ok else 'FAIL':<5} {c.name:<{WIDTH}} {c.detail}"
        lines.append(line if c.ok else f"{line}; fix: {c.remedy}")
    lines.append(f"{held} of {len(checks)} checks hold")
    return doc, lines
