"""checkov and cfn-lint (its informational rules included) on template.yaml and the examples,
held to a committed baseline where each accepted finding carries its reason (docs/deploy.md, "Scanners").

    python -m keysentry_dev.scanners --checkov .venv-checkov/bin/checkov --cfn-lint .venv/bin/cfn-lint
    python -m keysentry_dev.scanners ... --update     # rewrite the baseline, keeping every reason

The check fails on a finding the baseline does not accept, on a baseline entry that no longer
matches any finding (stale: the baseline must not rot), and on an entry without a reason.
``--update`` drops the stale resources and entries and adds each new finding with an empty reason,
which fails the check until a person writes one: it never accepts anything by itself.

checkov reads each template with the ``Condition`` of its resources removed: it evaluates a
resource's condition with the parameters' defaults and skips the resource when that is false,
so a resource that only some deployments create (the WAF, usage plans) would never be scanned.
cfn-lint reads the templates as they are; it evaluates every combination of conditions itself.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

from keysentry_dev.template import load_template

BASELINE: Final = Path(".scanners-baseline.yaml")
CHECKOV: Final = "checkov"
CFN_LINT: Final = "cfn-lint"
SCANNERS: Final = (CHECKOV, CFN_LINT)
HEADER: Final = """\
# Accepted findings of checkov and cfn-lint (informational rules included), per template: each
# with its reason. `make scanners` fails on a finding not listed here, on an entry that matches
# nothing any more, and on an entry without a reason. `make scanners-baseline` rewrites this file:
# it keeps every reason, drops what matches nothing, and adds new findings with an empty reason
# for a person to write (or fix the template instead). Comments here are not kept: put the why in
# the reason. docs/deploy.md, "Scanners".
"""


@dataclass(frozen=True, order=True)
class Finding:
    """One scanner's finding on one resource of one template (several messages of one rule on one
    resource are one finding)."""

    template: str
    scanner: str
    check: str
    resource: str
    description: str = field(default="", compare=False)

    @property
    def key(self) -> tuple[str, str, str, str]:
        return (self.template, self.scanner, self.check, self.resource)

    def __str__(self) -> str:
        return f"{self.template}: {self.scanner} {self.check} on {self.resource}: {self.description}"


@dataclass(frozen=True)
class Accepted:
    """A baseline entry: one check of one scanner accepted on these resources of one template."""

    template: str
    scanner: str
    check: str
    resources: tuple[str, ...]
    reason: str

    def finding_keys(self) -> list[tuple[str, str, str, str]]:
        return [(self.template, self.scanner, self.check, resource) for resource in self.resources]

    def label(self, resource: str | None = None) -> str:
        on = resource or ", ".join(self.resources)
        return f"{self.template}: {self.scanner} {self.check} on {on}"


@dataclass(frozen=True)
class Comparison:
    new: list[Finding]
    stale: list[tuple[Accepted, str]]  # an entry and one of its resources that nothing matches
    unexplained: list[Accepted]  # entries without a reason

    @property
    def ok(self) -> bool:
        return not (self.new or self.stale or self.unexplained)


# ---------------------------------------------------------------- the comparison (pure)


def compare(findings: Iterable[Finding], baseline: Sequence[Accepted]) -> Comparison:
    found = {finding.key: finding for finding in findings}
    accepted = {key for entry in baseline for key in entry.finding_keys()}
    new = sorted(finding for key, finding in found.items() if key not in accepted)
    stale = [(entry, key[3]) for entry in baseline for key in entry.finding_keys() if key not in found]
    unexplained = [entry for entry in baseline if not entry.reason.strip()]
    return Comparison(new=new, stale=stale, unexplained=unexplained)


def updated(findings: Iterable[Finding], baseline: Sequence[Accepted]) -> list[Accepted]:
    """The baseline for these findings: each entry keeps its reason and the resources still found
    (an entry with none left is dropped); new findings are added with an empty reason, one entry per
    template, scanner and check, never into an entry that already has a reason."""
    found = {finding.key for finding in findings}
    kept: list[Accepted] = []
    for entry in baseline:
        resources = tuple(
            r for r, key in zip(entry.resources, entry.finding_keys(), strict=True) if key in found
        )
        if resources:
            kept.append(Accepted(entry.template, entry.scanner, entry.check, resources, entry.reason))
    accepted = {key for entry in kept for key in entry.finding_keys()}
    added: dict[tuple[str, str, str], list[str]] = {}
    for template, scanner, check, resource in sorted(found - accepted):
        added.setdefault((template, scanner, check), []).append(resource)
    kept += [Accepted(t, s, c, tuple(resources), "") for (t, s, c), resources in added.items()]
    return sorted(kept, key=lambda e: (e.template != "template.yaml", e.template, e.scanner, e.check))


def report(comparison: Comparison, baseline: Path = BASELINE) -> str:
    lines: list[str] = []
    if comparison.new:
        lines.append(f"{len(comparison.new)} new finding(s), not accepted in {baseline}:")
        lines += [f"  {finding}" for finding in comparison.new]
        lines.append(
            "  Fix each in the template, or accept it: `make scanners-baseline` adds it with an empty"
            " reason; write the reason (docs/deploy.md, Scanners)."
        )
    if comparison.stale:
        lines.append(f"{len(comparison.stale)} baseline resource(s) match no finding any more:")
        lines += [f"  {entry.label(resource)}" for entry, resource in comparison.stale]
        lines.append("  Fixed or renamed? `make scanners-baseline` removes them (the other reasons stay).")
    if comparison.unexplained:
        lines.append(f"{len(comparison.unexplained)} baseline entr(y/ies) without a reason:")
        lines += [f"  {entry.label()}" for entry in comparison.unexplained]
        lines.append(f"  Write why each is accepted in {baseline}, or fix the template.")
    return "\n".join(lines)


# ---------------------------------------------------------------- the baseline file


def load_baseline(text: str) -> list[Accepted]:
    import yaml

    doc = yaml.safe_load(text) or {}
    if not isinstance(doc, dict):
        raise ValueError("baseline: expected a mapping of template -> entries")
    entries: list[Accepted] = []
    for template, items in doc.items():
        for item in items or []:
            unknown = set(item) - {"scanner", "check", "resources", "reason"}
            if unknown or item.get("scanner") not in SCANNERS or not item.get("check"):
                raise ValueError(f"baseline, {template}: malformed entry {item!r}")
            resources = item.get("resources") or []
            if isinstance(resources, str):
                resources = [resources]
            reason = item.get("reason") or ""
            entries.append(
                Accepted(
                    str(template), item["scanner"], str(item["check"]), tuple(map(str, resources)), reason
                )
            )
    return entries


def dump_baseline(entries: Sequence[Accepted]) -> str:
    import yaml

    doc: dict[str, list[dict[str, Any]]] = {}
    for entry in entries:
        doc.setdefault(entry.template, []).append(
            {
                "scanner": entry.scanner,
                "check": entry.check,
                "resources": list(entry.resources),
                "reason": " ".join(entry.reason.split()),
            }
        )
    body = yaml.safe_dump(doc, sort_keys=False, width=100, default_flow_style=None, allow_unicode=True)
    return HEADER + body


# ---------------------------------------------------------------- the scanners


def templates(root: Path) -> list[str]:
    return ["template.yaml", *sorted(str(p.relative_to(root)) for p in root.glob("examples/*/template.yaml"))]


def cfn_lint_findings(output: str) -> list[Finding]:
    """cfn-lint's ``--format json`` output as findings (by the template path it was given)."""
    findings: list[Finding] = []
    for match in json.loads(output or "[]"):
        path = match["Location"].get("Path") or []
        if len(path) >= 2 and path[0] == "Resources":
            resource = str(path[1])
        elif len(path) >= 2:
            resource = f"{path[0]}/{path[1]}"
        else:
            resource = "(template)"
        line = match["Location"]["Start"]["LineNumber"]
        findings.append(
            Finding(
                template=match["Filename"],
                scanner=CFN_LINT,
                check=match["Rule"]["Id"],
                resource=resource,
                description=f"{match['Message']} (line {line}; {match['Rule'].get('Source', '')})",
            )
        )
    return findings


def checkov_findings(output: str, names: dict[str, str]) -> list[Finding]:
    """checkov's ``-o json`` output as findings; ``names``: each scanned file's resolved path ->
    the template it stands for."""
    doc = json.loads(output)
    runs = doc if isinstance(doc, list) else [doc]  # one per framework; a list when there are several
    findings: list[Finding] = []
    for run in runs:
        results = run.get("results", {})
        for error in results.get("parsing_errors", []):
            raise RuntimeError(f"checkov could not parse {names.get(str(Path(error).resolve()), error)}")
        for check in results.get("failed_checks", []):
            scanned = str(Path(check["file_abs_path"]).resolve())
            guideline = f" ({check['guideline']})" if check.get("guideline") else ""
            findings.append(
                Finding(
                    template=names[scanned],
                    scanner=CHECKOV,
                    check=check["check_id"],
                    resource=check["resource"].split(".", 1)[-1],  # "AWS::SQS::Queue.Name"
                    description=f"{check['check_name']}{guideline}",
                )
            )
    return findings


def every_resource(template: dict[str, Any]) -> dict[str, Any]:
    """The template with no resource-level ``Condition``: what checkov scans (see the module's doc)."""
    resources = {
        name: {k: v for k, v in res.items() if k != "Condition"}
        for name, res in template["Resources"].items()
    }
    return {**template, "Resources": resources}


def run_cfn_lint(cfn_lint: str, root: Path, names: Sequence[str]) -> list[Finding]:
    command = [
        cfn_lint,
        "--include-checks",
        "I",
        "--non-zero-exit-code",
        "none",
        "--format",
        "json",
        "--",
        *names,
    ]
    done = subprocess.run(command, cwd=root, capture_output=True, text=True, check=False)  # noqa: S603
    if done.returncode != 0:
        raise RuntimeError(f"cfn-lint failed ({done.returncode}): {done.stderr.strip()}")
    return cfn_lint_findings(done.stdout)


def run_checkov(checkov: str, root: Path, names: Sequence[str]) -> list[Finding]:
    with tempfile.TemporaryDirectory(prefix="keysentry-checkov-") as tmp:
        scanned: dict[str, str] = {}
        for i, name in enumerate(names):
            copy = Path(tmp) / f"{i}-{name.replace('/', '-')}.json"
            copy.write_text(json.dumps(every_resource(load_template(root / name)), indent=1))
            scanned[str(copy.resolve())] = name
        # --skip-download: nothing is fetched from the vendor's platform (no network in CI); no API key
        command = [checkov, "--framework", "cloudformation", "--skip-download", "--soft-fail", "-o", "json"]
        command += [arg for path in scanned for arg in ("-f", path)]
        done = subprocess.run(command, capture_output=True, text=True, check=False)  # noqa: S603
        if done.returncode != 0:
            raise RuntimeError(f"checkov failed ({done.returncode}): {done.stderr.strip()[-2000:]}")
        return checkov_findings(done.stdout, scanned)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m keysentry_dev.scanners", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--checkov", default="checkov", help="the checkov executable")
    parser.add_argument("--cfn-lint", default="cfn-lint", help="the cfn-lint executable")
    parser.add_argument("--baseline", type=Path, default=BASELINE)
    parser.add_argument("--update", action="store_true", help="rewrite the baseline, keeping every reason")
    args = parser.parse_args(argv)

    root = Path.cwd()
    names = templates(root)
    findings = run_checkov(args.checkov, root, names) + run_cfn_lint(args.cfn_lint, root, names)
    baseline = load_baseline(args.baseline.read_text()) if args.baseline.exists() else []
    if args.update:
        entries = updated(findings, baseline)
        args.baseline.write_text(dump_baseline(entries))
        missing = sum(1 for e in entries if not e.reason.strip())
        print(
            f"{args.baseline}: {len(entries)} entries for {len(findings)} findings; {missing} without a reason"
        )
        return 0
    comparison = compare(findings, baseline)
    if not comparison.ok:
        print(report(comparison, args.baseline), file=sys.stderr)
        return 1
    print(f"scanners: {len(findings)} findings on {len(names)} templates, each accepted in {args.baseline}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
