"""The command line's grammar: one small builder per command group."""

from __future__ import annotations

import argparse
from typing import Any

from keysentry.cli import commands, plans, usage
from keysentry.keyformat import ENVS
from keysentry.model import DEFAULT_ROTATION_DAYS, MAX_ROTATION_DAYS, MIN_ROTATION_DAYS, SIGNING_MODES

ROTATION_DAYS = f"{MIN_ROTATION_DAYS}..{MAX_ROTATION_DAYS}"
SUCCESSOR_DELIVERY = "PEM file of an X25519 key scheduled successors are sealed to"
PLAN = "one of the deployment's plans (its Plans parameter; docs/plans.md)"
SUSPEND_ON_ANOMALY = "suspend the key when its usage spikes, or comes from a new network, or is refused a lot"

OUTPUTS = ("table", "json")

Group = Any  # argparse's _SubParsersAction, which it does not export


def _positive_int(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None


def build_parser(description: str | None = None) -> argparse.ArgumentParser:
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
    common.add_argument("--actor", help="who is acting, for the audit trail (default: cli:$USER)")
    parser = argparse.ArgumentParser(prog="keysentry", description=description, parents=[common])
    top = parser.add_subparsers(dest="group", required=True)
    keys = top.add_parser("keys", help="issue and manage keys", parents=[common])
    _keys(keys.add_subparsers(dest="command", required=True), common)
    _owner_audit(top, common)
    _owner_usage(top, common)
    _peppers(top, common)
    _rotation(top, common)
    _plans(top, common)
    _local(top, common)
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
    setpk.add_argument("kid")
    setpk.add_argument("file", help="PEM file (Ed25519, or RSA >= 2048 bits with e = 65537)")
    setpk.set_defaults(func=commands.cmd_set_public_key)
    lister = keys.add_parser("list", help="list keys", parents=[common])
    lister.add_argument("--owner")
    lister.add_argument("--status")
    lister.add_argument("--limit", type=_positive_int, default=100)
    lister.add_argument("--cursor")
    lister.set_defaults(func=commands.cmd_list)
    _one_key(keys, common)
    rotate = keys.add_parser(
        "rotate",
        help="rotate a key now, or replace a suspended one (it stays suspended); successor shown once",
        parents=[common],
    )
    rotate.add_argument("kid")
    rotate.add_argument("--reason", default="")
    rotate.add_argument("--grace-days", type=_positive_int, default=None)
    rotate.set_defaults(func=commands.cmd_rotate)
    _key_usage(keys, common)


def _create(create: argparse.ArgumentParser) -> None:
    create.add_argument("--owner", required=True, help="the consumer the key belongs to")
    create.add_argument("--name", default="")
    create.add_argument("--scope", action="append", default=[], help="a permission; repeat for several")
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
    create.add_argument("--expires-in-days", type=_positive_int, default=None)
    create.add_argument(
        "--expires-in",
        default=None,
        metavar="DURATION",
        help="lifetime: 30m, 2h, 7d (or ISO 8601: PT2H); at least a minute, at most MaxLifetimeDays",
    )
    create.add_argument("--env", choices=ENVS, default="live")
    create.add_argument("--signing", choices=SIGNING_MODES, default="bearer", help="require signed requests")
    create.add_argument("--public-key", help="PEM file of the consumer's Ed25519 or RSA public key")
    create.add_argument("--delivery-key", help=SUCCESSOR_DELIVERY)
    create.add_argument("--suspend-on-anomaly", action="store_true", help=SUSPEND_ON_ANOMALY)
    create.add_argument("--plan", help=PLAN + " (default: the deployment's default plan)")
    create.set_defaults(func=commands.cmd_create)


def _update(update: argparse.ArgumentParser) -> None:
    update.add_argument("kid")
    update.add_argument("--name")
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
        sub.add_argument("kid")
        if needs_reason is not None:
            sub.add_argument("--reason", required=needs_reason, default="")
        sub.set_defaults(func=func or commands.lifecycle(name))


def _owner_audit(top: Group, common: argparse.ArgumentParser) -> None:
    audit = top.add_parser("audit", help="an owner's audit trail across their keys", parents=[common])
    audit.add_argument("--owner", required=True)
    audit.add_argument("--limit", type=_positive_int, default=50)
    audit.add_argument("--cursor")
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
    sub.add_argument("kid")
    _usage_window(sub)
    sub.set_defaults(func=usage.cmd_key_usage)


def _owner_usage(top: Group, common: argparse.ArgumentParser) -> None:
    sub = top.add_parser("usage", help="an owner's keys by use, busiest first", parents=[common])
    sub.add_argument("--owner", required=True)
    _usage_window(sub)
    sub.set_defaults(func=usage.cmd_owner_usage)


def _peppers(top: Group, common: argparse.ArgumentParser) -> None:
    peppers = top.add_parser("peppers", help="the pepper secret", parents=[common]).add_subparsers(
        dest="command", required=True
    )
    status = peppers.add_parser(
        "status", help="live keys per pepper version (when an old one can go)", parents=[common]
    )
    status.add_argument("--kids", action="store_true", help="list the live keys still under an old version")
    status.set_defaults(func=commands.cmd_peppers_status)


def _rotation(top: Group, common: argparse.ArgumentParser) -> None:
    rotation = top.add_parser("rotation", help="the scheduled rotation job", parents=[common]).add_subparsers(
        dest="command", required=True
    )
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
    group = top.add_parser("plans", help="REST usage plans and keys' API keys", parents=[common])
    sync = group.add_subparsers(dest="command", required=True).add_parser(
        "sync",
        help="bring every key's API Gateway API key in step with its record, delete orphans (docs/plans.md)",
        parents=[common],
    )
    sync.add_argument("--dry-run", action="store_true", help="print what would change; change nothing")
    sync.set_defaults(func=plans.cmd_plans_sync)


def _local(top: Group, common: argparse.ArgumentParser) -> None:
    local = top.add_parser("local", help="the local stack on moto", parents=[common]).add_subparsers(
        dest="command", required=True
    )
    up = local.add_parser("up", help="run a moto server with template.yaml's resources", parents=[common])
    up.add_argument("--host", default="127.0.0.1", help="address to listen on (0.0.0.0 for sam local)")
    up.add_argument("--port", type=_positive_int, default=4566)
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
