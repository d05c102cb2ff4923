"""The management API under moto: every route, authz, one-time secrets, idempotency, leaks."""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from keysentry import keyformat
from keysentry.model import Status

from tests.conftest import ROOT, FakeClock, all_items, template
from tests.integration.api_helpers import call
from tests.integration.github_helpers import publish

pytestmark = pytest.mark.usefixtures("api_service")


def create(lambda_context: Any, **body: Any) -> dict[str, Any]:
    payload = {"owner": "acme-data", "scopes": ["prices:read"], **body}
    status, doc = call("api_create_key", lambda_context, body=payload, headers={"Idempotency-Key": ""})
    assert status == 200, doc
    return doc  # type: ignore[no-any-return]


# ---------------------------------------------------------------- owner routes


def test_create_returns_the_key_once_and_stores_only_its_digest(
    lambda_context: Any, stack: Any, service: Any
) -> None:
    doc = create(lambda_context, name="feed", allow_cidrs=["203.0.113.0/24"], signing="hmac")
    assert keyformat.parse(doc["key"]).kid == doc["kid"]
    assert len(doc["signing_secret"]) == 43
    stored = json.dumps([all_items(stack.refs[t]) for t in ("KeysTable", "IdempotencyTable")])
    assert doc["key"] not in stored and doc["signing_secret"] not in stored
    status, shown = call("api_get_key", lambda_context, kid=doc["kid"])
    assert status == 200 and "key" not in shown and "signing_secret" not in shown and "digest" not in shown


def test_a_retried_create_with_the_same_idempotency_key_mints_one_key(
    lambda_context: Any, stack: Any, service: Any
) -> None:
    first = call("api_create_key", lambda_context)
    second = call("api_create_key", lambda_context)
    assert first[0] == second[0] == 200
    assert first[1]["kid"] == second[1]["kid"] and first[1]["key"] == second[1]["key"]
    records, _ = service.list_keys("acme-data")
    assert len(records) == 1
    assert first[1]["key"] not in json.dumps(all_items(stack.refs["IdempotencyTable"]))
    other_body = call("api_create_key", lambda_context, body={"owner": "someone-else"})
    assert other_body[0] == 409


def test_list_by_owner_and_status_with_pagination(lambda_context: Any, service: Any) -> None:
    kids = [create(lambda_context)["kid"] for _ in range(3)]
    service.suspend(kids[0], actor="ops")
    status, doc = call("api_list_keys", lambda_context, query={"owner": "acme-data", "status": "active"})
    assert status == 200 and {k["kid"] for k in doc["keys"]} == set(kids[1:])
    seen, cursor = set(), None
    while True:
        query = {"owner": "acme-data", "limit": "1", **({"cursor": cursor} if cursor else {})}
        status, page = call("api_list_keys", lambda_context, query=query)
        seen |= {k["kid"] for k in page["keys"]}
        cursor = page["next_cursor"]
        if not cursor:
            break
    assert seen == set(kids)
    assert call("api_list_keys", lambda_context, query={"status": "bogus"})[0] == 422


def test_get_unknown_and_malformed_kids(lambda_context: Any) -> None:
    assert call("api_get_key", lambda_context, kid="AAAAAAAAAAAA")[0] == 404
    status, _doc = call("api_get_key", lambda_context, kid="EXAMPLEKEY0!")
    assert status == 422


def test_patch_changes_policy_within_bounds(lambda_context: Any) -> None:
    kid = create(lambda_context)["kid"]
    status, doc = call("api_update_key", lambda_context, kid=kid)
    assert status == 200 and doc["scopes"] == ["prices:read", "prices:history"]
    assert doc["deny_cidrs"] == ["198.51.100.0/24"]
    assert call("api_update_key", lambda_context, kid=kid, body={"rotation_days": 120})[0] == 422
    status, doc = call("api_update_key", lambda_context, kid=kid, body={"allow_cidrs": ["10.0.0.0/33"]})
    assert status == 400 and "invalid allow CIDR" in doc["message"]
    assert call("api_update_key", lambda_context, kid=kid, body={"digest": "x"})[0] == 422


def test_manual_rotation_returns_the_successor_once(lambda_context: Any, service: Any) -> None:
    kid = create(lambda_context)["kid"]
    status, doc = call("api_rotate_key", lambda_context, kid=kid)
    assert status == 200 and doc["predecessor"] == kid
    assert keyformat.parse(doc["key"]).kid == doc["kid"]
    again = call("api_rotate_key", lambda_context, kid=kid)
    assert again[1]["kid"] == doc["kid"], "the same Idempotency-Key replays the same rotation"
    predecessor = service.get(kid)
    assert (
        predecessor.status is Status.ROTATING
        and predecessor.grace_until == predecessor.last_change.at + 3 * 86_400
    )


def test_suspend_resume_revoke_and_the_409_for_what_the_lifecycle_forbids(lambda_context: Any) -> None:
    kid = create(lambda_context)["kid"]
    assert call("api_suspend_key", lambda_context, kid=kid)[1]["status"] == "suspended"
    assert call("api_resume_key", lambda_context, kid=kid)[1]["status"] == "active"
    assert call("api_revoke_key", lambda_context, kid=kid, body={})[0] == 422  # reason required
    assert call("api_revoke_key", lambda_context, kid=kid)[1]["status"] == "revoked"
    status, doc = call("api_resume_key", lambda_context, kid=kid)
    assert status == 409 and "it is revoked" in doc["message"]


def test_audit_and_usage(lambda_context: Any, service: Any, clock: FakeClock) -> None:
    kid = create(lambda_context)["kid"]
    call("api_suspend_key", lambda_context, kid=kid)
    status, doc = call("api_key_audit", lambda_context, kid=kid)
    assert [e["action"] for e in doc["entries"]] == ["create", "suspend"]
    assert doc["entries"][1]["actor"] == "arn:aws:sts::123456789012:assumed-role/keysentry-operator/ops"
    service.store.touch(kid, clock(), stale_before=clock())
    status, usage = call("api_key_usage", lambda_context, kid=kid)
    assert status == 200 and usage["last_used_at"] == clock()


def test_errors_never_carry_a_stack_trace_or_a_secret(
    lambda_context: Any, monkeypatch: pytest.MonkeyPatch, service: Any
) -> None:
    doc = create(lambda_context)

    def explode(*args: Any, **kwargs: Any) -> None:
        raise RuntimeError(f"boom {doc['key']}")

    monkeypatch.setattr(service, "get", explode)
    status, body = call("api_get_key", lambda_context, kid=doc["kid"])
    assert status == 500 and body == {"message": "internal error"}


# ---------------------------------------------------------------- self-service


def test_whoami_is_the_calling_key(lambda_context: Any) -> None:
    kid = create(lambda_context)["kid"]
    status, doc = call("api_self", lambda_context, kid=kid)
    assert status == 200 and doc["kid"] == kid and doc["scopes"] == ["prices:read"]
    assert "key" not in doc and "digest" not in doc


def test_self_routes_cannot_touch_another_key(lambda_context: Any, service: Any) -> None:
    mine, other = create(lambda_context)["kid"], create(lambda_context)["kid"]
    status, doc = call("api_self_revoke", lambda_context, kid=mine, body={"reason": "x", "kid": other})
    assert status == 422  # no field names another key
    status, doc = call("api_self_revoke", lambda_context, kid=mine, body={"reason": "leaked in CI logs"})
    assert status == 200 and doc == {"kid": mine, "status": "revoked"}
    assert service.get(other).status is Status.ACTIVE
    assert call("api_self", lambda_context, kid="not-a-kid")[0] == 401
    # the caller is the authorizer's key_id, never another field of its context
    assert call("api_self", lambda_context, authorizer={"principalId": other})[0] == 401
    assert call("api_self", lambda_context, authorizer={})[0] == 401


def test_self_rotate_gives_the_successor_once_and_the_old_key_enters_grace(
    lambda_context: Any, service: Any
) -> None:
    kid = create(lambda_context, scopes=["prices:read", "keys:rotate-self"])["kid"]
    status, doc = call("api_self_rotate", lambda_context, kid=kid)
    assert status == 200 and doc["predecessor"] == kid and keyformat.parse(doc["key"])
    assert service.get(kid).status is Status.ROTATING
    assert call("api_self_rotate", lambda_context, kid=kid)[0] == 409


def test_the_scheduled_successor_is_picked_up_once(
    lambda_context: Any, service: Any, clock: FakeClock
) -> None:
    from keysentry.rotation import RotationJob

    kid = create(lambda_context, rotation_days=30)["kid"]
    assert call("api_self_successor", lambda_context, kid=kid)[0] == 404
    clock.advance(days=30)
    RotationJob(service).run()
    status, doc = call("api_self_successor", lambda_context, kid=kid)
    assert status == 200 and doc["predecessor"] == kid and keyformat.parse(doc["key"]).kid == doc["kid"]
    assert call("api_self_successor", lambda_context, kid=kid)[0] == 404


# ---------------------------------------------------------------- leaks


@pytest.fixture
def github(stack: Any, monkeypatch: pytest.MonkeyPatch) -> Any:
    """A locally generated key pair stands in for GitHub's; its public half goes where the template puts GitHub's."""
    monkeypatch.setenv("GITHUB_SCANNING_KEYS_PARAMETER", stack.refs["GitHubScanningKeys"])
    private = ec.generate_private_key(ec.SECP256R1())
    pem = private.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    doc = {"public_keys": [{"key_identifier": "test-key-1", "key": pem.decode(), "is_current": True}]}
    publish(stack, doc)
    return private


def report(
    lambda_context: Any, private: Any, matches: list[dict[str, str]], *, key_id: str = "test-key-1"
) -> tuple[int, Any]:
    body = json.dumps(matches)
    signature = base64.b64encode(private.sign(body.encode(), ec.ECDSA(hashes.SHA256()))).decode()
    headers = {"Github-Public-Key-Identifier": key_id, "Github-Public-Key-Signature": signature}
    return call("api_leaks_github", lambda_context, raw_body=body, headers=headers)


def match(token: str) -> dict[str, str]:
    return {
        "token": token,
        "type": "keysentry_api_key",
        "url": "https://github.com/o/r/blob/x/.env",
        "source": "content",
    }


def test_a_signed_report_suspends_the_live_key_and_labels_it(
    lambda_context: Any, github: Any, service: Any
) -> None:
    doc = create(lambda_context)
    status, feedback = report(lambda_context, github, [match(doc["key"])])
    assert status == 200
    assert feedback == [
        {
            "token_hash": __import__("hashlib").sha256(doc["key"].encode()).hexdigest(),
            "token_type": "keysentry_api_key",
            "label": "true_positive",
        }
    ]
    record = service.get(doc["kid"])
    assert record.status is Status.SUSPENDED and record.leaked_at is not None
    assert service.audit(doc["kid"])[-1].reason == "found in public: https://github.com/o/r/blob/x/.env"
    assert service.audit(doc["kid"])[-1].action == "leak"


def test_a_forged_or_unsigned_report_changes_nothing(lambda_context: Any, github: Any, service: Any) -> None:
    doc = create(lambda_context)
    forger = ec.generate_private_key(ec.SECP256R1())
    assert report(lambda_context, forger, [match(doc["key"])])[0] == 401
    assert report(lambda_context, github, [match(doc["key"])], key_id="unknown")[0] == 401
    assert (
        call(
            "api_leaks_github",
            lambda_context,
            raw_body=json.dumps([match(doc["key"])]),
            headers={"Github-Public-Key-Signature": ""},
        )[0]
        == 401
    )
    assert service.get(doc["kid"]).status is Status.ACTIVE


def test_a_batch_of_reports_with_unknown_foreign_and_revoked_tokens(
    lambda_context: Any, github: Any, service: Any
) -> None:
    live, dead = create(lambda_context), create(lambda_context)
    service.revoke(dead["kid"], actor="ops", reason="gone")
    unknown = keyformat.generate().token
    wrong_secret = keyformat.generate(kid=live["kid"]).token
    status, feedback = report(
        lambda_context,
        github,
        [
            match(live["key"]),
            match(unknown),
            match("ghp_notours123"),
            match(dead["key"]),
            match(wrong_secret),
        ],
    )
    assert status == 200
    assert [f["label"] for f in feedback] == [
        "true_positive",
        "false_positive",
        "false_positive",
        "true_positive",
        "false_positive",
    ]
    assert service.get(live["kid"]).status is Status.SUSPENDED
    assert service.get(dead["kid"]).status is Status.REVOKED
    assert all(t not in json.dumps(feedback) for t in (live["key"], dead["key"], unknown))


# ---------------------------------------------------------------- the template and the contract


def test_owner_routes_are_iam_only_and_self_routes_use_the_keysentry_authorizer() -> None:
    resources = template()["Resources"]
    assert resources["ManagementApi"]["Properties"]["Auth"]["DefaultAuthorizer"] == "AWS_IAM"
    for name, event in resources["ApiFunction"]["Properties"]["Events"].items():
        path, auth = event["Properties"]["Path"], event["Properties"].get("Auth", {}).get("Authorizer")
        if path.startswith("/keys") or path in ("/audit", "/usage"):
            assert auth is None, name  # the default: AWS_IAM
        elif path.startswith("/self"):
            assert auth == "KeysentryAuthorizer", name
        else:
            assert path == "/leaks/github" and auth == "NONE", name


def test_the_openapi_document_is_committed_and_current() -> None:
    from keysentry.api.app import app

    current = json.loads(app.get_openapi_json_schema(title="keysentry management API", version="1"))
    committed = json.loads((ROOT / "docs" / "openapi.json").read_text())
    assert committed == current, "run: make openapi"
