"""What every use case shares: the store, the peppers, the settings, the clock, and reading a key
(and the usage table, for the usage reports)."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Self

from keysentry import keyformat
from keysentry.envelope import KmsBox
from keysentry.errors import ConflictError, ValidationError
from keysentry.model import KeyRecord
from keysentry.peppers import PepperSource
from keysentry.settings import Settings
from keysentry.store import KeyStore
from keysentry.store.usage import UsageTable

Clock = Callable[[], int]
SIGNING_SECRET_LEN = 43  # base62: 256 bits


def system_clock() -> int:
    return int(time.time())


class ServiceBase:
    def __init__(
        self,
        store: KeyStore,
        peppers: PepperSource,
        *,
        settings: Settings | None = None,
        clock: Clock = system_clock,
        usage_table: UsageTable | None = None,
    ) -> None:
        self.store = store
        self.peppers = peppers
        self.settings = settings or Settings()
        self.clock = clock
        self.usage_table = usage_table or UsageTable(self.settings.usage_table)  # its client: on first use
        self._kms: KmsBox | None = None

    @property
    def kms(self) -> KmsBox:
        if self._kms is None:
            self._kms = KmsBox(self.settings.kms_key_id)
        return self._kms

    @classmethod
    def from_settings(cls, settings: Settings | None = None, clock: Clock = system_clock) -> Self:
        settings = settings or Settings.from_env()
        return cls(
            KeyStore(settings.keys_table, audit_retention_days=settings.audit_retention_days),
            PepperSource(settings.pepper_secret_id, max_age=settings.pepper_max_age_seconds),
            settings=settings,
            clock=clock,
            usage_table=UsageTable(settings.usage_table),
        )

    def get(self, kid: str) -> KeyRecord:
        """The key as stored: what a change is computed from and conditioned on."""
        if not keyformat.is_kid(kid):
            raise ValidationError("a key id is 12 letters and digits")
        return self.store.get(kid)

    def read(self, kid: str) -> KeyRecord:
        """The key as read now: expired once its time is up, before the schedule writes it
        (:meth:`KeyRecord.read_at`). What every reading shows; never written back."""
        return self.get(kid).read_at(self.clock())


def describe(error: Exception) -> str:
    """A short, secret-free word on why a key could not be changed."""
    if isinstance(error, ConflictError):
        return "changed concurrently"
    response = getattr(error, "response", None)
    if isinstance(response, dict):
        return str(response.get("Error", {}).get("Code", type(error).__name__))
    return type(error).__name__
