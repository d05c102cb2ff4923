"""template.yaml as the local cloud reads it: the YAML with CloudFormation's tags, and a
:class:`Stack` that resolves intrinsic functions (``Ref``, ``GetAtt``, ``Sub``, conditions) against
the resources made for it, under the template's parameters."""

from __future__ import annotations

import random
import string
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REGION = "us-east-1"
NO_VALUE = object()  # AWS::NoValue: the property is left out
ACCOUNT = "123456789012"
STACK = "keysentry"


class _CfnLoader:  # a namespace for the YAML loader, built lazily so PyYAML is never on a Lambda path
    @staticmethod
    def load(text: str) -> dict[str, Any]:
        import yaml

        class Loader(yaml.SafeLoader):
            pass

        def construct(loader: yaml.SafeLoader, suffix: str, node: yaml.Node) -> dict[str, Any]:
            name = suffix if suffix in ("Ref", "Condition") else f"Fn::{suffix}"
            value: Any
            if isinstance(node, yaml.ScalarNode):
                value = loader.construct_scalar(node)
                if suffix == "GetAtt":
                    value = str(value).split(".", 1)
            elif isinstance(node, yaml.SequenceNode):
                value = loader.construct_sequence(node, deep=True)
            else:
                value = loader.construct_mapping(node, deep=True)  # type: ignore[arg-type]
            return {name: value}

        Loader.add_multi_constructor("!", construct)
        doc = yaml.load(text, Loader=Loader)  # noqa: S506 - a SafeLoader subclass
        if not isinstance(doc, dict):
            raise ValueError("template is not a mapping")
        return doc


def default_template_path() -> Path:
    """template.yaml of the project: the current directory's, else the one beside the package."""
    here = Path.cwd() / "template.yaml"
    if here.exists():
        return here
    return Path(__file__).resolve().parents[2] / "template.yaml"


def load_template(path: Path | None = None) -> dict[str, Any]:
    return _CfnLoader.load((path or default_template_path()).read_text())


def local_name(logical: str, kind: str) -> str:
    """A resource's name in the local stack: ``keysentry-<LogicalId>``."""
    return f"{STACK}-{logical}"


def cloudformation_names(stack_name: str, seed: int = 0) -> Callable[[str, str], str]:
    """Names as CloudFormation generates them for resources the template leaves unnamed
    (``my-api-KeysTable-1A2B3C4D5E6F``; a secret ``PepperSecret-AbCdEf123456``): no default of
    keysentry's matches one, so whatever finds them must be told them."""
    rng = random.Random(seed)  # noqa: S311 - names, not secrets

    def name(logical: str, kind: str) -> str:
        if kind == "AWS::SecretsManager::Secret":
            return f"{logical}-{''.join(rng.choices(string.ascii_letters + string.digits, k=12))}"
        return f"{stack_name}-{logical}-{''.join(rng.choices(string.ascii_uppercase + string.digits, k=12))}"

    return name


@dataclass
class Stack:
    """What was created: per logical id, what ``Ref`` and ``GetAtt`` give. ``given``: parameter
    values that replace the template's defaults (as ``--parameter-overrides`` would); ``name``
    gives the name of a resource the template leaves unnamed (logical id, type)."""

    template: dict[str, Any]
    refs: dict[str, str] = field(default_factory=dict)
    attrs: dict[str, dict[str, str]] = field(default_factory=dict)
    given: dict[str, str] = field(default_factory=dict)
    name: Callable[[str, str], str] = local_name

    def parameters(self) -> dict[str, str]:
        declared = self.template.get("Parameters", {})
        unknown = set(self.given) - set(declared)
        if unknown:
            raise ValueError(f"the template has no parameter {', '.join(sorted(unknown))}")
        params = {name: str(spec.get("Default", "")) for name, spec in declared.items()}
        params.update(self.given)
        params.update(
            {
                "AWS::Region": REGION,
                "AWS::AccountId": ACCOUNT,
                "AWS::StackName": STACK,
                "AWS::Partition": "aws",
                "AWS::URLSuffix": "amazonaws.com",
            }
        )
        return params

    def condition(self, name: str) -> bool:
        return bool(self.resolve(self.template.get("Conditions", {})[name]))

    def exists(self, resource: dict[str, Any]) -> bool:
        """Whether CloudFormation would create ``resource``: it has no Condition, or one that holds."""
        condition = resource.get("Condition")
        return condition is None or self.condition(condition)

    def resolve(self, value: Any) -> Any:
        if isinstance(value, dict) and len(value) == 1:
            ((name, arg),) = value.items()
            if name == "Fn::If":
                condition, if_true, if_false = arg
                return self.resolve(if_true if self.condition(condition) else if_false)
            if name == "Fn::Equals":
                return self.resolve(arg[0]) == self.resolve(arg[1])
            if name == "Fn::Not":
                return not self.resolve(arg[0])
            if name == "Fn::And":
                return all(self.resolve(a) for a in arg)
            if name == "Fn::Or":
                return any(self.resolve(a) for a in arg)
            if name == "Condition":
                return self.condition(arg)
            if name == "Ref" and arg == "AWS::NoValue":
                return NO_VALUE
            if name == "Ref":
                if arg in self.refs:
                    return self.refs[arg]
                return self.parameters()[arg]
            if name == "Fn::GetAtt":
                logical, attr = arg if isinstance(arg, list) else str(arg).split(".", 1)
                return self.attrs[logical][attr]
            if name == "Fn::Sub":
                text, extra = (arg, {}) if isinstance(arg, str) else (arg[0], arg[1])
                scope = {**self.parameters(), **self.refs, **{k: self.resolve(v) for k, v in extra.items()}}
                for logical, attrs in self.attrs.items():
                    scope.update({f"{logical}.{a}": v for a, v in attrs.items()})
                out = text
                for key, val in scope.items():
                    out = out.replace("${" + key + "}", str(val))
                return out
            if name == "Fn::Join":
                sep, parts = arg
                return sep.join(str(self.resolve(p)) for p in parts)
        if isinstance(value, dict):
            return {k: self.resolve(v) for k, v in value.items()}
        if isinstance(value, list):
            return [self.resolve(v) for v in value]
        return value

    def environment(self, variables: dict[str, Any]) -> dict[str, str]:
        """Environment variables resolved to the local resources; AWS::NoValue ones left out."""
        resolved = {name: self.resolve(value) for name, value in variables.items()}
        return {name: str(value) for name, value in resolved.items() if value is not NO_VALUE}

    def outputs(self) -> dict[str, str]:
        """The template's outputs that name what was made here (not the functions and APIs, which
        moto does not run): what DescribeStacks would give for them."""
        found = {}
        for name, spec in self.template.get("Outputs", {}).items():
            try:
                value = self.resolve(spec["Value"])
            except KeyError:  # a Ref or GetAtt of a resource that was not made
                continue
            if isinstance(value, str) and "${" not in value:
                found[name] = value
        return found

    def function_environment(self) -> dict[str, str]:
        """The environment every function gets (Globals), resolved to the local resources."""
        globals_ = self.template.get("Globals", {}).get("Function", {})
        return self.environment(globals_.get("Environment", {}).get("Variables", {}))


def references(value: Any) -> Iterator[str]:
    """The names a value uses: Ref, GetAtt, ${Name} / ${Name.Attr} in a Sub, and conditions."""
    if isinstance(value, dict):
        for key, arg in value.items():
            if key in ("Ref", "Condition") and isinstance(arg, str):
                yield arg
            elif key == "Fn::GetAtt":
                yield (arg if isinstance(arg, list) else str(arg).split("."))[0]
            elif key == "Fn::If":
                yield arg[0]
                yield from references(arg[1:])
            elif key == "Fn::Sub":
                text = arg if isinstance(arg, str) else arg[0]
                for part in text.split("${")[1:]:
                    name = part.split("}", 1)[0]
                    if not name.startswith("!"):
                        yield name.split(".")[0]
                if isinstance(arg, list):
                    yield from references(arg[1])
            else:
                yield from references(arg)
    elif isinstance(value, list):
        for item in value:
            yield from references(item)
