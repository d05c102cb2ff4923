"""last_used_at within the hour without a write per request, and the re-hash of a key whose digest
is under an older pepper: both on the authorizer's path, neither ever changing its decision."""

from __future__ import annotations

from collections.abc import Callable
from typing import Final

from keysentry.model import KeyRecord
from keysentry.peppers import PepperSource
from keysentry.store import KeyStore

USAGE_WRITE_INTERVAL_S: Final = 3600
REHASH_RETRY_S: Final = 60
PEPPER_CHECK_S: Final = 1  # how often a request asks the pepper source (which has its own bounded age)


class UsageRecorder:
    def __init__(
        self, store: KeyStore, peppers: PepperSource, max_entries: int, on_rehash: Callable[[], None]
    ) -> None:
        self.store = store
        self.on_rehash = on_rehash  # a re-hashed key's cached records are stale
        self.peppers = peppers
        self.max_entries = max_entries
        self._touched: dict[str, float] = {}  # kid -> when its use was last recorded (or seen recorded)
        self._current = ""  # the current pepper version, as of _current_until (wall clock)
        self._current_until = 0

    def record(self, record: KeyRecord, token: str, now: int) -> None:
        """Keep last_used_at within an hour, without a write per request; re-hash an old pepper."""
        if (
            now < self._current_until
            and record.pepper_version == self._current
            and now - self._touched.get(record.kid, 0) < USAGE_WRITE_INTERVAL_S
        ):
            return  # the common case: used, and recorded, within the hour, under the current pepper
        peppers = self.peppers.get()  # in memory; re-read from Secrets Manager at its bounded age
        self._current, self._current_until = peppers.current, now + PEPPER_CHECK_S
        rehash = peppers.needs_rehash(record.pepper_version)
        if not self._due(record, now, rehash):
            return
        try:
            if rehash:  # audited: action rehash, pepper version from -> to
                self.store.rehash(record, peppers.digest(token), peppers.current, now)
            else:
                self.store.touch(record.kid, now, stale_before=now - USAGE_WRITE_INTERVAL_S)
        except Exception:  # usage tracking never changes the decision
            return
        if rehash:
            self.on_rehash()

    def _due(self, record: KeyRecord, now: int, rehash: bool) -> bool:
        """Whether to write now; if so, the write is noted first (tried once a minute, or hour)."""
        touched = self._touched.get(record.kid, 0)
        if now - touched < (REHASH_RETRY_S if rehash else USAGE_WRITE_INTERVAL_S):
            return False  # recorded within the hour; a re-hash tried within the minute
        last = max(touched, record.last_used_at or 0)
        if not rehash and now - last < USAGE_WRITE_INTERVAL_S:
            self._touched[record.kid] = last  # recorded recently (maybe by another container)
            return False
        self._touched[record.kid] = now
        if len(self._touched) > self.max_entries:
            self._touched.clear()
        return True
