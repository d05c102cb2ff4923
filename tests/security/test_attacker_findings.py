"""Promises found wanting by an outside review: a killed leak response finishes on redelivery, a
chain walk never stops silently, deep JSON is a 400, a low-order delivery key is refused, and a
cursor's numbers are ones DynamoDB accepts."""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest
from keysentry.api import leaks
from keysentry.errors import ChainIncompleteError
from keysentry.model import Status
from keysentry.service import KeyService
from keysentry.service import chain as service_chain
from keysentry.service import rotating as rotating_module
from keysentry.store import chain as store_chain

from tests.conftest import FakeClock
from tests.integration.api_helpers import call
from tests.security.test_leak_reports import deliver, github, leak_entries, match

__all__ = ["github"]

PENDING_AFTER_S: int = getattr(leaks, "PENDING_AFTER_S", 15)

pytestmark = pytest.mark.usefixtures("api_service")

ROTATE_SELF = "keys:rotate-self"
NO_REPLAY = {"Idempotency-Key": ""}


def create(lambda_context: Any, **body: Any) -> dict[str, Any]:
    payload = {"owner": "acme-data", "scopes": ["prices:read", ROTATE_SELF], **body}
    status, doc = call("api_create_key", lambda_context, body=payload, headers=NO_REPLAY)
    assert status == 200, doc
    return doc  # type: ignore[no-any-return]


def holder_chain(lambda_context: Any, kid: str, links: int) -> list[str]:
    chain = [kid]
    for _ in range(links):
        status, doc = call("api_self_rotate", lambda_context, kid=chain[-1])
        assert status == 200, doc
        chain.append(doc["kid"])
    return chain


# ---------------------------------------------------------------- 1. a killed leak response


class Killed(BaseException):
    """What a Lambda timeout looks like from inside: nothing after it runs, no except Exception."""


def test_a_leak_response_killed_midway_finishes_when_github_redelivers(
    lambda_context: Any, github: Any, service: Any, clock: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    doc = create(lambda_context)
    chain = holder_chain(lambda_context, doc["kid"], 4)
    body = json.dumps([match(doc["key"])])
    real, calls = KeyService._apply, [0]

    def killed_on_third(self: Any, *args: Any, **kwargs: Any) -> Any:
        calls[0] += 1
        if calls[0] == 3:
            raise Killed
        return real(self, *args, **kwargs)

    monkeypatch.setattr(KeyService, "_apply", killed_on_third)
    with pytest.raises(Killed):
        deliver(lambda_context, github, body)
    monkeypatch.setattr(KeyService, "_apply", real)
    assert service.get(chain[-1]).status is Status.ACTIVE

    early = deliver(lambda_context, github, body)
    assert early[0] == 200 and early[1][0]["label"] == "true_positive"
    assert service.get(chain[-1]).status is Status.ACTIVE, "still within the first invocation's time"

    clock.advance(seconds=PENDING_AFTER_S + 1)
    status, feedback = deliver(lambda_context, github, body)
    assert status == 200 and feedback[0]["label"] == "true_positive"
    for kid in chain:
        record = service.get(kid)
        assert record.status is Status.SUSPENDED and record.leaked_at is not None, kid
        assert leak_entries(service, kid) == 1, kid

    service.resume(chain[-1], actor="owner@acme", reason="investigated")
    clock.advance(seconds=PENDING_AFTER_S + 1)
    assert deliver(lambda_context, github, body) == (status, feedback), "done: a replay"
    assert service.get(chain[-1]).status is Status.ACTIVE


# ---------------------------------------------------------------- 2. the chain cap


@pytest.fixture
def small_cap(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(service_chain, "MAX_CHAIN", 3)
    monkeypatch.setattr(store_chain, "MAX_CHAIN", 3)


@pytest.mark.parametrize("action", ["suspend", "revoke", "report_leak"])
def test_a_chain_longer_than_the_cap_is_never_a_silent_success(
    lambda_context: Any, service: Any, small_cap: None, action: str
) -> None:
    doc = create(lambda_context)
    chain = holder_chain(lambda_context, doc["kid"], 5)
    with pytest.raises(ChainIncompleteError) as raised:
        getattr(service, action)(doc["kid"], actor="owner@acme", reason="found in a log")
    assert "may still be live" in str(raised.value)
    assert service.get(chain[-1]).is_live


def test_the_owners_replacement_of_a_capped_chain_is_refused_clearly(
    lambda_context: Any, service: Any, small_cap: None
) -> None:
    doc = create(lambda_context)
    holder_chain(lambda_context, doc["kid"], 5)
    with pytest.raises(ChainIncompleteError):
        service.suspend(doc["kid"], actor="owner@acme", reason="found in a log")
    status, answer = call("api_rotate_key", lambda_context, kid=doc["kid"], headers=NO_REPLAY)
    assert status == 409, answer


def test_a_holder_cannot_grow_its_chain_without_bound(
    lambda_context: Any, service: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(rotating_module, "MAX_HOLDER_CHAIN", 3)
    doc = create(lambda_context)
    chain = holder_chain(lambda_context, doc["kid"], 3)
    status, answer = call("api_self_rotate", lambda_context, kid=chain[-1])
    assert status == 409, answer
    assert "3" in answer["message"] and "owner" in answer["message"]
    assert service.get(chain[-1]).successor is None

    status, issued = call("api_rotate_key", lambda_context, kid=chain[-1], headers=NO_REPLAY)
    assert status == 200, issued
    assert call("api_self_rotate", lambda_context, kid=issued["kid"])[0] == 200, "owner's key: anew"


# ---------------------------------------------------------------- 3. deeply nested bodies

DEEP = "[" * 100000


@pytest.mark.parametrize(
    "route", ["api_create_key", "api_update_key", "api_suspend_key", "api_rotate_key", "api_self_revoke"]
)
def test_a_deeply_nested_body_is_a_clear_400(lambda_context: Any, route: str) -> None:
    doc = create(lambda_context)
    status, answer = call(route, lambda_context, kid=doc["kid"], raw_body=DEEP, headers=NO_REPLAY)
    assert status == 400, answer
    assert "nested" in answer["message"]


# ---------------------------------------------------------------- 4. low-order delivery keys

# The X25519 points of small order (RFC 7748 §6.1, and libsodium's blocklist), as u-coordinates.
SMALL_ORDER = [
    "00" * 32,
    "01" + "00" * 31,
    "e0eb7a7c3b41b8ae1656e3faf19fc46ada098deb9c32b1fd866205165f49b800",
    "5f9c95bca3508c24b1d0b1559c83ef5b04445cc4581c8e86d8224eddd09f1157",
    "ec" + "ff" * 30 + "7f",
    "ed" + "ff" * 30 + "7f",
    "ee" + "ff" * 30 + "7f",
]


def pem_of(raw_hex: str) -> str:
    der = bytes.fromhex("302a300506032b656e032100") + bytes.fromhex(raw_hex)
    lines = base64.b64encode(der).decode()
    return f"-----BEGIN PUBLIC KEY-----\n{lines}\n-----END PUBLIC KEY-----\n"


@pytest.mark.parametrize("raw", SMALL_ORDER)
def test_a_low_order_delivery_key_is_refused_on_update_and_create(lambda_context: Any, raw: str) -> None:
    doc = create(lambda_context)
    status, answer = call(
        "api_update_key", lambda_context, kid=doc["kid"], body={"delivery_key": pem_of(raw)}
    )
    assert status == 400, answer
    assert "delivery key" in answer["message"]
    payload = {"owner": "acme-data", "scopes": ["prices:read"], "delivery_key": pem_of(raw)}
    status, answer = call("api_create_key", lambda_context, body=payload, headers=NO_REPLAY)
    assert status == 400, answer
    assert "delivery key" in answer["message"]


# ---------------------------------------------------------------- 5. numeric cursor attributes


def encoded(doc: Any) -> str:
    return base64.urlsafe_b64encode(json.dumps(doc).encode()).decode()


NUMBERS = {
    "arabic-indic": "\u0661\u0667\u0669" + "\u0660" * 7,
    "sixty-digits": "9" * 60,
    "fullwidth": "\uff11\uff17\uff19\uff10",
}


@pytest.mark.parametrize("number", NUMBERS.values(), ids=NUMBERS.keys())
def test_a_cursor_number_dynamodb_would_refuse_is_a_clear_400(lambda_context: Any, number: str) -> None:
    key = {"pk": {"S": "AAAAAAAAAAAA"}, "sk": {"S": "KEY"}}
    owner_cursor = encoded({**key, "owner_id": {"S": "acme-data"}, "created_at": {"N": number}})
    status, doc = call("api_list_keys", lambda_context, query={"cursor": owner_cursor, "owner": "acme-data"})
    assert (status, doc) == (400, {"message": "invalid pagination cursor"})
    audit_cursor = encoded({**key, "audit_owner": {"S": "acme-data"}, "at": {"N": number}})
    status, doc = call(
        "api_owner_audit", lambda_context, query={"owner": "acme-data", "cursor": audit_cursor}
    )
    assert (status, doc) == (400, {"message": "invalid pagination cursor"})


def test_an_audit_cursor_dynamodb_refuses_is_a_clear_400(
    lambda_context: Any, service: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from botocore.exceptions import ClientError

    def refuses(**kwargs: Any) -> Any:
        raise ClientError({"Error": {"Code": "ValidationException", "Message": "bad key"}}, "Query")

    key = {"pk": {"S": "AAAAAAAAAAAA"}, "sk": {"S": "KEY"}}
    cursor = encoded({**key, "audit_owner": {"S": "acme-data"}, "at": {"N": "1790000000"}})
    from keysentry.api import context

    monkeypatch.setattr(context.service().store.client, "query", refuses)
    status, doc = call("api_owner_audit", lambda_context, query={"owner": "acme-data", "cursor": cursor})
    assert (status, doc) == (400, {"message": "invalid pagination cursor"})
