"""The checks of ``keysentry doctor``: small pure functions over what :mod:`.fetch` read, each
answering one :class:`Check` with what was seen and, when it fails, what to do. No I/O here, and
never a secret in what they answer: the pepper is read for its shape only."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

from keysentry.authorizer.respond import HOLDER_ROUTES
from keysentry.errors import ConfigurationError
from keysentry.hashing import Peppers
from keysentry.model import ROTATE_SELF_SCOPE
from keysentry.routes import RouteTable
from keysentry.settings import KEYS_TABLE, PEPPER_SECRET_ID, AuthorizerSettings
from keysentry.store import AUDIT_OWNER_INDEX, DUE_INDEX, OWNER_INDEX

# The management API's self-service routes, behind the keysentry authorizer: the holder's own routes
# the authorizer knows (template.yaml's ApiFunction events with Auth: KeysentryAuthorizer; a unit
# test holds the two together).
SELF_ROUTES: Final = tuple(sorted(HOLDER_ROUTES))
KEYS_INDEXES: Final = (OWNER_INDEX, DUE_INDEX, AUDIT_OWNER_INDEX)
KEYS_STREAM: Final = "NEW_AND_OLD_IMAGES"
REDEPLOY: Final = "redeploy the stack from keysentry's template.yaml (sam deploy)"


@dataclass(frozen=True)
class Check:
    """One line of the report: ``remedy`` says what to do, and is empty when the check holds."""

    name: str
    ok: bool
    detail: str
    remedy: str = ""

    def as_dict(self) -> dict[str, Any]:
        return {"name": self.name, "ok": self.ok, "detail": self.detail, "remedy": self.remedy}


@dataclass(frozen=True)
class Refused:
    """AWS's answer where a resource was expected (not found, access denied, ...)."""

    code: str
    message: str = ""

    def __str__(self) -> str:
        return f"{self.code}: {self.message}" if self.message else self.code

    @property
    def missing(self) -> bool:
        return "NotFound" in self.code or self.code in ("ValidationException", "ParameterNotFound")


def _failed(name: str, what: str, answer: Refused, remedy: str) -> Check:
    if answer.missing:
        return Check(name, False, f"{what} not found ({answer.code})", remedy)
    if "AccessDenied" in answer.code:
        return Check(name, False, f"{what}: AWS said {answer}", "grant the caller read access to it")
    return Check(name, False, f"{what}: AWS said {answer}", remedy)


# ---------------------------------------------------------------- tables


@dataclass(frozen=True)
class TableFacts:
    role: str  # keys, nonce, idempotency, usage
    name: str  # "" when no setting names it
    source: str  # where the name came from
    table: Mapping[str, Any] | Refused | None = None  # DescribeTable's Table


def check_table(facts: TableFacts, indexes: Sequence[str] = (), stream: str = "") -> Check:
    name = f"{facts.role} table"
    if not facts.name:
        return Check(name, False, "no setting names it", "pass --stack NAME, or set its variable")
    where = f" (from {facts.source})" if facts.source else ""
    if isinstance(facts.table, Refused) or facts.table is None:
        answer = facts.table or Refused("ResourceNotFoundException")
        return _failed(name, f"{facts.name}{where}", answer, REDEPLOY)
    table = facts.table
    problems = [] if table.get("TableStatus") == "ACTIVE" else [f"it is {table.get('TableStatus')}"]
    present = {i["IndexName"]: i.get("IndexStatus") for i in table.get("GlobalSecondaryIndexes", [])}
    problems += [f"no index {i}" for i in indexes if i not in present]
    problems += [f"index {i} is {present[i]}" for i in indexes if present.get(i, "ACTIVE") != "ACTIVE"]
    spec = table.get("StreamSpecification") or {}
    if stream and not (spec.get("StreamEnabled") and spec.get("StreamViewType") == stream):
        problems.append(f"its stream is not {stream} (alerts, plans and the audit read it)")
    if problems:
        return Check(name, False, f"{facts.name}: " + "; ".join(problems), REDEPLOY)
    seen = [f"indexes {', '.join(indexes)}"] if indexes else []
    seen += [f"stream {stream}"] if stream else []
    return Check(name, True, f"{facts.name} ACTIVE" + (f", {', '.join(seen)}" if seen else ""))


def check_tables(tables: Sequence[TableFacts]) -> list[Check]:
    return [check_table(t, KEYS_INDEXES, KEYS_STREAM) if t.role == "keys" else check_table(t) for t in tables]


# ---------------------------------------------------------------- pepper and KMS


def check_pepper(secret_id: str, secret: str | Refused | None) -> Check:
    """The pepper's shape: a current version, every version long enough. Its value is never shown."""
    name = "pepper"
    if not secret_id:
        return Check(name, False, f"{PEPPER_SECRET_ID.name} is not set", "pass --stack NAME")
    if isinstance(secret, Refused) or secret is None:
        answer = secret or Refused("ResourceNotFoundException")
        remedy = (
            f"restore it (aws secretsmanager restore-secret --secret-id {secret_id}) or its backup: every "
            "key's digest verifies only under it (a new pepper orphans every key)"
        )
        return _failed(name, f"secret {secret_id}", answer, remedy)
    try:
        peppers = Peppers.from_secret_string(secret)
    except ConfigurationError as error:  # its messages name versions, never a value
        return Check(
            name,
            False,
            f"secret {secret_id} is malformed: {error}",
            'it must be {"current": "<version>", "<version>": "<pepper>", ...}: put the versions back '
            "(docs/operations.md, pepper rotation)",
        )
    return Check(name, True, f"current version {peppers.current} of {len(peppers.versions)}, well formed")


def check_kms(key_id: str, metadata: Mapping[str, Any] | Refused | None, round_trip: bool | Refused) -> Check:
    name = "kms"
    if not key_id:
        return Check(name, False, "KMS_KEY_ID is not set", "pass --stack NAME")
    if isinstance(metadata, Refused) or metadata is None:
        return _failed(name, f"key {key_id}", metadata or Refused("NotFoundException"), REDEPLOY)
    state = str(metadata.get("KeyState", ""))
    if state == "PendingDeletion":
        return Check(
            name,
            False,
            f"key {key_id} is pending deletion: signing secrets and pickups will not open",
            f"aws kms cancel-key-deletion --key-id {key_id} && aws kms enable-key --key-id {key_id}",
        )
    if state != "Enabled":
        return Check(name, False, f"key {key_id} is {state}", f"aws kms enable-key --key-id {key_id}")
    if isinstance(round_trip, Refused):
        return Check(
            name,
            False,
            f"encrypt and decrypt with an encryption context failed: {round_trip}",
            "grant the caller kms:Encrypt and kms:Decrypt on the key (the functions have their own grants)",
        )
    if not round_trip:
        return Check(name, False, f"key {key_id} decrypted something else than it encrypted", REDEPLOY)
    return Check(name, True, f"key {key_id} enabled; encrypt/decrypt with an encryption context round trip")


# ---------------------------------------------------------------- rotation, alarms


@dataclass(frozen=True)
class RotationFacts:
    schedule: str  # its name ("" when the stack has none)
    state: str | Refused  # ENABLED, DISABLED
    last_run: float | None  # epoch seconds of the last RotationHeartbeat datapoint, within the look-back
    heartbeat_alarm: str  # its state value ("" when the stack has none)
    now: float
    stack: str = ""


def _ago(seconds: float) -> str:
    minutes = int(seconds // 60)
    return f"{minutes} min ago" if minutes < 120 else f"{minutes // 60} h ago"


def check_rotation(facts: RotationFacts) -> Check:
    name = "rotation schedule"
    run_now = f"meanwhile, keysentry --stack {facts.stack} rotation run does one run"
    if not facts.schedule:
        return Check(name, False, "the stack has no rotation schedule", REDEPLOY)
    if isinstance(facts.state, Refused):
        return _failed(name, f"schedule {facts.schedule}", facts.state, REDEPLOY)
    if facts.state != "ENABLED":
        return Check(
            name,
            False,
            f"schedule {facts.schedule} is {facts.state}: keys are not rotated, expired or reminded",
            f"enable it (EventBridge Scheduler console, or {REDEPLOY}); {run_now}",
        )
    last = (
        "no run recorded in the last day"
        if facts.last_run is None
        else f"last run {_ago(facts.now - facts.last_run)}"
    )
    if facts.heartbeat_alarm == "ALARM":
        return Check(
            name,
            False,
            f"schedule {facts.schedule} enabled, but RotationHeartbeatAlarm is in ALARM ({last})",
            "read the rotation function's logs (sam logs -n RotationFunction --stack-name "
            f"{facts.stack}) and the jobs' dead-letter queue; {run_now}",
        )
    alarm = f"heartbeat alarm {facts.heartbeat_alarm}" if facts.heartbeat_alarm else "no heartbeat alarm"
    return Check(name, True, f"schedule {facts.schedule} ENABLED; {last}; {alarm}")


def check_alarms(expected: Sequence[str], described: Mapping[str, Mapping[str, Any]], topic: str) -> Check:
    """Every alarm of the stack present, telling the alerts topic, and not in ALARM."""
    name = "alarms"
    if not expected:
        return Check(name, False, "the stack has no alarms", REDEPLOY)
    missing = [a for a in expected if a not in described]
    firing = [a for a in expected if described.get(a, {}).get("StateValue") == "ALARM"]
    silent = [
        a
        for a in expected
        if a in described
        and (
            topic not in described[a].get("AlarmActions", []) or not described[a].get("ActionsEnabled", True)
        )
    ]
    problems = [f"{a} is missing" for a in missing] + [f"{a} does not tell the alerts topic" for a in silent]
    problems += [
        f"{a} is in ALARM ({described[a].get('StateReason', '')})".replace(" ()", "") for a in firing
    ]
    if problems:
        remedy = (
            "for an alarm in ALARM, docs/operations.md (Alarms and signals) says what it means and what to do"
        )
        if missing or silent:
            remedy = REDEPLOY + ("; " + remedy if firing else "")
        return Check(name, False, "; ".join(problems), remedy)
    states: dict[str, int] = {}
    for a in expected:
        states[described[a].get("StateValue", "")] = states.get(described[a].get("StateValue", ""), 0) + 1
    counts = ", ".join(f"{n} {s}" for s, n in sorted(states.items()))
    return Check(name, True, f"{len(expected)} alarms tell the alerts topic, none in ALARM ({counts})")


# ---------------------------------------------------------------- usage subscriptions


@dataclass(frozen=True)
class SubscriptionFacts:
    usage_function: str  # its name
    usage_function_arn: str
    groups: Mapping[str, Sequence[Mapping[str, Any]] | Refused] = field(default_factory=dict)


def _to_function(destination: str, function: str) -> bool:
    """Whether a destination ARN is the function (any qualifier)."""
    parts = destination.split(":")
    return len(parts) >= 7 and parts[2] == "lambda" and parts[6] == function


def check_subscriptions(facts: SubscriptionFacts) -> Check:
    name = "usage subscriptions"
    if not facts.usage_function:
        return Check(name, False, "the stack has no usage function", REDEPLOY)
    if not facts.groups:
        return Check(name, False, "the stack has no log group the usage function reads", REDEPLOY)
    problems = []
    for group, filters in facts.groups.items():
        if isinstance(filters, Refused):
            problems.append(f"log group {group}: {filters}")
        elif not any(_to_function(f.get("destinationArn", ""), facts.usage_function) for f in filters):
            problems.append(f"log group {group} has no subscription to {facts.usage_function}")
    if problems:
        group = next(iter(facts.groups))
        return Check(
            name,
            False,
            "; ".join(problems) + ": its requests are not counted (usage, quotas, anomalies)",
            f"{REDEPLOY}, or aws logs put-subscription-filter --log-group-name <group> --filter-name "
            f"keysentry-usage --filter-pattern '' --destination-arn {facts.usage_function_arn or facts.usage_function}"
            f" (e.g. for {group})",
        )
    return Check(name, True, f"{len(facts.groups)} log groups subscribed to {facts.usage_function}")


# ---------------------------------------------------------------- the authorizer's settings


def check_authorizer(
    function: str, env: Mapping[str, str] | Refused | None, cli_env: Mapping[str, str]
) -> Check:
    """The authorizer's own environment read with its own settings class, the route table against
    the self-service routes, and the tables and pepper it reads against those the CLI writes."""
    name = "authorizer settings"
    if not function:
        return Check(name, False, "the stack has no authorizer function", REDEPLOY)
    if isinstance(env, Refused) or env is None:
        return _failed(name, f"function {function}", env or Refused("ResourceNotFoundException"), REDEPLOY)
    fix = "correct the stack's parameter (RouteScopes, TestStages, ...) and redeploy"
    try:
        settings = AuthorizerSettings.from_env(env)
        table = RouteTable.from_json(settings.route_scopes)
    except ConfigurationError as error:
        return Check(name, False, f"{function}: {error}", fix)
    problems = [
        f"{m} {p} is not in RouteScopes" for m, p in SELF_ROUTES if table.required_scope(m, p) is None
    ]
    rotate = table.required_scope("POST", "/self/rotate")
    if rotate == "":
        problems.append(
            f"any key may call POST /self/rotate (it needs {ROTATE_SELF_SCOPE}; keep it out of wildcards)"
        )
    elif rotate is not None and rotate != ROTATE_SELF_SCOPE:
        problems.append(f"POST /self/rotate requires {rotate!r}, the API {ROTATE_SELF_SCOPE!r}")
    if not settings.management_api_parameter:
        problems.append("MANAGEMENT_API_PARAMETER is not set")
    for var in (KEYS_TABLE.name, PEPPER_SECRET_ID.name):
        if cli_env.get(var) and env.get(var) != cli_env[var]:
            problems.append(f"it reads {var}={env.get(var)}, the command line {cli_env[var]}")
    if problems:
        return Check(name, False, f"{function}: " + "; ".join(problems), fix)
    stages = ",".join(sorted(settings.test_stages)) or "none"
    return Check(
        name, True, f"{function}: {len(table.rules)} routes, /self routes mapped, test stages {stages}"
    )


# ---------------------------------------------------------------- GitHub's scanning keys


def check_scanning_keys(parameter: str, value: str | Refused | None, function: str = "") -> Check:
    name = "github scanning keys"
    refresh = (
        f"aws lambda invoke --function-name {function or '<ScanningKeysFunction>'} out.json (it fetches "
        "GitHub's keys; it also runs on ScanningKeysSchedule)"
    )
    if not parameter:
        return Check(name, False, "the stack has no GitHub scanning keys parameter", REDEPLOY)
    if isinstance(value, Refused) or value is None:
        return _failed(name, f"parameter {parameter}", value or Refused("ParameterNotFound"), REDEPLOY)
    try:
        doc = json.loads(value)
        keys = doc.get("public_keys") if isinstance(doc, dict) else None
    except ValueError:
        keys = None
    if not isinstance(keys, list):
        return Check(name, False, f"parameter {parameter} is not GitHub's keys document", refresh)
    if not keys:
        return Check(
            name, False, f"parameter {parameter} holds no key: leak reports from GitHub are refused", refresh
        )
    return Check(name, True, f"parameter {parameter} holds {len(keys)} key{'s' * (len(keys) != 1)}")


# ---------------------------------------------------------------- all of them


@dataclass(frozen=True)
class Facts:
    """What the adapter read of one deployment, for :func:`evaluate`."""

    tables: Sequence[TableFacts]
    pepper_secret_id: str
    pepper: str | Refused | None
    kms_key_id: str
    kms_key: Mapping[str, Any] | Refused | None
    kms_round_trip: bool | Refused
    rotation: RotationFacts
    alarms: Sequence[str]
    described_alarms: Mapping[str, Mapping[str, Any]]
    alerts_topic: str
    subscriptions: SubscriptionFacts
    authorizer: str
    authorizer_env: Mapping[str, str] | Refused | None
    cli_env: Mapping[str, str]
    scanning_parameter: str
    scanning_keys: str | Refused | None
    scanning_function: str = ""


def evaluate(facts: Facts) -> list[Check]:
    return [
        *check_tables(facts.tables),
        check_pepper(facts.pepper_secret_id, facts.pepper),
        check_kms(facts.kms_key_id, facts.kms_key, facts.kms_round_trip),
        check_rotation(facts.rotation),
        check_alarms(facts.alarms, facts.described_alarms, facts.alerts_topic),
        check_subscriptions(facts.subscriptions),
        check_authorizer(facts.authorizer, facts.authorizer_env, facts.cli_env),
        check_scanning_keys(facts.scanning_parameter, facts.scanning_keys, facts.scanning_function),
    ]
