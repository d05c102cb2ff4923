"""Reading keys and their audit trails, and which pepper versions live keys still need."""

from __future__ import annotations

from typing import Any

from keysentry import model
from keysentry.errors import ValidationError
from keysentry.model import MAX_PAGE, KeyRecord, Status
from keysentry.service.base import ServiceBase
from keysentry.store import AuditEntry


def _check_limit(limit: int) -> None:
    if not 1 <= limit <= MAX_PAGE:
        raise ValidationError(f"limit must be between 1 and {MAX_PAGE}")


class Reading(ServiceBase):
    def list_keys(
        self,
        owner_id: str | None = None,
        *,
        status: str | None = None,
        limit: int = 100,
        cursor: str | None = None,
    ) -> tuple[list[KeyRecord], str | None]:
        if status is not None and status not in set(Status):
            raise ValidationError(f"status must be one of {', '.join(Status)}")
        _check_limit(limit)
        keep = None if status is None else (lambda r: r.status == status)  # a full page of them
        if owner_id is not None:
            return self.store.list_by_owner(
                model.validate_owner(owner_id), limit=limit, start=cursor, keep=keep
            )
        return self.store.list_all(limit=limit, start=cursor, keep=keep)

    def audit(self, kid: str) -> list[AuditEntry]:
        self.get(kid)  # 404 for an unknown kid rather than an empty trail
        return self.store.audit(kid)

    def owner_audit(
        self, owner_id: str, *, limit: int = 50, cursor: str | None = None
    ) -> tuple[list[AuditEntry], str | None]:
        """Every audit entry of an owner's keys, newest first, a page at a time."""
        _check_limit(limit)
        return self.store.audit_by_owner(model.validate_owner(owner_id), limit=limit, start=cursor)

    def pepper_status(self, *, with_kids: bool = False) -> dict[str, Any]:
        """Live keys per pepper version, and which old versions no live key needs any more.
        ``with_kids``: the ids of the live keys still under an old version."""
        peppers = self.peppers.get()
        kids = self.store.live_pepper_versions()
        versions = sorted(set(peppers.versions) | set(kids), key=lambda v: (len(v), v))
        rows = []
        for v in versions:
            row: dict[str, Any] = {
                "version": v,
                "live_keys": len(kids.get(v, [])),
                "current": v == peppers.current,
                "in_secret": peppers.knows(v),
            }
            if with_kids and v != peppers.current:
                row["kids"] = kids.get(v, [])
            rows.append(row)
        return {
            "current": peppers.current,
            "versions": rows,
            "removable": [v for v in versions if v != peppers.current and peppers.knows(v) and v not in kids],
        }
