"""A new stack over the resources a deleted one retained (docs/operations.md, "Deleting the stack
and deploying it again"; docs/adr/0011).

CloudFormation keeps each resource whose DeletionPolicy is Retain when it deletes a stack, and lists
it as ``DELETE_SKIPPED`` among the deleted stack's resources. This writes what
``aws cloudformation create-change-set --change-set-type IMPORT`` needs to bring them into a new
stack under the same logical ids: ``template-import.json`` (those resources exactly as template.yaml
defines them, with the parameters they use) and ``resources-to-import.json``. A ``sam deploy`` of
template.yaml to that stack then creates the rest around them.

    aws cloudformation list-stack-resources --stack-name OLD_STACK_ID > old-resources.json
    python -m keysentry_dev.recovery old-resources.json [--template template.yaml] [--out-dir .]
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from keysentry_dev.local import RETAINED_POLICIES
from keysentry_dev.template import default_template_path, load_template, references

# CloudFormation's import identifier of each type, which is what it lists as the physical id
IDENTIFIERS: Final = {
    "AWS::DynamoDB::Table": "TableName",
    "AWS::SecretsManager::Secret": "Id",
    "AWS::KMS::Key": "KeyId",
}


class RecoveryError(ValueError):
    """The old stack's resources cannot be imported as they are: the message says why."""


@dataclass(frozen=True)
class ImportPlan:
    template: dict[str, Any]
    resources: list[dict[str, Any]]


def retained(template: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The resources a stack deletion leaves, by logical id (their DeletionPolicy)."""
    return {
        name: resource
        for name, resource in template.get("Resources", {}).items()
        if resource.get("DeletionPolicy") in RETAINED_POLICIES
    }


def _summaries(listing: Any) -> list[dict[str, Any]]:
    rows = listing.get("StackResourceSummaries") if isinstance(listing, dict) else listing
    if not isinstance(rows, list):
        raise RecoveryError("not the output of `aws cloudformation list-stack-resources`")
    return rows


def import_plan(template: dict[str, Any], listing: Any, create_anew: Sequence[str] = ()) -> ImportPlan:
    """The import template and resources to import for every resource template.yaml retains,
    found among the old stack's resources (``list-stack-resources``) as ``DELETE_SKIPPED``."""
    wanted = {name: r for name, r in retained(template).items() if name not in create_anew}
    skipped = {
        row["LogicalResourceId"]: row
        for row in _summaries(listing)
        if row["ResourceStatus"] == "DELETE_SKIPPED"
    }
    missing = sorted(set(wanted) - set(skipped))
    if missing:
        raise RecoveryError(
            f"not retained by the old stack: {', '.join(missing)} (deleted with it, or the listing is not of a "
            "deleted stack). A key table without its pepper and signing key cannot be read again; pass "
            "--create-anew NAME for each one to create instead, knowing what is lost (docs/operations.md)"
        )
    resources, imports = {}, []
    for name, resource in wanted.items():
        row, kind = skipped[name], resource["Type"]
        if row["ResourceType"] != kind or kind not in IDENTIFIERS:
            raise RecoveryError(f"{name}: a {row['ResourceType']} in the old stack, a {kind} in the template")
        resources[name] = resource
        identifier = {IDENTIFIERS[kind]: row["PhysicalResourceId"]}
        imports.append({"ResourceType": kind, "LogicalResourceId": name, "ResourceIdentifier": identifier})
    parameters, conditions = template.get("Parameters", {}), template.get("Conditions", {})
    used = set(references(list(resources.values())))
    for condition in [c for c in used if c in conditions]:
        used |= set(references(conditions[condition]))
    outside = sorted(n for n in used if n in template.get("Resources", {}) and n not in resources)
    if outside:
        raise RecoveryError(
            f"the retained resources refer to resources that are not retained: {', '.join(outside)}"
        )
    document: dict[str, Any] = {
        "AWSTemplateFormatVersion": "2010-09-09",
        "Description": "keysentry: the resources a deleted stack retained, imported into a new stack",
        "Parameters": {n: spec for n, spec in parameters.items() if n in used},
        "Resources": resources,
    }
    if any(n in conditions for n in used):
        document["Conditions"] = {n: spec for n, spec in conditions.items() if n in used}
    return ImportPlan(document, imports)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m keysentry_dev.recovery", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument(
        "listing", help="the deleted stack's `aws cloudformation list-stack-resources` output (JSON)"
    )
    parser.add_argument("--template", type=Path, default=None, help="keysentry's template.yaml")
    parser.add_argument("--out-dir", type=Path, default=Path())
    parser.add_argument(
        "--create-anew", action="append", default=[], metavar="NAME", help="a retained resource lost"
    )
    args = parser.parse_args(argv)
    try:
        listing = json.loads(Path(args.listing).read_text())
        plan = import_plan(load_template(args.template or default_template_path()), listing, args.create_anew)
    except (OSError, json.JSONDecodeError, RecoveryError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    args.out_dir.mkdir(parents=True, exist_ok=True)
    (args.out_dir / "template-import.json").write_text(json.dumps(plan.template, indent=2) + "\n")
    (args.out_dir / "resources-to-import.json").write_text(json.dumps(plan.resources, indent=2) + "\n")
    for entry in plan.resources:
        (identifier,) = entry["ResourceIdentifier"].values()
        print(f"{entry['LogicalResourceId']}: {entry['ResourceType']} {identifier}")
    print(f"wrote {args.out_dir / 'template-import.json'} and {args.out_dir / 'resources-to-import.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
