"""The command line's grammar: one small builder per command group."""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections.abc import Iterator, Sequence
from typing import Any, NoReturn

from keysentry import keyformat
from keysentry.cli import commands, doctor, plans, usage
from keysentry.cli.failures import EXIT_CODES, EXIT_USAGE
from keysentry.cli.stack import CACHE_TTL_S, CONFIG_ENV_VAR, STACK_VAR
from keysentry.errors import MalformedKeyError
from keysentry.keyformat import ENVS
from keysentry.model import DEFAULT_ROTATION_DAYS, MAX_ROTATION_DAYS, MIN_ROTATION_DAYS, SIGNING_MODES

ROTATION_DAYS = f"{MIN_ROTATION_DAYS}..{MAX_ROTATION_DAYS}"
SUCCESSOR_DELIVERY = "PEM file of an X25519 key scheduled successors are sealed to"
PLAN = "one of the deployment's plans (its Plans parameter; docs/plans.md)"
SUSPEND_ON_ANOMALY = "suspend the key when its usage spikes, or comes from a new network, or is refused a lot"

KID = "the key's id (12 letters and digits), or the whole key pasted: only its id is read"
LIMIT = "at most this many rows (a cursor follows when there are more)"
CURSOR = "the cursor a previous page printed: the page after it"
OUTPUTS = ("table", "json")
DESCRIPTION = (
    "The operator's command line of keysentry: issue, change, rotate and revoke API keys, read their "
    "audit trail and usage. It finds a deployed stack by name (--stack NAME, or KEYSENTRY_STACK) and "
    "reads its tables, pepper secret and KMS key from the stack's outputs; a variable that is set "
    "(KEYS_TABLE, USAGE_TABLE, PEPPER_SECRET_ID, KMS_KEY_ID, PLANS, ...) wins. For the local stack, "
    "keysentry local up prints them."
)
EPILOG = "exit codes: " + "; ".join(f"{code} {meaning}" for code, meaning in EXIT_CODES.items())

Group = Any  # argparse's _SubParsersAction, which it does not export
# anything shaped like a key, well formed or not, in what argparse would quote back
_KEYLIKE = re.compile(rf"{keyformat.PREFIX}_[A-Za-z]+_[0-9A-Za-z]{{{keyformat.KID_LEN + 1},}}")


class Parser(argparse.ArgumentParser):
    """argparse's parser, whose mistakes are ``{"error": ..., "code": 2}`` on stderr when the line
    asks for JSON (``json_errors``, set on every parser of the tree by :func:`parsers`)."""

    json_errors = False

    def error(self, message: str) -> NoReturn:
        message = _KEYLIKE.sub("<a key, not shown>", message)  # a key pasted where none belongs
        if self.json_errors:
            print(json.dumps({"error": f"{self.prog}: {message}", "code": EXIT_USAGE}), file=sys.stderr)
            sys.exit(EXIT_USAGE)
        super().error(message)


def parsers(parser: argparse.ArgumentParser) -> Iterator[argparse.ArgumentParser]:
    """The parser and every subcommand's, depth first."""
    yield parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub in dict.fromkeys(action.choices.values()):
                yield from parsers(sub)


def json_requested(argv: Sequence[str]) -> bool:
    """Whether the line asks for JSON (``--json``, ``-o json``, ``--output=json``), read before it is
    parsed: so that a mistake in it is reported as JSON too."""
    for i, arg in enumerate(argv):
        if arg in ("--json", "-ojson", "--output=json") or (
            arg in ("-o", "--output") and argv[i + 1 : i + 2] == ["json"]
        ):
            return True
    return False


def _positive_int(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None


def _kid(text: str) -> str:
    """A key id as given, or the id of a whole key pasted in its place: never echoed back, even when
    it is malformed."""
    text = text.strip()
    if not text.startswith(keyformat.PREFIX + "_"):
        return text  # the service says what is wrong with a key id
    try:
        return keyformat.parse(text).kid
    except MalformedKeyError as error:
        raise argparse.ArgumentTypeError(f"neither a key id nor a whole key ({error})") from None


def _help(parser: argparse.ArgumentParser, code: int) -> commands.Command:
    """A group named without its command: its help (on stderr when that is a mistake)."""

    def run(args: argparse.Namespace, out: Any, service: Any) -> int:
        parser.print_help(sys.stdout if code == 0 else sys.stderr)
        return code

    return run


def _stack_options(common: argparse.ArgumentParser) -> None:
    common.add_argument(
        "--stack",
        default=argparse.SUPPRESS,
        metavar="NAME",
        help=f"the deployed stack whose outputs name the tables, pepper secret and KMS key (or {STACK_VAR})",
    )
    common.add_argument(
        "--config-env",
        default=argparse.SUPPRESS,
        metavar="ENV",
        help=f"the stack_name of samconfig.toml's [ENV.deploy.parameters], its region and profile too "
        f"(or {CONFIG_ENV_VAR})",
    )
    common.add_argument(
        "--refresh",
        action="store_true",
        default=argparse.SUPPRESS,
        help=f"read the stack's outputs again (they are cached for {CACHE_TTL_S // 60} minutes)",
    )


def build_parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    # SUPPRESS: a subcommand's default must not undo an option given before it (keysentry --json keys list)
    common.add_argument(
        "--output",
        "-o",
        choices=OUTPUTS,
        default=argparse.SUPPRESS,
        help="table (default: aligned columns, for a person) or json (for a script)",
    )
    common.add_argument(
        "--json",
        dest="output",
        action="store_const",
        const="json",
        default=argparse.SUPPRESS,
        help="--output json",
    )
    common.add_argument(
        "--actor", default=argparse.SUPPRESS, help="who is acting, for the audit trail (default: cli:$USER)"
    )
    _stack_options(common)
    parser = Parser(prog="keysentry", description=DESCRIPTION, epilog=EPILOG, parents=[common])
    parser.set_defaults(func=_help(parser, 0))
    top: Group = parser.add_subparsers(dest="group", metavar="COMMAND")
    _keys(_group(top, "keys", "issue and manage keys", common), common)
    _owner_audit(top, common)
    _owner_usage(top, common)
    _peppers(top, common)
    _rotation(top, common)
    _plans(top, common)
    _local(top, common)
    doctor.add_parser(top, common)
    demo = top.add_parser("demo", help="a key's life on the embedded moto cloud, narrated", parents=[common])
    demo.set_defaults(func=commands.cmd_demo)
    return parser


def _keys(keys: Group, common: argparse.ArgumentParser) -> None:
    _create(keys.add_parser("create", help="issue a key (shown once)", parents=[common]))
    _update(
        keys.add_parser(
            "update",
            help="change a key's name, scopes, IP rules, metadata, rotation days, keys, suspension on "
            "anomaly (all or nothing)",
            parents=[common],
        )
    )
    setpk = keys.add_parser(
        "set-public-key", help="register a consumer's signing public key", parents=[common]
    )
    setpk.add_argument("kid", type=_kid, help=KID)
    setpk.add_argument("file", help="PEM file (Ed25519, or RSA >= 2048 bits with e = 65537)")
    setpk.set_defaults(func=commands.cmd_set_public_key)
    lister = keys.add_parser("list", help="list keys", parents=[common])
    lister.add_argument("--owner", help="only this consumer's keys")
    lister.add_argument("--status", help="only keys in this status (active, suspended, rotating, ...)")
    lister.add_argument("--limit", type=_positive_int, default=100, help=LIMIT + " (default 100)")
    lister.add_argument("--cursor", help=CURSOR)
    lister.set_defaults(func=commands.cmd_list)
    _one_key(keys, common)
    rotate = keys.add_parser(
        "rotate",
        help="rotate a key now, or replace a suspended one (it stays suspended); successor shown once",
        parents=[common],
    )
    rotate.add_argument("kid", type=_kid, help=KID)
    rotate.add_argument("--reason", default="", help="why, for the audit trail")
    rotate.add_argument(
        "--grace-days",
        type=_positive_int,
        default=None,
        help="days the old key keeps working (default: the deployment's GraceDays)",
    )
    rotate.set_defaults(func=commands.cmd_rotate)
    _key_usage(keys, common)


def _create(create: argparse.ArgumentParser) -> None:
    create.add_argument("--owner", required=True, help="the consumer the key belongs to")
    create.add_argument("--name", default="", help="a label for people (not secret, not unique)")
    scopes = create.add_mutually_exclusive_group()
    scopes.add_argument(
        "--scope", action="append", default=[], help="a permission (RouteScopes); repeat for several"
    )
    scopes.add_argument(
        "--no-scopes",
        action="store_true",
        help="a key with no scope: it opens only the routes any key may call (/self by default)",
    )
    create.add_argument(
        "--allow-cidr", action="append", default=[], help="IPv4/IPv6 CIDR allowed; repeatable"
    )
    create.add_argument("--deny-cidr", action="append", default=[], help="IPv4/IPv6 CIDR denied; repeatable")
    create.add_argument(
        "--rotation-days",
        type=_positive_int,
        default=None,
        help=f"{ROTATION_DAYS} (default {DEFAULT_ROTATION_DAYS})",
    )
    create.add_argument(
        "--expires-in-days", type=_positive_int, default=None, help="lifetime in days (or --expires-in)"
    )
    create.add_argument(
        "--expires-in",
        default=None,
        metavar="DURATION",
        help="lifetime: 30m, 2h, 7d (or ISO 8601: PT2H); at least a minute, at most MaxLifetimeDays",
    )
    create.add_argument(
        "--env",
        choices=ENVS,
        default="live",
        help="ks_live_ keys work on every stage; ks_test_ keys only on TestStages (default live)",
    )
    create.add_argument(
        "--metadata",
        action="append",
        help='name=value (repeat), or a JSON object {"name": "value"}; ctx_ names reach the backend',
    )
    create.add_argument("--signing", choices=SIGNING_MODES, default="bearer", help="require signed requests")
    create.add_argument("--public-key", help="PEM file of the consumer's Ed25519 or RSA public key")
    create.add_argument("--delivery-key", help=SUCCESSOR_DELIVERY)
    create.add_argument("--suspend-on-anomaly", action="store_true", help=SUSPEND_ON_ANOMALY)
    create.add_argument("--plan", help=PLAN + " (default: the deployment's default plan)")
    create.set_defaults(func=commands.cmd_create)


def _update(update: argparse.ArgumentParser) -> None:
    update.add_argument("kid", type=_kid, help=KID)
    update.add_argument("--name", help="a label for people")
    update.add_argument("--scope", action="append", help="replaces the scopes; repeat; --scope '' for none")
    update.add_argument(
        "--allow-cidr", action="append", help="replaces the allow list; --allow-cidr '' for none"
    )
    update.add_argument(
        "--deny-cidr", action="append", help="replaces the deny list; --deny-cidr '' for none"
    )
    update.add_argument("--rotation-days", type=_positive_int, help=ROTATION_DAYS)
    update.add_argument(
        "--metadata", action="append", help="name=value; replaces the metadata; --metadata '' for none"
    )
    update.add_argument(
        "--public-key", help="PEM file of the consumer's Ed25519 or RSA key: requires signed requests"
    )
    update.add_argument("--delivery-key", help=SUCCESSOR_DELIVERY)
    update.add_argument(
        "--suspend-on-anomaly",
        action=argparse.BooleanOptionalAction,
        default=None,
        help=SUSPEND_ON_ANOMALY + " (--no-suspend-on-anomaly: only alert)",
    )
    update.add_argument("--plan", help=PLAN)
    update.set_defaults(func=commands.cmd_update)


def _one_key(keys: Group, common: argparse.ArgumentParser) -> None:
    """The commands that name one key and take at most a reason."""
    for name, helptext, needs_reason, func in (
        ("show", "show one key", None, commands.cmd_show),
        ("suspend", "suspend a key (reversible)", False, None),
        ("resume", "resume a suspended key", False, None),
        ("revoke", "revoke a key for good", True, None),
        ("audit", "a key's audit trail", None, commands.cmd_audit),
    ):
        sub = keys.add_parser(name, help=helptext, parents=[common])
        sub.add_argument("kid", type=_kid, help=KID)
        if needs_reason is not None:
            sub.add_argument("--reason", required=needs_reason, default="", help="why, for the audit trail")
        sub.set_defaults(func=func or commands.lifecycle(name))


def _owner_audit(top: Group, common: argparse.ArgumentParser) -> None:
    audit = top.add_parser("audit", help="an owner's audit trail across their keys", parents=[common])
    audit.add_argument("--owner", required=True, help="the consumer whose keys' trail to read")
    audit.add_argument("--limit", type=_positive_int, default=50, help=LIMIT + " (default 50)")
    audit.add_argument("--cursor", help=CURSOR)
    audit.set_defaults(func=commands.cmd_owner_audit)


def _usage_window(parser: argparse.ArgumentParser) -> None:
    window = parser.add_mutually_exclusive_group()
    window.add_argument(
        "--hours", type=_positive_int, help="the last N hours, by hour (default 24; at most 840)"
    )
    window.add_argument("--days", type=_positive_int, help="the last N days, by day (at most 400)")


def _key_usage(keys: Group, common: argparse.ArgumentParser) -> None:
    sub = keys.add_parser(
        "usage",
        help="a key's requests, statuses, routes, networks and refusals, with a chart",
        parents=[common],
    )
    sub.add_argument("kid", type=_kid, help=KID)
    _usage_window(sub)
    sub.set_defaults(func=usage.cmd_key_usage)


def _owner_usage(top: Group, common: argparse.ArgumentParser) -> None:
    sub = top.add_parser("usage", help="an owner's keys by use, busiest first", parents=[common])
    sub.add_argument("--owner", required=True, help="the consumer whose keys to rank")
    _usage_window(sub)
    sub.set_defaults(func=usage.cmd_owner_usage)


def _group(top: Group, name: str, helptext: str, common: argparse.ArgumentParser) -> Group:
    """A group of commands: named alone, it prints its help and exits as a mistake."""
    group = top.add_parser(name, help=helptext, parents=[common])
    group.set_defaults(func=_help(group, EXIT_USAGE))
    return group.add_subparsers(dest="command", metavar="COMMAND")


def _peppers(top: Group, common: argparse.ArgumentParser) -> None:
    peppers = _group(top, "peppers", "the pepper secret", common)
    status = peppers.add_parser(
        "status", help="live keys per pepper version (when an old one can go)", parents=[common]
    )
    status.add_argument("--kids", action="store_true", help="list the live keys still under an old version")
    status.set_defaults(func=commands.cmd_peppers_status)


def _rotation(top: Group, common: argparse.ArgumentParser) -> None:
    rotation = _group(top, "rotation", "the scheduled rotation job", common)
    run = rotation.add_parser(
        "run", help="run the job once (what the schedule does hourly)", parents=[common]
    )
    run.add_argument(
        "--now",
        help="pretend it is this ISO-8601 time (for a local stack: against a real table, a time in the "
        "future really rotates, expires and ends grace windows early)",
    )
    run.set_defaults(func=commands.cmd_rotation_run)


def _plans(top: Group, common: argparse.ArgumentParser) -> None:
    sync = _group(top, "plans", "REST usage plans and keys' API keys", common).add_parser(
        "sync",
        help="bring every key's API Gateway API key in step with its record, delete orphans (docs/plans.md)",
        parents=[common],
    )
    sync.add_argument("--dry-run", action="store_true", help="print what would change; change nothing")
    sync.set_defaults(func=plans.cmd_plans_sync)


def _local(top: Group, common: argparse.ArgumentParser) -> None:
    local = _group(top, "local", "the local stack on moto", common)
    up = local.add_parser("up", help="run a moto server with template.yaml's resources", parents=[common])
    up.add_argument("--host", default="127.0.0.1", help="address to listen on (0.0.0.0 for sam local)")
    up.add_argument("--port", type=_positive_int, default=4566, help="port to listen on (default 4566)")
    up.add_argument("--env-file", default=".keysentry-local.json", help="SAM --env-vars file to write")
    up.add_argument(
        "--container-host",
        default="172.17.0.1",
        help="the address containers of sam local reach this host at",
    )
    up.add_argument("--template", help="template.yaml to read (default: the project's)")
    up.add_argument(
        "--gateway",
        nargs="?",
        const="rest",
        choices=("rest", "http"),
        help="also serve the sample API (REST, or the HTTP API's events) and /self through the real "
        "authorizer, backend and usage function, in this process: no Docker needed",
    )
    up.add_argument(
        "--gateway-port", type=_positive_int, default=3000, help="the local gateway's port (default 3000)"
    )
    up.set_defaults(func=commands.cmd_local_up)
