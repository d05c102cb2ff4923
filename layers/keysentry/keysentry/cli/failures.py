"""What a failed command says and the code it exits with: one line, never a traceback, never a key.

The codes (docs/cli.md's, from :data:`EXIT_CODES`): a setting that is missing or wrong is invalid
input (2) and is named with where it comes from; anything AWS refuses or does not have (a stack, a
table, the pepper secret) is an AWS failure (5), with the setting that names it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Final

from keysentry.errors import (
    ConflictError,
    KeyNotFoundError,
    KeysentryError,
    MissingResourceError,
    TransitionError,
)
from keysentry.settings import KEYS_TABLE, KMS_KEY_ID, PEPPER_SECRET_ID, USAGE_TABLE

if TYPE_CHECKING:
    from keysentry.cli.stack import Resolved

EXIT_OK: Final = 0
EXIT_FAILED: Final = 1  # keysentry doctor: a check failed (its help says so)
EXIT_USAGE: Final = 2
EXIT_NOT_FOUND: Final = 3
EXIT_CONFLICT: Final = 4
EXIT_AWS: Final = 5
EXIT_CODES: Final = {
    EXIT_OK: "ok",
    EXIT_FAILED: "doctor: a check failed (its line says what to do)",
    EXIT_USAGE: "invalid input, or a setting missing or wrong (named, with where it comes from)",
    EXIT_NOT_FOUND: "unknown key",
    EXIT_CONFLICT: "not allowed by the lifecycle, or changed concurrently",
    EXIT_AWS: "AWS unreachable or refused, or a stack or resource a setting names is not there",
}

# An AWS "not found" answer, by the operation it answers: the settings that name what was not found.
_KMS_OPERATIONS: Final = frozenset({"Encrypt", "Decrypt", "GenerateDataKey", "ReEncrypt", "DescribeKey"})
_NOT_FOUND_CODES: Final = frozenset({"ResourceNotFoundException", "NotFoundException"})


def describe(error: BaseException, resolved: Resolved | None) -> tuple[str, int] | None:
    """The message and exit code of a failure the command line expects; None: a bug, raised as is."""
    if isinstance(error, KeysentryError):
        return _ours(error, resolved)
    from botocore.exceptions import (
        BotoCoreError,
        ClientError,
        EndpointConnectionError,
        NoCredentialsError,
        NoRegionError,
    )

    if isinstance(error, EndpointConnectionError):
        return f"cannot reach the AWS endpoint ({error.kwargs.get('endpoint_url')})", EXIT_AWS
    if isinstance(error, NoCredentialsError):
        return "no AWS credentials found (set AWS_PROFILE or AWS_ACCESS_KEY_ID)", EXIT_AWS
    if isinstance(error, NoRegionError):
        return "no AWS region set (set AWS_REGION or AWS_DEFAULT_REGION)", EXIT_AWS
    if isinstance(error, ClientError):
        err = error.response.get("Error", {})
        hint = _not_found_hint(err.get("Code", ""), error.operation_name, resolved)
        return f"AWS said {err.get('Code')}: {err.get('Message')}{hint}", EXIT_AWS
    if isinstance(error, BotoCoreError):
        return str(error), EXIT_AWS
    if isinstance(error, OSError):  # a file named on the command line (a PEM, a template) cannot be read
        return f"{error.strerror or error}: {error.filename or ''}".rstrip(": "), EXIT_USAGE
    if isinstance(error, ValueError) and str(error).startswith("Invalid endpoint"):  # botocore's check
        return f"{error} (check AWS_ENDPOINT_URL)", EXIT_AWS
    return None


def _ours(error: KeysentryError, resolved: Resolved | None) -> tuple[str, int]:
    if isinstance(error, KeyNotFoundError):
        return str(error), EXIT_NOT_FOUND
    if isinstance(error, TransitionError | ConflictError):
        return str(error), EXIT_CONFLICT
    if isinstance(error, MissingResourceError):
        source = resolved.sources.get(error.setting) if resolved is not None else None
        where = f" ({error.setting}, from {source}{_age(resolved)})" if source else ""
        return f"{error}{where}", EXIT_AWS
    return str(error), EXIT_USAGE


def _not_found_hint(code: str, operation: str, resolved: Resolved | None) -> str:
    """Which settings name what AWS did not find, their values (names and ARNs) and sources."""
    if code not in _NOT_FOUND_CODES or resolved is None:
        return ""
    if operation in _KMS_OPERATIONS:
        names: tuple[str, ...] = (KMS_KEY_ID.name,)
    elif operation == "GetSecretValue":
        names = (PEPPER_SECRET_ID.name,)
    else:
        names = (KEYS_TABLE.name, USAGE_TABLE.name)
    named = "; ".join(
        f"{name}={resolved.environ.get(name, '')} from {resolved.sources.get(name, 'its default')}"
        for name in names
    )
    return f" (check {named}{_age(resolved)})"


def _age(resolved: Resolved | None) -> str:
    """For values read from a stack some time ago: that they may be stale, and how to read them again."""
    import time

    stack = resolved.stack if resolved is not None else None
    age = int(time.time() - stack.read_at) if stack is not None else 0
    if age < 5:
        return ""
    return f"; the stack was read {age // 60} min {age % 60} s ago: --refresh reads it again"
