"""Pagination cursors: a LastEvaluatedKey handed out as opaque text, and checked when it returns."""

from __future__ import annotations

import re
from typing import Any, Final

from botocore.exceptions import ClientError
from keysentry.store.codec import Item


def encode_cursor(key: Item | None) -> str | None:
    if not key:
        return None
    import base64
    import json

    return base64.urlsafe_b64encode(json.dumps(key, sort_keys=True).encode()).decode()


# The attributes (and their DynamoDB types) of a LastEvaluatedKey: the table's key, plus the index's.
TABLE_CURSOR: Final = {"pk": "S", "sk": "S"}
OWNER_CURSOR: Final = {**TABLE_CURSOR, "owner_id": "S", "created_at": "N"}
AUDIT_OWNER_CURSOR: Final = {**TABLE_CURSOR, "audit_owner": "S", "at": "N"}
_CURSOR_MAX_S: Final = 1024
# A cursor's number as DynamoDB accepts it and this listing hands it out: ASCII digits, at most 20
# (str.isdecimal would pass other scripts' digits and 60-digit numbers, which DynamoDB refuses).
_CURSOR_NUMBER: Final = re.compile(r"[0-9]{1,20}")


def decode_cursor(cursor: str, shape: dict[str, str], *, owner_id: str | None = None) -> Item:
    """A cursor this listing handed out, or ValidationError: exactly its key attributes, each of the
    key's type, a non-empty string or an integer; for an owner's listing, that owner's."""
    import base64
    import binascii
    import json

    from keysentry.errors import ValidationError

    invalid = ValidationError("invalid pagination cursor")
    try:
        key = json.loads(base64.urlsafe_b64decode(cursor.encode()))
    except (ValueError, binascii.Error, RecursionError):
        raise invalid from None
    if not isinstance(key, dict) or set(key) != set(shape):
        raise invalid
    for name, kind in shape.items():
        value = key[name]
        if not isinstance(value, dict) or list(value) != [kind] or not isinstance(value[kind], str):
            raise invalid
        text = value[kind]
        if not 0 < len(text) <= _CURSOR_MAX_S or (kind == "N" and not _CURSOR_NUMBER.fullmatch(text)):
            raise invalid
    if owner_id is not None and key["owner_id"]["S"] != owner_id:
        raise invalid
    return key


def paged(operation: Any, kwargs: Item) -> Item:
    """Query or Scan; DynamoDB's refusal of a start key (a cursor that passed the shape check but
    names no place in this listing) is the caller's bad input, not a server error."""
    from keysentry.errors import ValidationError

    try:
        response: Item = operation(**kwargs)
    except ClientError as error:
        if "ExclusiveStartKey" in kwargs and error.response["Error"]["Code"] == "ValidationException":
            raise ValidationError("invalid pagination cursor") from None
        raise
    return response
