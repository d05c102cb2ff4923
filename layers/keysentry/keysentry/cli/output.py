"""How the command line prints: JSON with ``--json``, else text for a terminal. Never a secret but
in the one document of a key as issued."""

from __future__ import annotations

import datetime as dt
import json
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from keysentry.model import KeyRecord
    from keysentry.service import Issued


def iso(ts: int | None) -> str:
    if ts is None:
        return "-"
    return dt.datetime.fromtimestamp(ts, dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class Output:
    def __init__(self, as_json: bool) -> None:
        self.as_json = as_json

    def emit(self, doc: Any, text: str) -> None:
        print(json.dumps(doc, indent=2, sort_keys=True) if self.as_json else text)


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
