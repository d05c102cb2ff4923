"""Reads the pepper secret from Secrets Manager once per container, again only when it must."""

from __future__ import annotations

import time
from typing import Any

from keysentry import aws
from keysentry.errors import ConfigurationError
from keysentry.hashing import Peppers

REFRESH_COOLDOWN_S = 60


class PepperSource:
    def __init__(self, secret_id: str, client: Any = None) -> None:
        self.secret_id = secret_id
        self._client = client
        self._peppers: Peppers | None = None
        self._loaded_at = 0.0

    def get(self) -> Peppers:
        if self._peppers is None:
            self._load()
        assert self._peppers is not None
        return self._peppers

    def for_version(self, version: str) -> Peppers:
        """Peppers that know ``version``: re-read the secret (at most once a minute) when they don't."""
        peppers = self.get()
        if not peppers.knows(version) and time.monotonic() - self._loaded_at > REFRESH_COOLDOWN_S:
            self._load()
            peppers = self.get()
        return peppers

    def _load(self) -> None:
        client = self._client or aws.client("secretsmanager")
        try:
            secret = client.get_secret_value(SecretId=self.secret_id)
        except client.exceptions.ResourceNotFoundException:
            raise ConfigurationError(f"pepper secret {self.secret_id} not found") from None
        self._peppers = Peppers.from_secret_string(secret["SecretString"])
        self._loaded_at = time.monotonic()
