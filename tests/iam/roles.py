"""Each function's role as SAM makes it from template.yaml, resolved against a provisioned stack.

The template is transformed by SAM's own translator (``aws-sam-translator``): its policy templates
(``SNSPublishMessagePolicy``, ...) are expanded from the package's own definitions, and whatever
SAM adds for event sources and destinations is there too. The role's intrinsics (``Ref``,
``Fn::GetAtt``, ``Fn::Sub``, ``Fn::If``, ``Fn::Select``, ``Fn::Split``, ``Fn::Join``) are then
resolved against the stack the tests provision in moto (keysentry_dev.local knows the physical
names), for the parameters a function ran with: a template environment variable that is a
parameter (``FLUSH_AUTHORIZER_CACHE: !Ref FlushAuthorizerCache``) gives that parameter its value;
one that is an ``!If`` tells its condition; and a function that ran had its own ``Condition``.
A variable that names a resource other than the template's one (a test's own table) puts the call
outside what the template can deploy: such calls are counted, not judged.
"""

from __future__ import annotations

import copy
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from keysentry_dev.template import NO_VALUE, Stack

from tests.iam.policy import Request, Statement, statements

ROOT = Path(__file__).resolve().parents[2]
PLACEHOLDER_URI = "s3://bucket/key"  # what `sam validate` puts for local code, before translating


def transform(template: Mapping[str, Any]) -> dict[str, Any]:
    """template.yaml as CloudFormation gets it from SAM (the local code as a placeholder S3 URI)."""
    from samtranslator.translator.transform import transform as sam_transform  # type: ignore[import-untyped]

    doc = copy.deepcopy(dict(template))
    for resource in doc.get("Resources", {}).values():
        props = resource.get("Properties", {})
        if resource.get("Type") == "AWS::Serverless::Function" and isinstance(props.get("CodeUri"), str):
            props["CodeUri"] = PLACEHOLDER_URI
        if resource.get("Type") == "AWS::Serverless::LayerVersion":
            props["ContentUri"] = PLACEHOLDER_URI

    class NoManagedPolicies:  # SAM resolves AWS managed policy names itself; keysentry names none
        def load(self) -> dict[str, str]:
            return {}

    region = os.environ.get("AWS_DEFAULT_REGION")
    os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")  # SAM's pseudo parameters need one
    try:
        return dict(sam_transform(doc, {}, NoManagedPolicies()))
    finally:
        if region is None:
            os.environ.pop("AWS_DEFAULT_REGION", None)


@dataclass
class Deployment(Stack):
    """The provisioned stack, under the parameters and conditions one configuration gives."""

    overrides: dict[str, str] = field(default_factory=dict)
    forced: dict[str, bool] = field(default_factory=dict)

    def parameters(self) -> dict[str, str]:
        return {**super().parameters(), **self.overrides}

    def condition(self, name: str) -> bool:
        return self.forced[name] if name in self.forced else super().condition(name)

    def resolve(self, value: Any) -> Any:
        if isinstance(value, dict) and len(value) == 1:
            ((name, arg),) = value.items()
            if name == "Fn::Split":
                return str(self.resolve(arg[1])).split(arg[0])
            if name == "Fn::Select":
                items = self.resolve(arg[1])
                index = int(self.resolve(arg[0]))
                return items[index] if 0 <= index < len(items) else ""
            if name == "Fn::Join":
                parts = [self.resolve(p) for p in arg[1]]
                return arg[0].join(str(p) for p in parts if p is not NO_VALUE)
        return super().resolve(value)


@dataclass(frozen=True)
class Role:
    function: str  # logical id
    folder: str  # functions/<folder>
    condition: str | None
    policies: tuple[Any, ...]  # the role's Policies as SAM wrote them (intrinsics unresolved)
    managed: tuple[Any, ...]  # its ManagedPolicyArns
    environment: Mapping[str, Any]  # Globals' variables and the function's own, unresolved


def roles(template: Mapping[str, Any], transformed: Mapping[str, Any]) -> dict[str, Role]:
    """By folder under functions/: each function's role in the transformed template."""
    resources = transformed["Resources"]
    globals_env = template.get("Globals", {}).get("Function", {}).get("Environment", {}).get("Variables", {})
    out = {}
    for logical, resource in template["Resources"].items():
        if resource.get("Type") != "AWS::Serverless::Function":
            continue
        props = resource["Properties"]
        folder = Path(str(props["CodeUri"])).name
        role_ref = resources[logical]["Properties"]["Role"]["Fn::GetAtt"][0]
        role = resources[role_ref]["Properties"]
        out[folder] = Role(
            function=logical,
            folder=folder,
            condition=resource.get("Condition"),
            policies=tuple(role.get("Policies", [])),
            managed=tuple(role.get("ManagedPolicyArns", [])),
            environment={**globals_env, **props.get("Environment", {}).get("Variables", {})},
        )
    return out


def variables(template: Mapping[str, Any]) -> frozenset[str]:
    """Every environment variable name the template gives a function."""
    names = set(template.get("Globals", {}).get("Function", {}).get("Environment", {}).get("Variables", {}))
    for resource in template["Resources"].values():
        if resource.get("Type") == "AWS::Serverless::Function":
            names |= set(resource["Properties"].get("Environment", {}).get("Variables", {}))
    return frozenset(names)


@dataclass(frozen=True)
class Configuration:
    overrides: tuple[tuple[str, str], ...]
    forced: tuple[tuple[str, bool], ...]
    foreign: tuple[str, ...]  # variables naming something the template would not give the function


def configuration(role: Role, environment: Mapping[str, str], stack: Stack) -> Configuration:
    parameters = set(stack.template.get("Parameters", {}))
    overrides: dict[str, str] = {}
    for name, spec in role.environment.items():
        if name in environment and isinstance(spec, dict) and spec.get("Ref") in parameters:
            overrides[spec["Ref"]] = environment[name]
    forced = {role.condition: True} if role.condition else {}
    probe = deployment(stack, Configuration(tuple(overrides.items()), tuple(forced.items()), ()))
    foreign = []
    for name, spec in role.environment.items():
        if name not in environment or (isinstance(spec, dict) and spec.get("Ref") in parameters):
            continue
        value = environment[name]
        if isinstance(spec, dict) and "Fn::If" in spec:
            condition, when_true, when_false = spec["Fn::If"]
            yes, no = probe.resolve(when_true), probe.resolve(when_false)
            if value == str(yes) and value != str(no):
                forced[condition] = True
            elif value == str(no) and value != str(yes):
                forced[condition] = False
            elif value not in (str(yes), str(no)):
                foreign.append(name)
            continue
        try:
            expected = probe.resolve(spec)
        except KeyError:  # a resource moto does not hold (an API, a log group SAM makes)
            continue
        if expected is not NO_VALUE and value != str(expected):
            foreign.append(name)
    return Configuration(tuple(sorted(overrides.items())), tuple(sorted(forced.items())), tuple(foreign))


def deployment(stack: Stack, config: Configuration) -> Deployment:
    return Deployment(
        stack.template,
        stack.refs,
        stack.attrs,
        given=stack.given,
        overrides=dict(config.overrides),
        forced=dict(config.forced),
    )


_RESOLVED: dict[tuple[int, int, Configuration], tuple[Role, Any, tuple[Statement, ...]]] = {}


def policy_statements(role: Role, config: Configuration, stack: Stack) -> tuple[Statement, ...]:
    """The role's inline policies, resolved for ``config``. Managed policies are not among them:
    the functions' own calls never rely on one (tests/iam/test_roles.py holds which remain)."""
    key = (id(role), id(stack), config)
    hit = _RESOLVED.get(key)
    if hit is not None and hit[0] is role and hit[1] is stack:
        return hit[2]
    world = deployment(stack, config)
    out: list[Statement] = []
    for policy in role.policies:
        resolved = world.resolve(policy)
        if resolved is NO_VALUE:
            continue
        out.extend(statements(resolved["PolicyDocument"], str(resolved.get("PolicyName", ""))))
    _RESOLVED[key] = (role, stack, tuple(out))
    return tuple(out)


def implied(request: Request, stack: Stack) -> list[Request]:
    """What the caller also needs for a call, on IAM's side, because of how a resource is set up:
    publishing to an SNS topic encrypted with a customer managed KMS key needs
    kms:GenerateDataKey and kms:Decrypt on that key."""
    if request.action != "sns:Publish":
        return []
    for logical, resource in stack.template["Resources"].items():
        if resource.get("Type") != "AWS::SNS::Topic" or stack.refs.get(logical) != request.resource:
            continue
        key = resource.get("Properties", {}).get("KmsMasterKeyId")
        if key is None:
            return []
        key_id = str(stack.resolve(key))
        if key_id.startswith("alias/aws/"):  # an AWS managed key: nothing for the caller
            return []
        region, account = request.resource.split(":")[3:5]
        arn = key_id if key_id.startswith("arn:") else f"arn:aws:kms:{region}:{account}:key/{key_id}"
        why = f"publishing to {logical}, encrypted with its KMS key"
        return [
            Request("kms:GenerateDataKey", arn, {"aws:RequestedRegion": (region,)}, ("aws:*",), why),
            Request("kms:Decrypt", arn, {"aws:RequestedRegion": (region,)}, ("aws:*",), why),
        ]
    return []
