"""``keysentry``: the operator's command line, against any AWS endpoint (``AWS_ENDPOINT_URL`` too).

User mistakes end with a one-line error and a non-zero exit code, never a traceback.
"""

from __future__ import annotations

import argparse
import datetime as dt
import getpass
import json
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from keysentry.errors import ConflictError, KeyNotFoundError, KeysentryError, TransitionError, ValidationError
from keysentry.model import KeyRecord

EXIT_USAGE = 2
EXIT_NOT_FOUND = 3
EXIT_CONFLICT = 4
EXIT_AWS = 5


def _iso(ts: int | None) -> str:
    if ts is None:
        return "-"
    return dt.datetime.fromtimestamp(ts, dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _actor(args: argparse.Namespace) -> str:
    return str(args.actor or os.environ.get("KEYSENTRY_ACTOR") or f"cli:{getpass.getuser()}")


class Output:
    def __init__(self, as_json: bool) -> None:
        self.as_json = as_json

    def emit(self, doc: Any, text: str) -> None:
        print(json.dumps(doc, indent=2, sort_keys=True) if self.as_json else text)


def _record_text(r: KeyRecord) -> str:
    lines = [
        f"kid:           {r.kid}",
        f"owner:         {r.owner_id}",
        f"name:          {r.name or '-'}",
        f"status:        {r.status}",
        f"env:           {r.env}",
        f"scopes:        {', '.join(r.scopes) or '-'}",
        f"allow cidrs:   {', '.join(r.allow_cidrs) or '-'}",
        f"deny cidrs:    {', '.join(r.deny_cidrs) or '-'}",
        f"created:       {_iso(r.created_at)}",
        f"rotate after:  {_iso(r.rotate_after)} (every {r.rotation_days} days)",
        f"expires:       {_iso(r.expires_at)}",
        f"last used:     {_iso(r.last_used_at)}",
        f"signing:       {r.signing.mode}",
    ]
    if r.grace_until:
        lines.append(f"grace until:   {_iso(r.grace_until)}")
    if r.successor:
        lines.append(f"successor:     {r.successor}")
    if r.predecessor:
        lines.append(f"predecessor:   {r.predecessor}")
    return "\n".join(lines)


# ---------------------------------------------------------------- commands


def _service(args: argparse.Namespace) -> Any:
    from keysentry.service import KeyService

    return KeyService.from_settings()


def _read_file(path: str | None, what: str) -> str | None:
    if path is None:
        return None
    try:
        return Path(path).read_text()
    except OSError as error:
        raise ValidationError(f"cannot read the {what} file {path}: {error.strerror}") from None


def cmd_create(args: argparse.Namespace, out: Output) -> int:
    issued = _service(args).create(
        args.owner,
        actor=_actor(args),
        name=args.name,
        scopes=args.scope,
        allow_cidrs=args.allow_cidr,
        deny_cidrs=args.deny_cidr,
        rotation_days=args.rotation_days,
        expires_in_days=args.expires_in_days,
        expires_in=args.expires_in,
        env=args.env,
        signing=args.signing,
        public_key=_read_file(args.public_key, "public key"),
        delivery_key=_read_file(args.delivery_key, "delivery key"),
    )
    emit_issued(out, issued, f"created key {issued.record.kid} for {issued.record.owner_id}")
    return 0


def emit_issued(out: Output, issued: Any, headline: str) -> None:
    """The one printer for a key as issued (create, rotate, pickup): its document, every secret in it."""
    doc = issued.document()
    lines = [headline, f"kid: {doc['kid']}"]
    lines += [f"{name.replace('_', ' ')}: {doc[name]}" for name in issued.SECRET_FIELDS if doc.get(name)]
    out.emit(doc, "\n".join([*lines, doc["notice"]]))


def cmd_update(args: argparse.Namespace, out: Output) -> int:
    """Change a key's policy: only what is given changes (lists replace the key's lists)."""
    changes: dict[str, Any] = {}
    for field in ("name", "rotation_days"):
        if getattr(args, field) is not None:
            changes[field] = getattr(args, field)
    for field, given in (
        ("scopes", args.scope),
        ("allow_cidrs", args.allow_cidr),
        ("deny_cidrs", args.deny_cidr),
    ):
        if given is not None:
            changes[field] = [] if given == [""] else given
    if args.metadata is not None:
        changes["metadata"] = _metadata(args.metadata)
    for field, what in (("public_key", "public key"), ("delivery_key", "delivery key")):
        if getattr(args, field) is not None:
            changes[field] = _read_file(getattr(args, field), what) or ""
    record = _service(args).update(args.kid, actor=_actor(args), **changes)  # all or nothing
    out.emit(record.public_view(), _record_text(record))
    return 0


def _metadata(pairs: list[str]) -> dict[str, str]:
    """``--metadata k=v`` (repeated) as a dict; ``--metadata ''`` for none."""
    if pairs == [""]:
        return {}
    metadata: dict[str, str] = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep:
            raise ValidationError(f"metadata {pair!r} is not name=value")
        metadata[name] = value
    return metadata


def cmd_set_public_key(args: argparse.Namespace, out: Output) -> int:
    pem = _read_file(args.file, "public key") or ""
    record = _service(args).set_public_key(args.kid, pem, actor=_actor(args))
    out.emit(record.public_view(), f"key {record.kid} now requires {record.signing.mode}-signed requests")
    return 0


def cmd_list(args: argparse.Namespace, out: Output) -> int:
    records, cursor = _service(args).list_keys(
        args.owner, status=args.status, limit=args.limit, cursor=args.cursor
    )
    doc = {"keys": [r.public_view() for r in records], "next_cursor": cursor}
    rows = [f"{'KID':<12}  {'OWNER':<20}  {'STATUS':<9}  {'SCOPES':<30}  ROTATE AFTER"]
    rows += [
        f"{r.kid:<12}  {r.owner_id:<20}  {r.status!s:<9}  {','.join(r.scopes)[:30]:<30}  {_iso(r.rotate_after)}"
        for r in records
    ]
    if cursor:
        rows.append(f"more: --cursor {cursor}")
    out.emit(doc, "\n".join(rows))
    return 0


def cmd_show(args: argparse.Namespace, out: Output) -> int:
    record = _service(args).get(args.kid)
    out.emit(record.public_view(), _record_text(record))
    return 0


def _lifecycle(action: str) -> Any:
    def run(args: argparse.Namespace, out: Output) -> int:
        service = _service(args)
        method = getattr(service, action)
        record = method(args.kid, actor=_actor(args), reason=getattr(args, "reason", "") or "")
        out.emit(record.public_view(), f"{action}: key {record.kid} is now {record.status}")
        return 0

    return run


def cmd_rotate(args: argparse.Namespace, out: Output) -> int:
    issued = _service(args).rotate(
        args.kid, actor=_actor(args), reason=args.reason, grace_days=args.grace_days
    )
    headline = f"rotated {args.kid}: successor {issued.record.kid}"
    if issued.record.predecessor != args.kid:  # a suspended key whose holder had rotated it already
        headline = (
            f"replaced {args.kid} (after its successor {issued.record.predecessor}): {issued.record.kid}"
        )
    emit_issued(out, issued, headline)
    return 0


def cmd_audit(args: argparse.Namespace, out: Output) -> int:
    entries = _service(args).audit(args.kid)
    rows = [f"{'WHEN':<20}  {'ACTION':<8}  {'FROM':<9}  {'TO':<9}  {'ACTOR':<24}  REASON"]
    rows += [
        f"{_iso(e.at):<20}  {e.action:<8}  {e.from_status or '-':<9}  {e.to_status:<9}  {e.actor:<24}  {e.reason}"
        for e in entries
    ]
    out.emit({"kid": args.kid, "entries": [e.as_dict() for e in entries]}, "\n".join(rows))
    return 0


def _changes_text(changes: dict[str, dict[str, Any]]) -> str:
    def show(value: Any) -> str:
        if isinstance(value, list):
            return ",".join(map(str, value)) or "[]"
        if isinstance(value, dict):
            return ",".join(f"{k}={v}" for k, v in value.items()) or "{}"
        return "-" if value is None else str(value)

    return "; ".join(f"{name} {show(c['from'])} -> {show(c['to'])}" for name, c in changes.items())


def cmd_owner_audit(args: argparse.Namespace, out: Output) -> int:
    """An owner's trail across their keys, newest first, a page at a time."""
    entries, cursor = _service(args).owner_audit(args.owner, limit=args.limit, cursor=args.cursor)
    rows = [
        f"{'WHEN':<20}  {'KID':<12}  {'ACTION':<8}  {'FROM':<9}  {'TO':<9}  {'ACTOR':<24}  CHANGES / REASON"
    ]
    rows += [
        f"{_iso(e.at):<20}  {e.kid:<12}  {e.action:<8}  {e.from_status or '-':<9}  {e.to_status:<9}  "
        f"{e.actor:<24}  {_changes_text(e.changes) or e.reason}"
        for e in entries
    ]
    if cursor:
        rows.append(f"more: --cursor {cursor}")
    doc = {"owner": args.owner, "entries": [e.as_dict() for e in entries], "next_cursor": cursor}
    out.emit(doc, "\n".join(rows))
    return 0


def cmd_peppers_status(args: argparse.Namespace, out: Output) -> int:
    """Live keys per pepper version: an old version may leave the secret once it has none."""
    status = _service(args).pepper_status(with_kids=args.kids)
    rows = [f"{'VERSION':<8}  {'LIVE KEYS':>9}  NOTE"]
    for v in status["versions"]:
        if v["current"]:
            note = "current"
        elif not v["in_secret"]:
            note = "NOT IN THE SECRET: these keys cannot verify"
        elif v["live_keys"]:
            note = "re-hashed as its keys are used; keep it"
        else:
            note = "no live key: may be removed"
        rows.append(f"{v['version']:<8}  {v['live_keys']:>9}  {note}")
        rows += [f"          {kid}" for kid in v.get("kids", [])]
    out.emit(status, "\n".join(rows))
    return 0


def cmd_rotation_run(args: argparse.Namespace, out: Output) -> int:
    from keysentry.rotation import RotationJob

    service = _service(args)
    now = None
    if args.now:
        try:
            parsed = dt.datetime.fromisoformat(args.now.replace("Z", "+00:00"))
        except ValueError:
            print(f"error: --now {args.now!r} is not an ISO-8601 time", file=sys.stderr)
            return EXIT_USAGE
        if parsed.tzinfo is None:
            parsed = parsed.replace(tzinfo=dt.UTC)
        fixed = int(parsed.timestamp())
        service.clock = lambda: fixed
        now = fixed
    summary = RotationJob(service).run(now)
    lines = [f"{k}: {v}" for k, v in summary.as_dict().items()]
    lines += [f"rotated {pair}" for pair in summary.rotated] + [f"expired {kid}" for kid in summary.expired]
    lines += [f"reminded {entry}" for entry in summary.reminded]
    doc = {**summary.as_dict(), "rotated_keys": summary.rotated, "expired_keys": summary.expired}
    out.emit(doc, "\n".join(lines))
    return 0


def cmd_local_up(args: argparse.Namespace, out: Output) -> int:
    from keysentry.localserver import run_local

    return run_local(
        host=args.host,
        port=args.port,
        env_file=Path(args.env_file),
        container_host=args.container_host,
        template=Path(args.template) if args.template else None,
        out_json=out.as_json,
    )


def cmd_demo(args: argparse.Namespace, out: Output) -> int:
    from keysentry.demo import run_demo

    return run_demo()


# ---------------------------------------------------------------- parser


def _positive_int(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None


def build_parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--json", action="store_true", help="print JSON")
    common.add_argument("--actor", help="who is acting, for the audit trail (default: cli:$USER)")

    parser = argparse.ArgumentParser(prog="keysentry", description=__doc__, parents=[common])
    top = parser.add_subparsers(dest="group", required=True)

    keys = top.add_parser("keys", help="issue and manage keys", parents=[common]).add_subparsers(
        dest="command", required=True
    )
    create = keys.add_parser("create", help="issue a key (shown once)", parents=[common])
    create.add_argument("--owner", required=True, help="the consumer the key belongs to")
    create.add_argument("--name", default="")
    create.add_argument("--scope", action="append", default=[], help="a permission; repeat for several")
    create.add_argument(
        "--allow-cidr", action="append", default=[], help="IPv4/IPv6 CIDR allowed; repeatable"
    )
    create.add_argument("--deny-cidr", action="append", default=[], help="IPv4/IPv6 CIDR denied; repeatable")
    create.add_argument("--rotation-days", type=_positive_int, default=None, help="30..90 (default 90)")
    create.add_argument("--expires-in-days", type=_positive_int, default=None)
    create.add_argument(
        "--expires-in",
        default=None,
        metavar="DURATION",
        help="lifetime: 30m, 2h, 7d (or ISO 8601: PT2H); at least a minute, at most MaxLifetimeDays",
    )
    create.add_argument("--env", choices=["live", "test"], default="live")
    create.add_argument(
        "--signing",
        choices=["bearer", "hmac", "ed25519", "rsa"],
        default="bearer",
        help="require signed requests",
    )
    create.add_argument("--public-key", help="PEM file of the consumer's Ed25519 or RSA public key")
    create.add_argument("--delivery-key", help="PEM file of an X25519 key scheduled successors are sealed to")
    create.set_defaults(func=cmd_create)

    update = keys.add_parser(
        "update",
        help="change a key's name, scopes, IP rules, metadata, rotation days, keys (all or nothing)",
        parents=[common],
    )
    update.add_argument("kid")
    update.add_argument("--name")
    update.add_argument("--scope", action="append", help="replaces the scopes; repeat; --scope '' for none")
    update.add_argument(
        "--allow-cidr", action="append", help="replaces the allow list; --allow-cidr '' for none"
    )
    update.add_argument(
        "--deny-cidr", action="append", help="replaces the deny list; --deny-cidr '' for none"
    )
    update.add_argument("--rotation-days", type=_positive_int, help="30..90")
    update.add_argument(
        "--metadata", action="append", help="name=value; replaces the metadata; --metadata '' for none"
    )
    update.add_argument(
        "--public-key", help="PEM file of the consumer's Ed25519 or RSA key: requires signed requests"
    )
    update.add_argument("--delivery-key", help="PEM file of an X25519 key scheduled successors are sealed to")
    update.set_defaults(func=cmd_update)

    setpk = keys.add_parser(
        "set-public-key", help="register a consumer's signing public key", parents=[common]
    )
    setpk.add_argument("kid")
    setpk.add_argument("file", help="PEM file (Ed25519, or RSA >= 2048 bits with e = 65537)")
    setpk.set_defaults(func=cmd_set_public_key)

    lister = keys.add_parser("list", help="list keys", parents=[common])
    lister.add_argument("--owner")
    lister.add_argument("--status")
    lister.add_argument("--limit", type=_positive_int, default=100)
    lister.add_argument("--cursor")
    lister.set_defaults(func=cmd_list)

    for name, helptext, needs_reason in (
        ("show", "show one key", None),
        ("suspend", "suspend a key (reversible)", False),
        ("resume", "resume a suspended key", False),
        ("revoke", "revoke a key for good", True),
        ("audit", "a key's audit trail", None),
    ):
        sub = keys.add_parser(name, help=helptext, parents=[common])
        sub.add_argument("kid")
        if needs_reason is not None:
            sub.add_argument("--reason", required=needs_reason, default="")
        funcs = {"show": cmd_show, "audit": cmd_audit}
        sub.set_defaults(func=funcs.get(name) or _lifecycle(name))

    rotate = keys.add_parser(
        "rotate",
        help="rotate a key now, or replace a suspended one (it stays suspended); successor shown once",
        parents=[common],
    )
    rotate.add_argument("kid")
    rotate.add_argument("--reason", default="")
    rotate.add_argument("--grace-days", type=_positive_int, default=None)
    rotate.set_defaults(func=cmd_rotate)

    audit = top.add_parser("audit", help="an owner's audit trail across their keys", parents=[common])
    audit.add_argument("--owner", required=True)
    audit.add_argument("--limit", type=_positive_int, default=50)
    audit.add_argument("--cursor")
    audit.set_defaults(func=cmd_owner_audit)

    peppers = top.add_parser("peppers", help="the pepper secret", parents=[common]).add_subparsers(
        dest="command", required=True
    )
    pepper_status = peppers.add_parser(
        "status", help="live keys per pepper version (when an old one can go)", parents=[common]
    )
    pepper_status.add_argument(
        "--kids", action="store_true", help="list the live keys still under an old version"
    )
    pepper_status.set_defaults(func=cmd_peppers_status)

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
    run.set_defaults(func=cmd_rotation_run)

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
    up.set_defaults(func=cmd_local_up)

    demo = top.add_parser("demo", help="a key's life on the embedded moto cloud, narrated", parents=[common])
    demo.set_defaults(func=cmd_demo)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    from botocore.exceptions import (
        BotoCoreError,
        ClientError,
        EndpointConnectionError,
        NoCredentialsError,
        NoRegionError,
    )

    args = build_parser().parse_args(argv)
    out = Output(args.json)
    try:
        code: int = args.func(args, out)
        sys.stdout.flush()  # a reader that went away shows here, not at exit
        return code
    except KeyNotFoundError as error:
        print(f"error: {error}", file=sys.stderr)
        return EXIT_NOT_FOUND
    except (TransitionError, ConflictError) as error:
        print(f"error: {error}", file=sys.stderr)
        return EXIT_CONFLICT
    except KeysentryError as error:
        print(f"error: {error}", file=sys.stderr)
        return EXIT_USAGE
    except EndpointConnectionError as error:
        print(f"error: cannot reach the AWS endpoint ({error.kwargs.get('endpoint_url')})", file=sys.stderr)
        return EXIT_AWS
    except NoCredentialsError:
        print("error: no AWS credentials found (set AWS_PROFILE or AWS_ACCESS_KEY_ID)", file=sys.stderr)
        return EXIT_AWS
    except NoRegionError:
        print("error: no AWS region set (set AWS_REGION or AWS_DEFAULT_REGION)", file=sys.stderr)
        return EXIT_AWS
    except ClientError as error:
        err = error.response.get("Error", {})
        print(f"error: AWS said {err.get('Code')}: {err.get('Message')}", file=sys.stderr)
        return EXIT_AWS
    except BotoCoreError as error:
        print(f"error: {error}", file=sys.stderr)
        return EXIT_AWS
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:  # the reader went away (| head): stop quietly, as a pipe's writer does
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141
    except OSError as error:  # a file named on the command line (a PEM, a template) cannot be read
        print(f"error: {error.strerror or error}: {error.filename or ''}".rstrip(": "), file=sys.stderr)
        return EXIT_USAGE
    except ValueError as error:
        if str(error).startswith("Invalid endpoint"):  # botocore's check of AWS_ENDPOINT_URL
            print(f"error: {error} (check AWS_ENDPOINT_URL)", file=sys.stderr)
            return EXIT_AWS
        raise


if __name__ == "__main__":
    sys.exit(main())
