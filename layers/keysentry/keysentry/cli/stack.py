"""Where the command line's settings come from: an environment variable that is set, else the
deployed stack's outputs and parameters, else nothing (a setting that names a resource has no
default the command line would use: none would match the names CloudFormation makes).

The stack is named by ``--stack NAME``, else ``--config-env ENV`` (the ``stack_name`` of
samconfig.toml's ``[ENV.deploy.parameters]``, as ``sam deploy --config-env ENV`` deployed it, with
its ``region`` and ``profile`` where the environment sets none), else ``KEYSENTRY_STACK``, else
``KEYSENTRY_CONFIG_ENV``. One DescribeStacks reads it; what the command line maps (names and ARNs,
and a few non-secret parameters: never a secret) is cached for :data:`CACHE_TTL_S` per profile,
region, endpoint and stack in ``$XDG_CACHE_HOME/keysentry/stacks.json``; ``--refresh`` reads it again.
"""

from __future__ import annotations

import argparse
import json
import os
import time
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final, TypeVar

from keysentry.errors import ConfigurationError, MissingResourceError
from keysentry.settings import (
    AUDIT_RETENTION_DAYS,
    DEFAULT_PLAN_VAR,
    DEFAULT_ROTATION_DAYS_VAR,
    GRACE_DAYS,
    IDEMPOTENCY_TABLE,
    KEYS_TABLE,
    KMS_KEY_ID,
    MAX_LIFETIME_DAYS_VAR,
    NONCE_TABLE,
    PEPPER_MAX_AGE_SECONDS,
    PEPPER_SECRET_ID,
    PLANS,
    STAGE,
    USAGE_TABLE,
    EnvSettings,
)

if TYPE_CHECKING:
    from keysentry.service import Clock, KeyService

STACK_VAR: Final = "KEYSENTRY_STACK"
CONFIG_ENV_VAR: Final = "KEYSENTRY_CONFIG_ENV"
SAMCONFIG: Final = "samconfig.toml"
CACHE_TTL_S: Final = 900

# setting -> the output (or parameter) of a stack deployed from template.yaml that holds its value
FROM_OUTPUT: Final = {
    KEYS_TABLE.name: "KeysTableName",
    USAGE_TABLE.name: "UsageTableName",
    PEPPER_SECRET_ID.name: "PepperSecretArn",
    KMS_KEY_ID.name: "SigningSecretsKeyId",
    NONCE_TABLE.name: "NonceTableName",
    IDEMPOTENCY_TABLE.name: "IdempotencyTableName",
}
FROM_PARAMETER: Final = {
    PLANS.name: "Plans",
    DEFAULT_PLAN_VAR.name: "DefaultPlan",
    GRACE_DAYS.name: "GraceDays",
    DEFAULT_ROTATION_DAYS_VAR.name: "DefaultRotationDays",
    MAX_LIFETIME_DAYS_VAR.name: "MaxLifetimeDays",
    AUDIT_RETENTION_DAYS.name: "AuditRetentionDays",
    PEPPER_MAX_AGE_SECONDS.name: "PepperMaxAgeSeconds",
    STAGE.name: "Stage",
}
# What the key service's commands need set: the resources every one of them may touch.
RESOURCES: Final = (KEYS_TABLE.name, USAGE_TABLE.name, PEPPER_SECRET_ID.name, KMS_KEY_ID.name)


@dataclass(frozen=True)
class StackRef:
    """A stack's name and where it was named (``--stack``, ``KEYSENTRY_STACK``, samconfig.toml)."""

    name: str
    origin: str


@dataclass(frozen=True)
class StackValues:
    """What the command line read from a stack: its mapped outputs and parameters, nothing else."""

    name: str
    status: str
    outputs: dict[str, str]
    parameters: dict[str, str]
    read_at: float

    def settings(self) -> tuple[dict[str, str], dict[str, str]]:
        """The settings' values and, for each, where it came from."""
        values, sources = {}, {}
        for kind, mapping, found in (
            ("output", FROM_OUTPUT, self.outputs),
            ("parameter", FROM_PARAMETER, self.parameters),
        ):
            for setting, key in mapping.items():
                if key in found:
                    values[setting] = found[key]
                    sources[setting] = f"stack {self.name}'s {kind} {key}"
        return values, sources


@dataclass(frozen=True)
class Resolved:
    """The environment settings are read from (the stack's values under the variables that are set),
    where each value came from, and the stack's values as read (None: no stack named)."""

    environ: Mapping[str, str]
    sources: dict[str, str]
    stack: StackValues | None = None

    def explain(self, message: str) -> str:
        """A settings error, with where the setting it starts with came from."""
        name = message.split(" ", 1)[0].rstrip(":")
        return f"{message} (from {self.sources[name]})" if name in self.sources else message


def stack_ref(args: argparse.Namespace) -> StackRef | None:
    """The stack named on the command line, else in the environment; None: no stack."""
    stack, config_env = getattr(args, "stack", None), getattr(args, "config_env", None)
    if stack and config_env:
        raise ConfigurationError("give --stack or --config-env, not both")
    if stack:
        return StackRef(stack, "--stack")
    if config_env:
        return _from_samconfig(config_env, f"--config-env {config_env}")
    if os.environ.get(STACK_VAR):
        return StackRef(os.environ[STACK_VAR], STACK_VAR)
    if os.environ.get(CONFIG_ENV_VAR):
        env = os.environ[CONFIG_ENV_VAR]
        return _from_samconfig(env, f"{CONFIG_ENV_VAR}={env}")
    return None


def _from_samconfig(env: str, origin: str) -> StackRef:
    """``stack_name`` of samconfig.toml's ``[env.deploy.parameters]`` (or ``[env.global.parameters]``),
    as ``sam deploy --config-env env`` reads it; its region and profile where the environment has none."""
    path = Path.cwd() / SAMCONFIG
    try:
        doc = tomllib.loads(path.read_text())
    except OSError:
        raise ConfigurationError(f"{origin}: no {SAMCONFIG} in {Path.cwd()}") from None
    except tomllib.TOMLDecodeError as error:
        raise ConfigurationError(f"{origin}: {path} is not valid TOML ({error})") from None
    section = doc.get(env) if isinstance(doc.get(env), dict) else None
    merged: dict[str, Any] = {}
    for command in ("global", "deploy"):  # deploy's own settings over the global ones, as sam reads them
        params = (section or {}).get(command, {}).get("parameters", {})
        merged.update(params if isinstance(params, dict) else {})
    name = merged.get("stack_name")
    if not isinstance(name, str) or not name:
        raise ConfigurationError(f"{origin}: {SAMCONFIG} has no stack_name in [{env}.deploy.parameters]")
    from keysentry import aws  # botocore: only once a command needs AWS (a client-only install lacks it)

    session = aws.session()
    if isinstance(merged.get("region"), str) and not _env("AWS_REGION", "AWS_DEFAULT_REGION"):
        session.set_config_variable("region", merged["region"])
    if isinstance(merged.get("profile"), str) and not _env("AWS_PROFILE", "AWS_DEFAULT_PROFILE"):
        session.set_config_variable("profile", merged["profile"])
    return StackRef(name, f"{origin} ({SAMCONFIG})")


def _env(*names: str) -> str:
    return next((os.environ[n] for n in names if os.environ.get(n)), "")


def resolve(args: argparse.Namespace, required: tuple[str, ...] = RESOURCES) -> Resolved:
    """The settings' environment, or ConfigurationError naming each required setting that is unset
    and saying where it could come from."""
    ref = stack_ref(args)
    stack = None if ref is None else read_stack(ref, refresh=bool(getattr(args, "refresh", False)))
    values, sources = stack.settings() if stack is not None else ({}, {})
    for name in set(values) | set(required):
        if os.environ.get(name):
            sources[name] = "the environment"
    missing = [name for name in required if not os.environ.get(name) and name not in values]
    if missing:
        raise ConfigurationError(_missing(missing, ref, stack))
    return Resolved({**values, **os.environ}, sources, stack)


def _missing(missing: list[str], ref: StackRef | None, stack: StackValues | None) -> str:
    names = missing[0] if len(missing) == 1 else ", ".join(missing[:-1]) + " and " + missing[-1]
    if ref is None or stack is None:
        verb, them = ("is", "it") if len(missing) == 1 else ("are", "them")
        return (
            f"{names} {verb} not set: pass --stack NAME (or set {STACK_VAR}) to read {them} from the "
            f"deployed stack's outputs, or set {names} (keysentry local up prints them for the local stack)"
        )
    outputs = ", ".join(f"{FROM_OUTPUT[name]} ({name})" for name in missing)
    status = "" if stack.status.endswith("_COMPLETE") else f" (it is {stack.status})"
    return (
        f"stack {stack.name} (from {ref.origin}) has no output {outputs}{status}: name the stack "
        f"deployed from keysentry's template.yaml (where keysentry is nested, the nested stack), or set {names}"
    )


# ---------------------------------------------------------------- reading, and the cache


def cache_file() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "keysentry" / "stacks.json"


def _where() -> tuple[str, str, str]:
    """The profile, region and endpoint a stack is read with: what tells one cached stack from another."""
    from keysentry import aws

    session = aws.session()
    endpoint = _env("AWS_ENDPOINT_URL_CLOUDFORMATION", "AWS_ENDPOINT_URL")
    return (
        str(session.get_config_variable("profile") or "default"),
        str(session.get_config_variable("region") or ""),
        endpoint,
    )


def read_stack(ref: StackRef, *, refresh: bool = False, now: float | None = None) -> StackValues:
    """The stack's values: from the cache while they are younger than CACHE_TTL_S, else read."""
    now = time.time() if now is None else now
    key = "|".join((*_where(), ref.name))
    cache = _load_cache()
    cached = _entry(cache.get(key))
    if cached is not None and not refresh and 0 <= now - cached.read_at < CACHE_TTL_S:
        return cached
    values = describe_stack(ref, now)
    fresh = {k: v for k, v in cache.items() if (e := _entry(v)) and 0 <= now - e.read_at < CACHE_TTL_S}
    _save_cache({**fresh, key: asdict(values)})
    return values


def _entry(hit: object) -> StackValues | None:
    """A cache entry as written, or None (another version's, or edited by hand)."""
    if not isinstance(hit, dict):
        return None
    try:
        entry = StackValues(**hit)
    except TypeError:
        return None
    texts = [entry.name, entry.status, *entry.outputs.values(), *entry.parameters.values()]
    kinds = isinstance(entry.outputs, dict) and isinstance(entry.parameters, dict)
    if not kinds or not isinstance(entry.read_at, int | float) or not all(isinstance(t, str) for t in texts):
        return None
    return entry


def describe_stack(ref: StackRef, now: float) -> StackValues:
    """One DescribeStacks: the outputs and parameters the command line maps, and the stack's status."""
    from botocore.exceptions import ClientError
    from keysentry import aws

    client = aws.client("cloudformation")
    try:
        stack = client.describe_stacks(StackName=ref.name)["Stacks"][0]
    except ClientError as error:
        err = error.response.get("Error", {})
        if err.get("Code") == "ValidationError" and "does not exist" in str(err.get("Message")):
            profile, _, endpoint = _where()
            raise MissingResourceError(
                f"no stack named {ref.name} in {client.meta.region_name} (profile {profile}"
                f"{', endpoint ' + endpoint if endpoint else ''}): check {ref.origin}, AWS_REGION and AWS_PROFILE",
                ref.origin,
            ) from None
        raise
    outputs = {
        o["OutputKey"]: o["OutputValue"]
        for o in stack.get("Outputs", [])
        if o.get("OutputKey") in FROM_OUTPUT.values() and "OutputValue" in o
    }
    parameters = {
        p["ParameterKey"]: p.get("ResolvedValue") or p.get("ParameterValue", "")
        for p in stack.get("Parameters", [])
        if p.get("ParameterKey") in FROM_PARAMETER.values()
    }
    return StackValues(ref.name, str(stack.get("StackStatus", "")), outputs, parameters, now)


def _load_cache() -> dict[str, Any]:
    try:
        doc = json.loads(cache_file().read_text())
    except (OSError, ValueError):
        return {}
    return doc if isinstance(doc, dict) else {}


def _save_cache(doc: dict[str, Any]) -> None:
    """Written whole and renamed into place, readable by its owner only; a cache that cannot be
    written is no error (the stack is read again next time)."""
    path = cache_file()
    try:
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        partial = path.with_suffix(f".{os.getpid()}.tmp")
        fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as file:
            json.dump(doc, file, indent=1, sort_keys=True)
        partial.replace(path)
    except OSError:
        pass


# ---------------------------------------------------------------- what a command is given

S = TypeVar("S", bound=EnvSettings)


class Services:
    """A command's settings and key service, resolved on first use (``local up`` and ``demo`` need
    none); ``resolved`` (once read) tells an error where each setting came from."""

    def __init__(
        self,
        args: argparse.Namespace,
        clock: Clock | None = None,
        build: Callable[[Services], KeyService] | None = None,
    ) -> None:
        self.args = args
        self.clock = clock
        self.resolved: Resolved | None = None
        self._build = build or Services.key_service

    def settings(self, cls: type[S], required: tuple[str, ...] = RESOURCES) -> S:
        if self.resolved is None:
            self.resolved = resolve(self.args, required)
        try:
            return cls.from_env(self.resolved.environ)
        except ConfigurationError as error:
            raise ConfigurationError(self.resolved.explain(str(error))) from None

    def __call__(self) -> KeyService:
        return self._build(self)

    def key_service(self) -> KeyService:
        from keysentry.service import KeyService
        from keysentry.settings import Settings

        settings = self.settings(Settings)
        if self.clock is None:
            return KeyService.from_settings(settings)
        return KeyService.from_settings(settings, clock=self.clock)
