"""An example application (examples/*/template.yaml) as one flat template that `sam local start-api`
can serve with keysentry's authorizer in front of the example's own API.

`sam build` builds an ``AWS::Serverless::Application`` with a local ``Location``, and `sam local
start-api` mounts the nested stack's functions, but it cannot serve the example as deployed: it reads
the authorizer's ``FunctionArn: !GetAtt Keysentry.Outputs.AuthorizerFunctionArn`` as an ARN it cannot
parse, skips the authorizer and serves the example's routes with no authorizer at all; and it gives the
nested stack its own parameter defaults, not the ``Parameters`` the example passes (RouteScopes
included). So the local run puts the example's resources beside keysentry's, in the stack keysentry's
own e2e already built:

- every ``!GetAtt Keysentry.Outputs.<Name>`` becomes the value keysentry's ``Outputs.<Name>`` is
  defined as (``AuthorizerFunctionArn`` is ``!GetAtt AuthorizerFunction.Arn``): the same function;
- the nested application's ``Parameters`` become keysentry's parameter values: the defaults in the
  flat template, and the variables of the ``--env-vars`` file that are set from those parameters;
- keysentry's resources and outputs whose Condition does not hold under those values are left out,
  as CloudFormation leaves them out of the nested stack (``SampleApis: "false"``: no sample API,
  no sample backend), whatever `sam local` makes of a Condition; each ``Fn::If`` becomes the branch
  it takes (so nothing names what was left out), and conditions nothing uses any more go;
- the example's API, routes, authorizer settings and backend are its own, unchanged but for the
  architecture (this machine's) and the backend's ``CodeUri`` (absolute, as the template moves).
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

NESTED = "AWS::Serverless::Application"
NO_VALUE = {"Ref": "AWS::NoValue"}


def nested_application(example: dict[str, Any]) -> tuple[str, dict[str, str]]:
    """The example's one keysentry application: its logical id and the ``Parameters`` it passes,
    a ``!Ref`` to one of the example's own parameters read as that parameter's default."""
    found = [(name, r) for name, r in example["Resources"].items() if r["Type"] == NESTED]
    if len(found) != 1:
        raise ValueError(f"expected one {NESTED}, found {len(found)}")
    name, resource = found[0]
    own = example.get("Parameters", {})
    parameters: dict[str, str] = {}
    for key, value in resource["Properties"].get("Parameters", {}).items():
        if isinstance(value, dict) and value.get("Ref") in own:
            value = own[value["Ref"]]["Default"]
        if not isinstance(value, str | int):
            raise ValueError(f"{name} passes {key} as {value!r}: only values and parameters run locally")
        parameters[key] = str(value)
    return name, parameters


def _resolve_outputs(value: Any, app: str, outputs: dict[str, Any]) -> Any:
    if isinstance(value, dict):
        attr = value.get("Fn::GetAtt")
        if len(value) == 1 and isinstance(attr, list) and attr[0] == app:
            name = str(attr[1]).removeprefix("Outputs.")
            return copy.deepcopy(outputs[name]["Value"])
        return {k: _resolve_outputs(v, app, outputs) for k, v in value.items()}
    if isinstance(value, list):
        return [_resolve_outputs(v, app, outputs) for v in value]
    return value


def _decided(value: Any, stack: Any) -> Any:
    """``value`` with each ``Fn::If`` replaced by the branch its condition takes under ``stack``'s
    parameters; a property or item that takes ``AWS::NoValue`` is left out."""
    if isinstance(value, dict):
        if len(value) == 1 and "Fn::If" in value:
            condition, when_true, when_false = value["Fn::If"]
            return _decided(when_true if stack.condition(condition) else when_false, stack)
        decided = {k: _decided(v, stack) for k, v in value.items()}
        return {k: v for k, v in decided.items() if v != NO_VALUE}
    if isinstance(value, list):
        return [v for v in (_decided(v, stack) for v in value) if v != NO_VALUE]
    return value


def _conditions_used(flat: dict[str, Any]) -> dict[str, Any]:
    """The conditions a resource or output of ``flat`` names, with those they are made of."""
    defined = flat.get("Conditions", {})
    pending = [
        r["Condition"] for s in ("Resources", "Outputs") for r in flat.get(s, {}).values() if "Condition" in r
    ]
    used: set[str] = set()
    while pending:
        name = pending.pop()
        if name not in used:
            used.add(name)
            pending += _named_conditions(defined[name])
    return {name: definition for name, definition in defined.items() if name in used}


def _named_conditions(value: Any) -> list[str]:
    if isinstance(value, dict):
        if set(value) == {"Condition"}:
            return [value["Condition"]]
        return [name for v in value.values() for name in _named_conditions(v)]
    if isinstance(value, list):
        return [name for v in value for name in _named_conditions(v)]
    return []


def flat_template(
    built: dict[str, Any], source: dict[str, Any], example: dict[str, Any], example_dir: Path, arch: str
) -> dict[str, Any]:
    """keysentry's built template with the example's resources beside it and its parameters applied.

    ``built``: keysentry as `sam build` wrote it; ``source``: keysentry's template.yaml (its Outputs);
    ``example``: the example's template; ``example_dir``: where it lives (its CodeUris are relative)."""
    from keysentry_dev.template import Stack

    app, parameters = nested_application(example)
    flat = copy.deepcopy(built)
    for name, value in parameters.items():
        flat["Parameters"][name]["Default"] = value
    # LocalEndpointUrl is given when sam local starts (--parameter-overrides): the branches it
    # decides (the functions' AWS_ENDPOINT_URL) are taken as set, left as a Ref to it
    local = {"LocalEndpointUrl": "http://sam-local"} if "LocalEndpointUrl" in flat["Parameters"] else {}
    deployed = Stack(flat, given=local)
    for section in ("Resources", "Outputs"):
        kept = {k: v for k, v in flat.get(section, {}).items() if deployed.exists(v)}
        flat[section] = _decided(kept, deployed)
    flat["Globals"] = _decided(flat.get("Globals", {}), deployed)
    flat["Conditions"] = _conditions_used(flat)
    for logical, resource in example["Resources"].items():
        if logical == app:
            continue
        if logical in flat["Resources"]:
            raise ValueError(f"{logical} is both keysentry's and the example's")
        resource = _resolve_outputs(copy.deepcopy(resource), app, source["Outputs"])
        props = resource.get("Properties", {})
        if resource["Type"] == "AWS::Serverless::Function":
            props["CodeUri"] = str((example_dir / props["CodeUri"]).resolve())
            props["Architectures"] = [arch]
        flat["Resources"][logical] = resource
    return flat


def env_vars(doc: dict[str, Any], source: dict[str, Any], parameters: dict[str, str]) -> dict[str, Any]:
    """The ``--env-vars`` document with every variable that keysentry sets from one of
    ``parameters`` (``VAR: !Ref Param``, in Globals or a function's own) given the example's value."""
    out = copy.deepcopy(doc)

    def apply(blocks: list[dict[str, Any]], variables: dict[str, Any]) -> None:
        for var, value in variables.items():
            if isinstance(value, dict) and value.get("Ref") in parameters:
                for block in blocks:
                    block[var] = parameters[value["Ref"]]

    every = [block for block in out.values() if isinstance(block, dict)]
    apply(every, source.get("Globals", {}).get("Function", {}).get("Environment", {}).get("Variables", {}))
    for logical, resource in source["Resources"].items():
        if logical in out:
            apply([out[logical]], resource.get("Properties", {}).get("Environment", {}).get("Variables", {}))
    return out
