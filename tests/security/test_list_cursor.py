"""Promises of the key listing: a pagination cursor is the server's own, or a clear 400."""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest

from tests.integration.api_helpers import call

pytestmark = pytest.mark.usefixtures("api_service")


def encoded(doc: Any) -> str:
    return base64.urlsafe_b64encode(json.dumps(doc).encode()).decode()


KEY = {"pk": {"S": "AAAAAAAAAAAA"}, "sk": {"S": "KEY"}}
OWNER_KEY = {**KEY, "owner_id": {"S": "acme-data"}, "created_at": {"N": "1790000000"}}

GARBAGE = {
    "unknown-attribute": encoded({"kid": {"N": "1"}}),
    "number-pk": encoded({"pk": {"N": "1"}, "sk": {"S": "KEY"}}),
    "binary-sk": encoded({"pk": {"S": "AAAAAAAAAAAA"}, "sk": {"B": "S0VZ"}}),
    "two-types": encoded({"pk": {"S": "AAAAAAAAAAAA", "N": "1"}, "sk": {"S": "KEY"}}),
    "not-a-string-value": encoded({"pk": {"S": 1}, "sk": {"S": "KEY"}}),
    "list-value": encoded({"pk": {"L": [{"S": "x"}]}, "sk": {"S": "KEY"}}),
    "null-value": encoded({"pk": {"NULL": True}, "sk": {"S": "KEY"}}),
    "empty-pk": encoded({"pk": {"S": ""}, "sk": {"S": "KEY"}}),
    "extra-attribute": encoded({**OWNER_KEY, "status": {"S": "active"}}),
    "missing-sk": encoded({"pk": {"S": "AAAAAAAAAAAA"}}),
    "empty-object": encoded({}),
    "a-list": encoded([KEY]),
    "a-string": encoded("KEY"),
    "deeply-nested": base64.urlsafe_b64encode(b"[" * 760 + b"]" * 760).decode(),
    "not-base64": "!!!not-a-cursor!!!",
    "not-utf8": base64.urlsafe_b64encode(b"\xff\xfe{}").decode(),
    "not-json": base64.urlsafe_b64encode(b"{pk: 1}").decode(),
}

OWNER_GARBAGE = {
    "number-created-at-not-a-number": encoded({**OWNER_KEY, "created_at": {"N": "soon"}}),
    "string-created-at": encoded({**OWNER_KEY, "created_at": {"S": "1790000000"}}),
    "another-owners-cursor": encoded({**OWNER_KEY, "owner_id": {"S": "someone-else"}}),
    "table-cursor-on-the-index": encoded(KEY),
    "huge-number": encoded({**OWNER_KEY, "created_at": {"N": "1e400"}}),
}


@pytest.mark.parametrize("cursor", GARBAGE.values(), ids=GARBAGE.keys())
@pytest.mark.parametrize("owner", [None, "acme-data"], ids=["all-keys", "by-owner"])
def test_a_garbage_cursor_is_a_clear_400(lambda_context: Any, cursor: str, owner: str | None) -> None:
    query = {"cursor": cursor, **({"owner": owner} if owner else {})}
    status, doc = call("api_list_keys", lambda_context, query=query)
    assert status == 400, doc
    assert doc == {"message": "invalid pagination cursor"}


@pytest.mark.parametrize("cursor", OWNER_GARBAGE.values(), ids=OWNER_GARBAGE.keys())
def test_a_cursor_that_does_not_fit_the_owner_listing_is_a_clear_400(
    lambda_context: Any, cursor: str
) -> None:
    status, doc = call("api_list_keys", lambda_context, query={"owner": "acme-data", "cursor": cursor})
    assert status == 400, doc
    assert doc == {"message": "invalid pagination cursor"}


def test_a_cursor_too_deep_to_parse_is_refused_where_no_length_limit_applies(service: Any) -> None:
    from keysentry.errors import ValidationError

    deep = base64.urlsafe_b64encode(b"[" * 100_000 + b"]" * 100_000).decode()
    for owner in (None, "acme-data"):
        with pytest.raises(ValidationError, match="invalid pagination cursor"):
            service.list_keys(owner, cursor=deep)


def test_the_servers_own_cursors_still_page_through_every_key(lambda_context: Any, service: Any) -> None:
    created = {service.create("acme-data", actor="ops").record.kid for _ in range(5)}
    for query in ({"owner": "acme-data"}, {}):
        seen: list[str] = []
        cursor: str | None = None
        while True:
            page = {**query, "limit": "2", **({"cursor": cursor} if cursor else {})}
            status, doc = call("api_list_keys", lambda_context, query=page)
            assert status == 200, doc
            seen += [k["kid"] for k in doc["keys"]]
            cursor = doc["next_cursor"]
            if not cursor:
                break
        assert set(seen) == created and len(seen) == len(created)
