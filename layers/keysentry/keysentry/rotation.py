"""The scheduled job (see :meth:`keysentry.service.KeyService.run_schedule`), with its clock budget.

What the schedule does with a key is decided by :func:`keysentry.model.plan` and done by the service.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from keysentry.model import Step, plan
from keysentry.service.schedule import ACTOR, RECENT_USE_S, Summary

if TYPE_CHECKING:
    from keysentry.service import KeyService


class RotationJob:
    """One run of the schedule over ``service``, stopping ``safety_ms`` before ``remaining_ms()`` ends."""

    def __init__(
        self,
        service: KeyService,
        *,
        remaining_ms: Callable[[], int] = lambda: 900_000,
        safety_ms: int = 10_000,
        on_error: Callable[[str, Exception], None] = lambda kid, error: None,
    ) -> None:
        self.service = service
        self.remaining_ms = remaining_ms
        self.safety_ms = safety_ms
        self.on_error = on_error

    def run(self, now: int | None = None) -> Summary:
        return self.service.run_schedule(
            now, remaining_ms=self.remaining_ms, safety_ms=self.safety_ms, on_error=self.on_error
        )


__all__ = ["ACTOR", "RECENT_USE_S", "RotationJob", "Step", "Summary", "plan"]
