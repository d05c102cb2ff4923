"""How the command line prints: JSON with ``--output json`` (``--json``), else text for a terminal:
tables for lists. Never a secret but in the one document of a key as issued."""

from __future__ import annotations

import datetime as dt
import json
import sys
from typing import TYPE_CHECKING, Any, Final

from keysentry.cli.table import Column, relative, table

if TYPE_CHECKING:
    from collections.abc import Sequence

    from keysentry.model import KeyRecord
    from keysentry.service import Issued
    from keysentry.store import AuditEntry

KEY_COLUMNS: Final = (
    Column("KID", 12),
    Column("OWNER", 20),
    Column("NAME", 20),
    Column("STATUS", 9),
    Column("PLAN", 12),
    Column("SCOPES", 28),
    Column("EXPIRES", 12),
    Column("LAST USED", 12),
)
AUDIT_COLUMNS: Final = (
    Column("WHEN", 12),
    Column("KID", 12),
    Column("ACTION", 9),
    Column("STATUS", 22),
    Column("ACTOR", 28),
    Column("REASON / CHANGES", 60),
)


def iso(ts: int | None) -> str:
    if ts is None:
        return "-"
    return dt.datetime.fromtimestamp(ts, dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class Output:
    """Where a command prints: ``as_json`` (``--output json``) or text; ``unicode``: whether the text
    may hold an ellipsis character (else three dots)."""

    def __init__(self, as_json: bool, unicode: bool = True) -> None:
        self.as_json = as_json
        self.unicode = unicode

    def emit(self, doc: Any, text: str) -> None:
        print(json.dumps(doc, indent=2, sort_keys=True) if self.as_json else text)

    def error(self, message: str, code: int) -> None:
        """A failure, on stderr: ``{"error": ..., "code": <exit code>}`` with JSON, else one line."""
        line = json.dumps({"error": message, "code": code}) if self.as_json else f"error: {message}"
        print(line, file=sys.stderr)


def record_text(r: KeyRecord) -> str:
    lines = [
        f"kid:           {r.kid}",
        f"owner:         {r.owner_id}",
        f"name:          {r.name or '-'}",
        f"status:        {r.status}",
        f"env:           {r.env}",
        f"scopes:        {', '.join(r.scopes) or '-'}",
        f"allow cidrs:   {', '.join(r.allow_cidrs) or '-'}",
        f"deny cidrs:    {', '.join(r.deny_cidrs) or '-'}",
        f"created:       {iso(r.created_at)}",
        f"rotate after:  {iso(r.rotate_after)} (every {r.rotation_days} days)",
        f"expires:       {iso(r.expires_at)}",
        f"last used:     {iso(r.last_used_at)}",
        f"signing:       {r.signing.mode}",
        f"on anomaly:    {'suspend' if r.suspend_on_anomaly else 'alert only'}",
    ]
    if r.grace_until:
        lines.append(f"grace until:   {iso(r.grace_until)}")
    if r.successor:
        lines.append(f"successor:     {r.successor}")
    if r.predecessor:
        lines.append(f"predecessor:   {r.predecessor}")
    return "\n".join(lines)


def plan_lines(view: dict[str, Any]) -> list[str]:
    """A key's plan and quota, from its view (``KeyService.view``)."""
    plan = view["plan"]
    if not plan["declared"]:
        return [f"plan:          {plan['name']} (no longer among the deployment's plans)"]
    lines = [f"plan:          {plan['name']} ({plan['rate']:g}/s, burst {plan['burst']})"]
    quota = view.get("quota")
    if quota is not None:
        lines.append(
            f"quota:         {quota['used']} of {quota['limit']} this {quota['period'].lower()}, "
            f"resets {iso(quota['resets_at'])}"
        )
        if quota.get("exhausted_until"):
            lines.append(f"refused until: {iso(quota['exhausted_until'])} (quota exhausted)")
    return lines


def emit_issued(out: Output, issued: Issued, headline: str) -> None:
    """The one printer for a key as issued (create, rotate, pickup): its document, every secret in it."""
    doc = issued.document()
    lines = [headline, f"kid: {doc['kid']}"]
    lines += [f"{name.replace('_', ' ')}: {doc[name]}" for name in issued.SECRET_FIELDS if doc.get(name)]
    out.emit(doc, "\n".join([*lines, doc["notice"]]))


def changes_text(changes: dict[str, dict[str, Any]]) -> str:
    def show(value: Any) -> str:
        if isinstance(value, list):
            return ",".join(map(str, value)) or "[]"
        if isinstance(value, dict):
            return ",".join(f"{k}={v}" for k, v in value.items()) or "{}"
        return "-" if value is None else str(value)

    return "; ".join(f"{name} {show(c['from'])} -> {show(c['to'])}" for name, c in changes.items())


def keys_text(records: Sequence[KeyRecord], now: int, default_plan: str, unicode: bool = True) -> list[str]:
    """Keys as a table: EXPIRES is when a key stops working by itself (a rotating key's grace end when
    that comes first), LAST USED to within the hour the authorizer records it."""
    rows = [
        [
            r.kid,
            r.owner_id,
            r.name or "-",
            str(r.status),
            r.plan or default_plan,
            ",".join(r.scopes) or "-",
            relative(min((t for t in (r.expires_at, r.grace_until) if t), default=None), now),
            relative(r.last_used_at, now) if r.last_used_at else "never",
        ]
        for r in records
    ]
    return table(KEY_COLUMNS, rows, unicode)


def audit_text(entries: Sequence[AuditEntry], now: int, *, with_kid: bool, unicode: bool = True) -> list[str]:
    """Audit entries as a table, each with its time from now, its change of status (``active ->
    revoked``), and its reason and changed fields."""
    rows = []
    for e in entries:
        status = e.to_status if e.from_status in ("", e.to_status) else f"{e.from_status} -> {e.to_status}"
        why = "; ".join(part for part in (e.reason, changes_text(e.changes)) if part) or "-"
        rows.append([relative(e.at, now), e.kid, e.action, status, e.actor, why])
    columns = AUDIT_COLUMNS if with_kid else AUDIT_COLUMNS[:1] + AUDIT_COLUMNS[2:]
    return table(columns, [row if with_kid else row[:1] + row[2:] for row in rows], unicode)
