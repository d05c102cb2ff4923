"""Peppered HMAC-SHA256 digests of tokens.

Only ``HMAC-SHA256(pepper, token)`` is stored, with the pepper's version. A token has 190 bits
of entropy, so a slow password hash would add cost (100 ms a request) and no security.

The pepper secret (Secrets Manager) is a JSON object: ``{"current": "2", "1": "...", "2": "..."}``.
Rotating the pepper adds a version and moves ``current``; keys hashed under an older version
still verify and are re-hashed on their next successful use.
"""

from __future__ import annotations

import hmac
import json
from collections.abc import Mapping
from dataclasses import dataclass, field

from keysentry.errors import ConfigurationError

MIN_PEPPER_BYTES = 32


@dataclass(frozen=True)
class Peppers:
    current: str
    versions: Mapping[str, bytes] = field(repr=False)

    def __post_init__(self) -> None:
        if self.current not in self.versions:
            raise ConfigurationError("pepper secret: 'current' names no version")
        for version, value in self.versions.items():
            if len(value) < MIN_PEPPER_BYTES:
                raise ConfigurationError(f"pepper version {version} is shorter than {MIN_PEPPER_BYTES} bytes")

    def __repr__(self) -> str:
        return f"Peppers(current={self.current!r}, versions={sorted(self.versions)!r})"

    @classmethod
    def from_secret_string(cls, secret_string: str) -> Peppers:
        try:
            doc = json.loads(secret_string)
        except ValueError:
            raise ConfigurationError("pepper secret is not JSON") from None
        if not isinstance(doc, dict) or not isinstance(doc.get("current"), str):
            raise ConfigurationError("pepper secret must be an object with a 'current' version")
        versions = {k: v.encode() for k, v in doc.items() if k != "current" and isinstance(v, str)}
        return cls(current=doc["current"], versions=versions)

    def digest(self, token: str, version: str | None = None) -> str:
        """Hex digest of ``token`` under ``version`` (default: the current pepper)."""
        pepper = self.versions[version or self.current]
        return hmac.digest(pepper, token.encode(), "sha256").hex()

    def knows(self, version: str) -> bool:
        return version in self.versions

    def verify(self, token: str, digest: str, version: str) -> bool:
        """Constant-time check of ``token`` against a stored digest made under ``version``."""
        if version not in self.versions:
            return False
        return hmac.compare_digest(self.digest(token, version), digest)

    def needs_rehash(self, version: str) -> bool:
        return version != self.current
