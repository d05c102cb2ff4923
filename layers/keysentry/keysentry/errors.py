"""Typed errors. Messages are safe to show a caller: they never carry a key, digest or secret."""

from __future__ import annotations


class KeysentryError(Exception):
    """Base of every error keysentry raises on purpose."""


class MalformedKeyError(KeysentryError):
    """A presented token failed an offline check (format, length, charset, checksum)."""


class ValidationError(KeysentryError):
    """Input that keysentry refuses: bad CIDR, rotation days out of range, unknown scope syntax..."""


class KeyNotFoundError(KeysentryError):
    def __init__(self, kid: str) -> None:
        super().__init__(f"no key with id {kid}")
        self.kid = kid


class TransitionError(KeysentryError):
    """The lifecycle does not allow this change from the key's current status."""

    def __init__(self, kid: str, action: str, status: str) -> None:
        super().__init__(f"cannot {action} key {kid}: it is {status}")
        self.kid = kid
        self.action = action
        self.status = status


class ConflictError(KeysentryError):
    """The key changed between read and write (optimistic lock); re-read and retry."""

    def __init__(self, kid: str) -> None:
        super().__init__(f"key {kid} was changed concurrently; re-read it and retry")
        self.kid = kid


class ForbiddenError(KeysentryError):
    """The caller is known but may not do this (a key rotating itself without the scope)."""


class ChainIncompleteError(ConflictError):
    """A change reached the key but not every successor in its chain: those are named; run it again."""

    def __init__(self, kid: str, action: str, pending: list[str]) -> None:
        KeysentryError.__init__(
            self,
            f"{action} of key {kid} did not reach all of its chain: {'; '.join(pending)} may still be "
            f"live; run the {action} again to finish it",
        )
        self.kid = kid
        self.action = action
        self.pending = pending


class ConfigurationError(KeysentryError):
    """A setting (environment variable, secret, parameter) is missing or malformed."""


class MissingResourceError(ConfigurationError):
    """A setting names a resource that AWS says is not there (the pepper secret): ``setting`` is the
    variable that names it."""

    def __init__(self, message: str, setting: str) -> None:
        super().__init__(message)
        self.setting = setting
