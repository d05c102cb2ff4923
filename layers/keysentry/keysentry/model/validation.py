"""Checks on what a key may hold, each against the limits of :mod:`keysentry.model.record`."""

from __future__ import annotations

import ipaddress
import re
from typing import TYPE_CHECKING, Final

from keysentry.errors import ValidationError
from keysentry.model.record import (
    CONTEXT_METADATA_PREFIX,
    DAY,
    MAX_CIDRS,
    MAX_CONTEXT_METADATA,
    MAX_CONTEXT_METADATA_KEY,
    MAX_LIFETIME_DAYS,
    MAX_METADATA,
    MAX_METADATA_KEY,
    MAX_METADATA_VALUE,
    MAX_NAME,
    MAX_OWNER,
    MAX_REASON,
    MAX_ROTATION_DAYS,
    MAX_SCOPE,
    MAX_SCOPES,
    MIN_LIFETIME_S,
    MIN_ROTATION_DAYS,
)

if TYPE_CHECKING:
    from keysentry.plans import Plans

_SCOPE_RE: Final = re.compile(rf"\A[A-Za-z0-9][A-Za-z0-9_.:/*-]{{0,{MAX_SCOPE - 1}}}\Z")
_OWNER_RE: Final = re.compile(rf"\A[A-Za-z0-9][A-Za-z0-9_.@:+-]{{0,{MAX_OWNER - 1}}}\Z")
_META_KEY_RE: Final = re.compile(rf"\A[A-Za-z0-9_.:-]{{1,{MAX_METADATA_KEY}}}\Z")
_CONTEXT_KEY_RE: Final = re.compile(
    rf"\A{CONTEXT_METADATA_PREFIX}[A-Za-z0-9_]{{1,{MAX_CONTEXT_METADATA_KEY - len(CONTEXT_METADATA_PREFIX)}}}\Z"
)


def validate_owner(owner_id: str) -> str:
    if not isinstance(owner_id, str) or not _OWNER_RE.match(owner_id):
        raise ValidationError(f"owner must be 1-{MAX_OWNER} characters of letters, digits and _.@:+-")
    return owner_id


def validate_flag(value: object, name: str) -> bool:
    """A yes/no setting: exactly a bool (1, "yes" or None are not)."""
    if not isinstance(value, bool):
        raise ValidationError(f"{name} must be true or false")
    return value


def validate_scopes(scopes: list[str] | tuple[str, ...]) -> tuple[str, ...]:
    if len(scopes) > MAX_SCOPES:
        raise ValidationError(f"at most {MAX_SCOPES} scopes")
    for scope in scopes:
        if not isinstance(scope, str) or not _SCOPE_RE.match(scope):
            raise ValidationError(
                f"invalid scope {scope!r}: use letters, digits and _.:/*- (max {MAX_SCOPE})"
            )
    return tuple(dict.fromkeys(scopes))


def network(cidr: str) -> ipaddress.IPv4Network | ipaddress.IPv6Network:
    """A CIDR as the authorizer matches it: an IPv4-mapped IPv6 network (``::ffff:a.b.c.d/n``,
    n >= 96) is the IPv4 network it maps, as a mapped source address is matched as IPv4."""
    net = ipaddress.ip_network(cidr.strip(), strict=False)
    if isinstance(net, ipaddress.IPv6Network) and net.prefixlen >= 96:
        mapped = net.network_address.ipv4_mapped
        if mapped is not None:
            return ipaddress.IPv4Network((mapped, net.prefixlen - 96))
    return net


def validate_cidrs(cidrs: list[str] | tuple[str, ...], what: str) -> tuple[str, ...]:
    if len(cidrs) > MAX_CIDRS:
        raise ValidationError(f"at most {MAX_CIDRS} {what} entries")
    out = []
    for cidr in cidrs:
        try:
            out.append(str(network(str(cidr))))
        except ValueError:
            raise ValidationError(f"invalid {what} CIDR {cidr!r}") from None
    return tuple(dict.fromkeys(out))


def validate_rotation_days(days: int) -> int:
    if (
        isinstance(days, bool)
        or not isinstance(days, int)
        or not (MIN_ROTATION_DAYS <= days <= MAX_ROTATION_DAYS)
    ):
        raise ValidationError(f"rotation days must be between {MIN_ROTATION_DAYS} and {MAX_ROTATION_DAYS}")
    return days


def validate_lifetime_days(days: int | None, max_days: int = MAX_LIFETIME_DAYS) -> int | None:
    if days is None:
        return None
    if isinstance(days, bool) or not isinstance(days, int) or not (1 <= days <= max_days):
        raise ValidationError(f"expiry must be between 1 and {max_days} days")
    return days


_DURATION_RE: Final = re.compile(r"\A([0-9]{1,7})([smhd])\Z")
_ISO_DURATION_RE: Final = re.compile(
    r"\AP(?:([0-9]{1,5})W)?(?:([0-9]{1,5})D)?(?:T(?:([0-9]{1,7})H)?(?:([0-9]{1,7})M)?(?:([0-9]{1,9})S)?)?\Z"
)
_UNIT_S: Final = {"s": 1, "m": 60, "h": 3600, "d": DAY}


def parse_duration(value: int | str) -> int:
    """Seconds in ``value``: whole seconds, ``30m``/``2h``/``7d`` (also ``90s``), or an ISO 8601
    duration in weeks, days, hours, minutes and seconds (``PT2H``, ``P7D``, ``P1DT12H``)."""
    if isinstance(value, bool):
        raise ValidationError("expiry must be a number of seconds or a duration such as 2h or PT2H")
    if isinstance(value, int):
        return value
    text = str(value).strip()
    if re.fullmatch(r"[0-9]{1,12}", text):
        return int(text)
    short = _DURATION_RE.match(text.lower())
    if short:
        return int(short.group(1)) * _UNIT_S[short.group(2)]
    iso = _ISO_DURATION_RE.match(text.upper())
    if iso and text.upper() not in ("P", "PT") and not text.upper().endswith("T"):
        weeks, days, hours, minutes, seconds = (int(g) if g else 0 for g in iso.groups())
        return (weeks * 7 + days) * DAY + hours * 3600 + minutes * 60 + seconds
    raise ValidationError(  # without the input: whatever was pasted there is not echoed back
        "expiry is not a duration: use 30m, 2h, 7d, a number of seconds, or ISO 8601 such as PT2H or P7D"
    )


def validate_lifetime_seconds(seconds: int, max_days: int = MAX_LIFETIME_DAYS) -> int:
    if isinstance(seconds, bool) or not isinstance(seconds, int) or seconds < MIN_LIFETIME_S:
        raise ValidationError("expiry must be at least a minute")
    if seconds > max_days * DAY:
        raise ValidationError(f"expiry must be at most {max_days} days")
    return seconds


def lifetime_seconds(
    expires_in_days: int | None, expires_in: int | str | None, max_days: int = MAX_LIFETIME_DAYS
) -> int | None:
    """A new key's lifetime from either way of giving it (at most one), or None: no expiry."""
    if expires_in is not None and expires_in_days is not None:
        raise ValidationError("give the expiry once: expires_in or expires_in_days, not both")
    if expires_in is not None:
        return validate_lifetime_seconds(parse_duration(expires_in), max_days)
    days = validate_lifetime_days(expires_in_days, max_days)
    return days * DAY if days else None


def validate_metadata(metadata: dict[str, str] | None) -> dict[str, str]:
    metadata = metadata or {}
    if not isinstance(metadata, dict) or len(metadata) > MAX_METADATA:
        raise ValidationError(f"metadata must be an object of at most {MAX_METADATA} entries")
    for key, value in metadata.items():
        if not isinstance(key, str) or not _META_KEY_RE.match(key):
            raise ValidationError(f"invalid metadata key {key!r}")
        if not isinstance(value, str) or len(value) > MAX_METADATA_VALUE:
            raise ValidationError(
                f"metadata value for {key!r} must be a string of at most {MAX_METADATA_VALUE} characters"
            )
    _check_context_metadata(metadata)
    return dict(metadata)


def _check_context_metadata(metadata: dict[str, str]) -> None:
    """The entries that go to the authorizer's context (``ctx_...``): a bounded number, named so that
    every API Gateway mapping can read them."""
    keys = [k for k in metadata if k.startswith(CONTEXT_METADATA_PREFIX)]
    if len(keys) > MAX_CONTEXT_METADATA:
        raise ValidationError(
            f"at most {MAX_CONTEXT_METADATA} metadata entries may start with {CONTEXT_METADATA_PREFIX!r}"
            " (they go to the authorizer's context)"
        )
    for key in keys:
        if not _CONTEXT_KEY_RE.match(key):
            raise ValidationError(
                f"a metadata key starting with {CONTEXT_METADATA_PREFIX!r} goes to the authorizer's context: "
                f"at most {MAX_CONTEXT_METADATA_KEY} characters, letters, digits and '_' only"
            )


def context_metadata(metadata: dict[str, str]) -> dict[str, str]:
    """The metadata entries the authorizer passes to the backend: those named ``ctx_...`` (letters,
    digits, '_'), the first :data:`MAX_CONTEXT_METADATA` by name. A record from before the rule is
    held to it here too."""
    keys = sorted(k for k in metadata if _CONTEXT_KEY_RE.match(k))[:MAX_CONTEXT_METADATA]
    return {k: metadata[k][:MAX_METADATA_VALUE] for k in keys}


def validate_plan(name: object, plans: Plans) -> str:
    """A plan a key may be put on: one of the deployment's, by name."""
    if not isinstance(name, str):
        raise ValidationError(f"unknown plan; the plans are: {', '.join(sorted(plans.plans))}")
    return plans.check(name)


def validate_name(name: str) -> str:
    if not isinstance(name, str) or len(name) > MAX_NAME or not name.isprintable():
        raise ValidationError(f"name must be printable and at most {MAX_NAME} characters")
    return name


def validate_reason(reason: str, required: bool = False) -> str:
    if not isinstance(reason, str) or len(reason) > MAX_REASON or not reason.isprintable():
        raise ValidationError(f"reason must be printable and at most {MAX_REASON} characters")
    if required and not reason.strip():
        raise ValidationError("a reason is required")
    return reason.strip()
