"""Reads the pepper secret from Secrets Manager, and again once it is older than its bounded age.

A warm container sees a pepper rotation (a new ``current``, a removed version) within
``PEPPER_MAX_AGE_SECONDS`` (default 300): the authorizer re-hashes under the new pepper, the API
mints under it. An unknown version triggers an early re-read (at most once a minute).

Not Powertools parameters: they import boto3 and s3transfer (and multiprocessing), about 60 ms on
the authorizer's cold path for what a timestamp does here. A refresh that fails keeps the last good
secret and is retried a minute later; only the first read fails closed.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Final

from keysentry import aws
from keysentry.errors import MissingResourceError
from keysentry.hashing import Peppers
from keysentry.settings import PEPPER_MAX_AGE_SECONDS, PEPPER_SECRET_ID

if TYPE_CHECKING:
    from mypy_boto3_secretsmanager import SecretsManagerClient

REFRESH_COOLDOWN_S: Final = 60
DEFAULT_MAX_AGE_S: Final = PEPPER_MAX_AGE_SECONDS.default


def max_age_from_env() -> int:
    """The one place the bounded age is configured (the template's ``PepperMaxAgeSeconds``)."""
    return PEPPER_MAX_AGE_SECONDS.read()


class PepperSource:
    def __init__(
        self,
        secret_id: str,
        client: SecretsManagerClient | None = None,
        *,
        max_age: int | None = None,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.secret_id = secret_id
        self._client = client
        self.max_age = max_age_from_env() if max_age is None else max_age
        self._monotonic = monotonic
        self._peppers: Peppers | None = None
        self._loaded_at = 0.0
        self._refresh_at = 0.0  # when the secret is next read

    def get(self) -> Peppers:
        """The peppers, re-read once they are older than ``max_age``."""
        peppers = self._peppers
        if peppers is None or self._monotonic() >= self._refresh_at:
            return self._refresh()
        return peppers

    def for_version(self, version: str) -> Peppers:
        """Peppers that know ``version``: re-read the secret (at most once a minute) when they don't."""
        peppers = self.get()
        if not peppers.knows(version) and self._monotonic() - self._loaded_at > REFRESH_COOLDOWN_S:
            peppers = self._refresh()
        return peppers

    def _refresh(self) -> Peppers:
        try:
            self._load()
        except Exception:
            if self._peppers is None:
                raise  # nothing to fall back on: the caller fails closed
            self._refresh_at = self._monotonic() + min(REFRESH_COOLDOWN_S, self.max_age)
        assert self._peppers is not None
        return self._peppers

    def _load(self) -> None:
        client = self._client or aws.client("secretsmanager")
        try:
            secret = client.get_secret_value(SecretId=self.secret_id)
        except client.exceptions.ResourceNotFoundException:
            raise MissingResourceError(
                f"pepper secret {self.secret_id} not found", PEPPER_SECRET_ID.name
            ) from None
        self._peppers = Peppers.from_secret_string(secret["SecretString"])
        self._loaded_at = self._monotonic()
        self._refresh_at = self._loaded_at + self.max_age
