"""The commands: each turns its arguments into one call of the service and prints the answer."""

from __future__ import annotations

import argparse
import datetime as dt
import getpass
import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from keysentry.cli.output import Output, audit_text, emit_issued, keys_text, plan_lines, record_text
from keysentry.errors import ValidationError
from keysentry.model import KeySpec

if TYPE_CHECKING:
    from keysentry.service import KeyService

Service = Callable[[], "KeyService"]  # built on first use: `local up` and `demo` need none
Command = Callable[[argparse.Namespace, Output, Service], int]


def _actor(args: argparse.Namespace) -> str:
    actor = getattr(args, "actor", None)  # --actor anywhere on the line
    return str(actor or os.environ.get("KEYSENTRY_ACTOR") or f"cli:{getpass.getuser()}")


def _read_file(path: str | None, what: str) -> str | None:
    if path is None:
        return None
    try:
        return Path(path).read_text()
    except OSError as error:
        raise ValidationError(f"cannot read the {what} file {path}: {error.strerror}") from None


def cmd_create(args: argparse.Namespace, out: Output, service: Service) -> int:
    if not args.scope and not args.no_scopes:
        raise ValidationError(
            "give the key a --scope (repeat for several): without one it opens only the routes any "
            'key may call (RouteScopes\' "" entries, /self by default); --no-scopes makes such a key'
        )
    spec = KeySpec(
        args.owner,
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
        suspend_on_anomaly=args.suspend_on_anomaly,
        plan=args.plan,
        metadata=_metadata(args.metadata) if args.metadata else None,
    )
    issued = service().create(spec, actor=_actor(args))
    emit_issued(out, issued, f"created key {issued.record.kid} for {issued.record.owner_id}")
    return 0


def cmd_update(args: argparse.Namespace, out: Output, service: Service) -> int:
    """Change a key's policy: only what is given changes (lists replace the key's lists)."""
    changes: dict[str, Any] = {}
    for field in ("name", "rotation_days", "suspend_on_anomaly", "plan"):
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
    keys = service()
    record = keys.update(args.kid, actor=_actor(args), **changes)  # all or nothing
    out.emit(record.public_view(), "\n".join([record_text(record), *plan_lines(keys.view_of(record))]))
    return 0


def _metadata(given: list[str]) -> dict[str, str]:
    """``--metadata name=value`` (repeated) or a JSON object of strings, as a dict; ``--metadata ''``
    for none. Its bounds are the model's (validate_metadata), checked by the service."""
    if given == [""]:
        return {}
    metadata: dict[str, str] = {}
    for each in given:
        if each.lstrip().startswith("{"):
            try:
                doc = json.loads(each)
            except ValueError:
                raise ValidationError("--metadata: not a JSON object of name to text") from None
            if not isinstance(doc, dict) or not all(isinstance(v, str) for v in doc.values()):
                raise ValidationError("--metadata: not a JSON object of name to text")
            metadata.update(doc)
            continue
        name, sep, value = each.partition("=")
        if not sep:
            raise ValidationError(f"--metadata {each!r} is not name=value (or a JSON object)")
        metadata[name] = value
    return metadata


def cmd_set_public_key(args: argparse.Namespace, out: Output, service: Service) -> int:
    pem = _read_file(args.file, "public key") or ""
    record = service().set_public_key(args.kid, pem, actor=_actor(args))
    out.emit(record.public_view(), f"key {record.kid} now requires {record.signing.mode}-signed requests")
    return 0


def cmd_list(args: argparse.Namespace, out: Output, service: Service) -> int:
    keys = service()
    records, cursor = keys.list_keys(args.owner, status=args.status, limit=args.limit, cursor=args.cursor)
    doc = {"keys": [r.public_view() for r in records], "next_cursor": cursor}
    rows = keys_text(records, keys.clock(), keys.settings.default_plan, out.unicode)
    if cursor:
        rows.append(f"more: --cursor {cursor}")
    out.emit(doc, "\n".join(rows))
    return 0


def cmd_show(args: argparse.Namespace, out: Output, service: Service) -> int:
    keys = service()
    record = keys.read(args.kid)  # as read now: expired once its time is up
    view = keys.view_of(record)
    out.emit(view, "\n".join([record_text(record), *plan_lines(view)]))
    return 0


def lifecycle(action: str) -> Command:
    """suspend, resume or revoke: the service's method of that name."""

    def run(args: argparse.Namespace, out: Output, service: Service) -> int:
        method = getattr(service(), action)
        record = method(args.kid, actor=_actor(args), reason=getattr(args, "reason", "") or "")
        out.emit(record.public_view(), f"{action}: key {record.kid} is now {record.status}")
        return 0

    return run


def cmd_rotate(args: argparse.Namespace, out: Output, service: Service) -> int:
    issued = service().rotate(args.kid, actor=_actor(args), reason=args.reason, grace_days=args.grace_days)
    headline = f"rotated {args.kid}: successor {issued.record.kid}"
    if issued.record.predecessor != args.kid:  # a suspended key whose holder had rotated it already
        headline = (
            f"replaced {args.kid} (after its successor {issued.record.predecessor}): {issued.record.kid}"
        )
    emit_issued(out, issued, headline)
    return 0


def cmd_audit(args: argparse.Namespace, out: Output, service: Service) -> int:
    keys = service()
    entries = keys.audit(args.kid)
    rows = audit_text(entries, keys.clock(), with_kid=False, unicode=out.unicode)
    out.emit({"kid": args.kid, "entries": [e.as_dict() for e in entries]}, "\n".join(rows))
    return 0


def cmd_owner_audit(args: argparse.Namespace, out: Output, service: Service) -> int:
    """An owner's trail across their keys, newest first, a page at a time."""
    keys = service()
    entries, cursor = keys.owner_audit(args.owner, limit=args.limit, cursor=args.cursor)
    rows = audit_text(entries, keys.clock(), with_kid=True, unicode=out.unicode)
    if cursor:
        rows.append(f"more: --cursor {cursor}")
    doc = {"owner": args.owner, "entries": [e.as_dict() for e in entries], "next_cursor": cursor}
    out.emit(doc, "\n".join(rows))
    return 0


def cmd_peppers_status(args: argparse.Namespace, out: Output, service: Service) -> int:
    """Live keys per pepper version: an old version may leave the secret once it has none."""
    status = service().pepper_status(with_kids=args.kids)
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


def cmd_rotation_run(args: argparse.Namespace, out: Output, service: Service) -> int:
    keys = service()
    now = None
    if args.now:
        try:
            parsed = dt.datetime.fromisoformat(args.now.replace("Z", "+00:00"))
        except ValueError:
            raise ValidationError(f"--now {args.now!r} is not an ISO-8601 time") from None
        if parsed.tzinfo is None:
            parsed = parsed.replace(tzinfo=dt.UTC)
        fixed = int(parsed.timestamp())
        keys.clock = lambda: fixed
        now = fixed
    summary = keys.run_schedule(now)
    lines = [f"{k}: {v}" for k, v in summary.as_dict().items()]
    lines += [f"rotated {pair}" for pair in summary.rotated] + [f"expired {kid}" for kid in summary.expired]
    lines += [f"reminded {entry}" for entry in summary.reminded]
    doc = {**summary.as_dict(), "rotated_keys": summary.rotated, "expired_keys": summary.expired}
    out.emit(doc, "\n".join(lines))
    return 0


def cmd_local_up(args: argparse.Namespace, out: Output, service: Service) -> int:
    from keysentry_dev.localserver import run_local

    return run_local(
        host=args.host,
        port=args.port,
        env_file=Path(args.env_file),
        container_host=args.container_host,
        template=Path(args.template) if args.template else None,
        out_json=out.as_json,
        gateway=args.gateway,
        gateway_port=args.gateway_port,
    )


def cmd_demo(args: argparse.Namespace, out: Output, service: Service) -> int:
    from keysentry_dev.demo import run_demo

    return run_demo()
