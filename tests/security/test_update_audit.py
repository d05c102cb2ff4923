"""Promises about changing a key: all or nothing, audited without secrets, readable per owner."""

from __future__ import annotations

import base64
import hashlib
import json
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519, x25519
from keysentry import aws, cli, keyformat

from tests.integration.api_helpers import call

pytestmark = pytest.mark.usefixtures("api_service")


def _pem(public_key: Any) -> str:
    return public_key.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    ).decode()


ED25519_PEM = _pem(ed25519.Ed25519PrivateKey.generate().public_key())
X25519_PEM = _pem(x25519.X25519PrivateKey.generate().public_key())

# Each field of PATCH /keys/{kid}: a value that is valid, and one the API must refuse.
VALID = {
    "name": "renamed",
    "scopes": ["orders:write"],
    "allow_cidrs": ["10.0.0.0/8"],
    "deny_cidrs": ["192.0.2.0/24"],
    "metadata": {"team": "payments"},
    "rotation_days": 60,
    "public_key": ED25519_PEM,
    "delivery_key": X25519_PEM,
}
INVALID = {
    "name": "tab\there",
    "scopes": ["no spaces allowed"],
    "allow_cidrs": ["10.0.0.0/33"],
    "deny_cidrs": ["not-a-network"],
    "metadata": {"bad key!": "v"},
    "rotation_days": 7,
    "public_key": "-----BEGIN PUBLIC KEY-----\nnot a key\n-----END PUBLIC KEY-----\n",
    "delivery_key": ED25519_PEM,  # a valid PEM of the wrong kind
}
PAIRS = [(good, bad) for good in VALID for bad in INVALID if good != bad]


def _raw_key_item(kid: str) -> dict[str, Any]:
    item = aws.client("dynamodb").get_item(
        TableName=_table(), Key={"pk": {"S": kid}, "sk": {"S": "KEY"}}, ConsistentRead=True
    )["Item"]
    return item  # type: ignore[no-any-return]


def _table() -> str:
    import os

    return os.environ["KEYS_TABLE"]


def _partition(kid: str) -> list[dict[str, Any]]:
    response = aws.client("dynamodb").query(
        TableName=_table(),
        KeyConditionExpression="pk = :k",
        ExpressionAttributeValues={":k": {"S": kid}},
        ConsistentRead=True,
    )
    return response["Items"]  # type: ignore[no-any-return]


@pytest.mark.parametrize(("valid", "invalid"), PAIRS, ids=[f"{g}+bad_{b}" for g, b in PAIRS])
def test_a_refused_patch_changes_nothing_at_all(
    service: Any, lambda_context: Any, valid: str, invalid: str
) -> None:
    kid = service.create("acme", actor="ops", scopes=["prices:read"]).record.kid
    before = _partition(kid)
    status, doc = call(
        "api_update_key", lambda_context, kid=kid, body={valid: VALID[valid], invalid: INVALID[invalid]}
    )
    assert status in (400, 422), doc
    assert _partition(kid) == before, "the key item (version included) and its audit trail are as they were"


@pytest.mark.parametrize(("valid", "invalid"), PAIRS[:: len(INVALID) - 2], ids=lambda v: str(v))
def test_a_refused_cli_update_changes_nothing_at_all(
    service: Any, capfd: pytest.CaptureFixture[str], tmp_path: Path, valid: str, invalid: str
) -> None:
    kid = service.create("acme", actor="ops").record.kid
    before = _partition(kid)
    argv = ["keys", "update", kid]
    for field, value in ((valid, VALID[valid]), (invalid, INVALID[invalid])):
        flag = "--" + {"scopes": "scope", "allow_cidrs": "allow-cidr", "deny_cidrs": "deny-cidr"}.get(
            field, field.replace("_", "-")
        )
        if field in ("public_key", "delivery_key"):
            path = tmp_path / f"{field}.pem"
            path.write_text(str(value))
            argv += [flag, str(path)]
        elif isinstance(value, list):
            for entry in value:
                argv += [flag, entry]
        elif isinstance(value, dict):
            for name, entry in value.items():
                argv += [flag, f"{name}={entry}"]
        else:
            argv += [flag, str(value)]
    code = cli.main(argv)
    _, err = capfd.readouterr()
    assert code == cli.EXIT_USAGE and err.startswith("error: ")
    assert _partition(kid) == before


def test_a_patch_of_every_field_is_one_change(service: Any, lambda_context: Any) -> None:
    kid = service.create("acme", actor="ops").record.kid
    status, doc = call("api_update_key", lambda_context, kid=kid, body=VALID)
    assert status == 200, doc
    assert doc["version"] == 2 and doc["signing_mode"] == "ed25519" and doc["scopes"] == ["orders:write"]
    audit = [i for i in _partition(kid) if i["sk"]["S"].startswith("AUDIT#")]
    assert [i["action"]["S"] for i in audit] == ["create", "update"]


def test_an_empty_patch_is_refused_and_writes_nothing(service: Any, lambda_context: Any) -> None:
    kid = service.create("acme", actor="ops").record.kid
    before = _partition(kid)
    status, doc = call("api_update_key", lambda_context, kid=kid, body={})
    assert status == 400 and doc["message"] == "nothing to update"
    assert _partition(kid) == before


def test_a_rotated_hmac_keys_cli_output_carries_its_new_signing_secret(
    service: Any, capfd: pytest.CaptureFixture[str]
) -> None:
    created = service.create("acme", actor="ops", signing="hmac")
    rotated_kid = created.record.kid
    for as_json in (True, False):
        kid = rotated_kid  # the JSON run rotates the key, the text run its successor
        code = cli.main(["keys", "rotate", kid, *(["--json"] if as_json else [])])
        out, _ = capfd.readouterr()
        assert code == 0
        if as_json:
            doc = json.loads(out)
            rotated_kid, secret, token = doc["kid"], doc["signing_secret"], doc["key"]
        else:
            lines = dict(line.split(": ", 1) for line in out.splitlines() if ": " in line)
            rotated_kid, secret, token = lines["kid"], lines["signing secret"], lines["key"]
        assert keyformat.parse(token).kid == rotated_kid
        successor = service.get(rotated_kid)
        assert successor.signing.mode == "hmac"
        assert service.kms.decrypt(rotated_kid, "signing", successor.signing.secret_ciphertext) == secret
        assert secret != created.signing_secret


# ---------------------------------------------------------------- what the audit trail records


def _dynamodb_calls() -> list[str]:
    calls: list[str] = []
    aws.client("dynamodb").meta.events.register("before-call", lambda model, **_: calls.append(model.name))
    return calls


def test_an_update_records_old_and_new_values_and_never_a_secret(service: Any, lambda_context: Any) -> None:
    issued = service.create("acme", actor="ops", name="feed", scopes=["prices:read"], signing="hmac")
    kid = issued.record.kid
    status, _ = call(
        "api_update_key",
        lambda_context,
        kid=kid,
        body={"name": "orders", "scopes": ["orders:write"], "public_key": ED25519_PEM, "rotation_days": 60},
    )
    assert status == 200
    entry = service.audit(kid)[-1]
    der = serialization.load_pem_public_key(ED25519_PEM.encode()).public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    fingerprint = "SHA256:" + base64.b64encode(hashlib.sha256(der).digest()).decode().rstrip("=")
    assert entry.action == "update" and entry.version == 2 and entry.owner_id == "acme"
    assert entry.changes["name"] == {"from": "feed", "to": "orders"}
    assert entry.changes["scopes"] == {"from": ["prices:read"], "to": ["orders:write"]}
    assert entry.changes["signing_mode"] == {"from": "hmac", "to": "ed25519"}
    assert entry.changes["public_key"] == {"from": None, "to": fingerprint}
    assert entry.changes["rotation_days"] == {"from": 90, "to": 60}
    record = service.store.get_item(kid)
    raw = json.dumps(_partition(kid)[:-1])  # every audit item
    for secret in (issued.signing_secret, record["digest"]["S"], issued.record.signing.secret_ciphertext):
        assert secret and secret not in raw
    assert "BEGIN PUBLIC KEY" not in raw and issued.token not in raw


def test_a_delivery_key_change_is_audited_by_fingerprint(service: Any) -> None:
    kid = service.create("acme", actor="ops").record.kid
    service.set_delivery_key(kid, X25519_PEM, actor="ops")
    change = service.audit(kid)[-1].changes
    assert list(change) == ["delivery_key"] and change["delivery_key"]["to"].startswith("SHA256:")


def test_an_owners_trail_is_one_query_newest_first_and_paginated(
    service: Any, lambda_context: Any, clock: Any
) -> None:
    kids = []
    for i in range(3):
        kids.append(service.create("acme-data", actor="ops", name=f"k{i}").record.kid)
        clock.advance(10)
    service.create("someone-else", actor="ops")
    service.suspend(kids[0], actor="ops", reason="checking")
    calls = _dynamodb_calls()
    status, first = call("api_owner_audit", lambda_context, query={"owner": "acme-data", "limit": "3"})
    assert status == 200, first
    assert calls == ["Query"], "a Query on the owner audit index, never a Scan"
    assert [(e["kid"], e["action"]) for e in first["entries"]] == [
        (kids[0], "suspend"),
        (kids[2], "create"),
        (kids[1], "create"),
    ]
    assert first["next_cursor"]
    status, rest = call(
        "api_owner_audit",
        lambda_context,
        query={"owner": "acme-data", "limit": "3", "cursor": first["next_cursor"]},
    )
    assert status == 200 and [(e["kid"], e["action"]) for e in rest["entries"]] == [(kids[0], "create")]
    assert not rest["next_cursor"]
    status, doc = call(
        "api_owner_audit",
        lambda_context,
        query={"owner": "someone-else", "cursor": first["next_cursor"]},
    )
    assert status == 400 and doc["message"] == "invalid pagination cursor", "a cursor is bound to its owner"


def test_the_owner_audit_event_reaches_the_handler(service: Any, lambda_context: Any) -> None:
    kid = service.create("acme-data", actor="ops").record.kid
    status, doc = call("api_owner_audit", lambda_context)
    assert status == 200 and doc["owner"] == "acme-data"
    assert [e["kid"] for e in doc["entries"]] == [kid]


def test_an_owners_trail_from_the_cli(service: Any, capfd: pytest.CaptureFixture[str]) -> None:
    kid = service.create("acme", actor="ops", scopes=["a"]).record.kid
    service.update(kid, actor="ops", scopes=["b"])
    assert cli.main(["audit", "--owner", "acme", "--json"]) == 0
    doc = json.loads(capfd.readouterr().out)
    assert [e["action"] for e in doc["entries"]] == ["update", "create"]
    assert doc["entries"][0]["changes"] == {"scopes": {"from": ["a"], "to": ["b"]}}
    assert cli.main(["audit", "--owner", "acme", "--limit", "1"]) == 0
    out = capfd.readouterr().out
    assert "scopes a -> b" in out and "more: --cursor " in out
    assert cli.main(["audit", "--owner", "not an owner"]) == cli.EXIT_USAGE
