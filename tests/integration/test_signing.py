"""Signed requests (KS2) through the authorizer under moto: hmac, Ed25519, RSA-PSS; replay protection."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from typing import Any

import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ed25519, padding, rsa
from keysentry import cli
from keysentry.authorizer import Authorizer
from keysentry.client import sign
from keysentry.errors import ValidationError
from keysentry.model import Status
from keysentry.peppers import PepperSource
from keysentry.routes import RouteTable
from keysentry.signing import EMPTY_BODY_SHA256, canonical_query, string_to_sign
from keysentry.store import KeyStore

from functions.authorizer import handler
from functions.sample_backend import handler as backend
from tests.conftest import FakeClock, all_items
from tests.integration.authz_helpers import effect, event

ROUTES = '{"GET /v1/prices/*": "prices:read", "POST /v1/orders": "orders:write"}'
BODY = b'{"symbol": "BTC", "side": "buy", "qty": "0.5"}'


class MsClock(FakeClock):
    """The test clock (whole seconds, as the store keeps time) plus a millisecond part for signing."""

    ms: int = 0

    def precise(self) -> float:
        return self.now + self.ms / 1000


@pytest.fixture
def clock() -> MsClock:
    return MsClock()


@pytest.fixture
def authorizer(stack: Any, clock: MsClock, monkeypatch: pytest.MonkeyPatch) -> Authorizer:
    built = Authorizer(
        KeyStore(stack.refs["KeysTable"]),
        PepperSource(stack.refs["PepperSecret"]),
        RouteTable.from_json(ROUTES),
        cache_ttl=30,
        clock=clock.precise,
        kms_key_id=stack.refs["SigningSecretsKey"],
        nonce_table=stack.refs["NonceTable"],
    )
    monkeypatch.setattr(handler, "_authorizer", built)
    return built


def now_ms(clock: MsClock) -> int:
    return clock.now * 1000 + clock.ms


def order_event(
    headers: dict[str, str], *, query: dict[str, list[str]] | None = None, method: str = "POST"
) -> dict[str, Any]:
    doc = event("authorizer_rest_request_wrong_scope")  # POST /v1/orders
    doc["httpMethod"] = method
    doc["methodArn"] = doc["methodArn"].replace("/POST/", f"/{method}/")
    doc["headers"] = dict(headers)
    doc["multiValueHeaders"] = {k: [v] for k, v in headers.items()}
    doc["multiValueQueryStringParameters"] = query or {}
    doc["queryStringParameters"] = {k: v[-1] for k, v in (query or {}).items()}
    return doc


def decide(doc: dict[str, Any], lambda_context: Any) -> str:
    try:
        return effect(handler.lambda_handler(doc, lambda_context))
    except Exception as error:
        return str(error)


def hmac_key(service: Any) -> Any:
    issued = service.create("acme", actor="ops", scopes=["orders:write"], signing="hmac")
    assert issued.signing_secret and len(issued.signing_secret) >= 43
    return issued


QUERY = {"account": ["main"], "tag": ["b", "a b"]}


def signed_headers(issued: Any, clock: MsClock, **overrides: Any) -> dict[str, str]:
    parts: dict[str, Any] = {"method": "POST", "path": "/v1/orders", "query": QUERY, "body": BODY}
    parts.update(overrides)
    return sign(
        parts["method"],
        parts["path"],
        parts["query"],
        parts["body"],
        key=issued.token,
        secret=parts.get("secret", issued.signing_secret),
        timestamp_ms=parts.get("timestamp_ms", now_ms(clock)),
        nonce=parts.get("nonce"),
    )


def test_a_valid_hmac_signature_is_allowed(
    service: Any, authorizer: Authorizer, clock: MsClock, lambda_context: Any
) -> None:
    issued = hmac_key(service)
    assert decide(order_event(signed_headers(issued, clock), query=QUERY), lambda_context) == "Allow"


@pytest.mark.parametrize(
    "tamper",
    ["method", "path", "query", "body", "timestamp", "nonce", "signature", "algorithm"],
)
def test_each_tampered_part_is_denied(
    service: Any, authorizer: Authorizer, clock: MsClock, lambda_context: Any, tamper: str
) -> None:
    issued = hmac_key(service)
    headers = signed_headers(issued, clock)
    query, method = QUERY, "POST"
    if tamper == "method":
        method = "PUT"
    elif tamper == "path":
        headers = signed_headers(issued, clock, path="/v1/orders/extra")
    elif tamper == "query":
        query = {"account": ["other"], "tag": ["b", "a b"]}
    elif tamper == "body":
        headers["X-Ks-Content-Sha256"] = hashlib.sha256(b'{"qty": "500"}').hexdigest()
    elif tamper == "timestamp":
        headers["X-Ks-Timestamp"] = str(int(headers["X-Ks-Timestamp"]) - 1)
    elif tamper == "nonce":
        headers["X-Ks-Nonce"] = "A" * 24
    elif tamper == "signature":
        raw = bytearray(base64.b64decode(headers["X-Ks-Signature"]))
        raw[0] ^= 1
        headers["X-Ks-Signature"] = base64.b64encode(bytes(raw)).decode()
    elif tamper == "algorithm":
        headers["X-Ks-Algorithm"] = "KS2-HMAC-MD5"
    route = RouteTable.from_json('{"ANY /v1/orders": "orders:write", "ANY /v1/orders/*": "orders:write"}')
    authorizer.routes = route
    assert decide(order_event(headers, query=query, method=method), lambda_context) == "Deny"


def test_a_replayed_nonce_is_denied(
    service: Any, authorizer: Authorizer, clock: MsClock, lambda_context: Any
) -> None:
    issued = hmac_key(service)
    headers = signed_headers(issued, clock)
    assert decide(order_event(headers, query=QUERY), lambda_context) == "Allow"
    clock.ms += 200
    assert decide(order_event(headers, query=QUERY), lambda_context) == "Deny"


@pytest.mark.parametrize(
    "offset_ms, expected",
    [(-5_000, "Allow"), (-5_001, "Deny"), (1_000, "Allow"), (1_001, "Deny"), (-60_000, "Deny")],
)
def test_clock_skew_limits_both_ways(
    service: Any, authorizer: Authorizer, clock: MsClock, lambda_context: Any, offset_ms: int, expected: str
) -> None:
    issued = hmac_key(service)
    headers = signed_headers(issued, clock, timestamp_ms=now_ms(clock) + offset_ms)
    assert decide(order_event(headers, query=QUERY), lambda_context) == expected


@pytest.mark.parametrize(
    "drop", ["X-Ks-Signature", "X-Ks-Nonce", "X-Ks-Timestamp", "X-Ks-Content-Sha256", "X-Ks-Algorithm"]
)
def test_a_missing_signature_header_is_denied_never_an_error(
    service: Any, authorizer: Authorizer, clock: MsClock, lambda_context: Any, drop: str
) -> None:
    issued = hmac_key(service)
    headers = signed_headers(issued, clock)
    del headers[drop]
    assert decide(order_event(headers, query=QUERY), lambda_context) == "Deny"


def test_a_bearer_request_for_a_signed_key_is_denied(
    service: Any, authorizer: Authorizer, lambda_context: Any
) -> None:
    issued = hmac_key(service)
    assert decide(order_event({"X-Api-Key": issued.token}), lambda_context) == "Deny"


def test_the_stored_hmac_secret_is_ciphertext(service: Any, stack: Any) -> None:
    issued = hmac_key(service)
    stored = json.dumps([all_items(stack.refs[t]) for t in ("KeysTable", "NonceTable", "IdempotencyTable")])
    assert issued.signing_secret not in stored
    assert service.get(issued.record.kid).signing.secret_ciphertext


def test_a_rotated_hmac_keys_successor_has_a_new_secret(
    service: Any, authorizer: Authorizer, clock: MsClock, lambda_context: Any
) -> None:
    issued = hmac_key(service)
    successor = service.rotate(issued.record.kid, actor="ops")
    assert successor.signing_secret and successor.signing_secret != issued.signing_secret
    good = signed_headers(successor, clock)
    assert decide(order_event(good, query=QUERY), lambda_context) == "Allow"
    old_secret = signed_headers(successor, clock, secret=issued.signing_secret)
    assert decide(order_event(old_secret, query=QUERY), lambda_context) == "Deny"


def test_the_scheme_matches_an_independent_hmac(
    service: Any, authorizer: Authorizer, clock: MsClock, lambda_context: Any
) -> None:
    """Computed with the standard library from the documented string to sign, not with the helper."""
    issued = hmac_key(service)
    ts, nonce = now_ms(clock), "independent-nonce-0001"
    digest = hashlib.sha256(BODY).hexdigest()
    message = "\n".join(
        ["KS2-HMAC-SHA256", str(ts), nonce, "POST", "/v1/orders", "account=main&tag=b&tag=a%20b", "", digest]
    )
    signature = base64.b64encode(
        hmac.new(issued.signing_secret.encode(), message.encode(), hashlib.sha256).digest()
    )
    headers = {
        "X-Api-Key": issued.token,
        "X-Ks-Algorithm": "KS2-HMAC-SHA256",
        "X-Ks-Timestamp": str(ts),
        "X-Ks-Nonce": nonce,
        "X-Ks-Content-Sha256": digest,
        "X-Ks-Signature": signature.decode(),
    }
    assert decide(order_event(headers, query=QUERY), lambda_context) == "Allow"
    assert headers == sign(
        "POST",
        "/v1/orders",
        QUERY,
        BODY,
        key=issued.token,
        secret=issued.signing_secret,
        timestamp_ms=ts,
        nonce=nonce,
    )


def _pem(public_key: Any) -> str:
    return public_key.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    ).decode()


def test_an_ed25519_signature_made_outside_the_helper_verifies(
    service: Any, authorizer: Authorizer, clock: MsClock, lambda_context: Any
) -> None:
    private = ed25519.Ed25519PrivateKey.generate()
    issued = service.create(
        "acme",
        actor="ops",
        scopes=["orders:write"],
        signing="ed25519",
        public_key=_pem(private.public_key()),
    )
    ts, nonce = now_ms(clock), "ed25519-nonce-000001"
    message = string_to_sign(
        "KS2-ED25519", ts, nonce, "POST", "/v1/orders", canonical_query(QUERY), "", EMPTY_BODY_SHA256
    )
    headers = {
        "X-Api-Key": issued.token,
        "X-Ks-Algorithm": "KS2-ED25519",
        "X-Ks-Timestamp": str(ts),
        "X-Ks-Nonce": nonce,
        "X-Ks-Content-Sha256": EMPTY_BODY_SHA256,
        "X-Ks-Signature": base64.b64encode(private.sign(message.encode())).decode(),
    }
    assert decide(order_event(headers, query=QUERY), lambda_context) == "Allow"
    forged = sign(
        "POST",
        "/v1/orders",
        QUERY,
        key=issued.token,
        private_key=ed25519.Ed25519PrivateKey.generate(),
        timestamp_ms=ts,
    )
    assert decide(order_event(forged, query=QUERY), lambda_context) == "Deny"


def test_rsa_pss_signatures(
    service: Any, authorizer: Authorizer, clock: MsClock, lambda_context: Any
) -> None:
    private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    issued = service.create(
        "acme", actor="ops", scopes=["orders:write"], signing="rsa", public_key=_pem(private.public_key())
    )
    headers = sign(
        "POST", "/v1/orders", QUERY, BODY, key=issued.token, private_key=private, timestamp_ms=now_ms(clock)
    )
    assert decide(order_event(headers, query=QUERY), lambda_context) == "Allow"
    ts, nonce = now_ms(clock), "rsa-independent-0001"
    message = string_to_sign(
        "KS2-RSA-PSS-SHA256", ts, nonce, "POST", "/v1/orders", canonical_query(QUERY), "", EMPTY_BODY_SHA256
    )
    pss = padding.PSS(mgf=padding.MGF1(hashes.SHA256()), salt_length=32)
    manual = {
        "X-Api-Key": issued.token,
        "X-Ks-Algorithm": "KS2-RSA-PSS-SHA256",
        "X-Ks-Timestamp": str(ts),
        "X-Ks-Nonce": nonce,
        "X-Ks-Content-Sha256": EMPTY_BODY_SHA256,
        "X-Ks-Signature": base64.b64encode(private.sign(message.encode(), pss, hashes.SHA256())).decode(),
    }
    assert decide(order_event(manual, query=QUERY), lambda_context) == "Allow"
    manual["X-Ks-Nonce"] = "rsa-independent-0002"
    assert decide(order_event(manual, query=QUERY), lambda_context) == "Deny"


@pytest.mark.parametrize(
    "pem, message",
    [
        ("not a key", "PEM-encoded"),
        (
            _pem(rsa.generate_private_key(public_exponent=65537, key_size=1024).public_key()),  # noqa: S505 - the weak key it must refuse
            "at least 2048 bits",
        ),
    ],
)
def test_malformed_or_weak_public_keys_are_refused(service: Any, pem: str, message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        service.create("acme", actor="ops", signing="rsa", public_key=pem)


def test_a_public_key_of_the_wrong_type_is_refused(service: Any) -> None:
    pem = _pem(ed25519.Ed25519PrivateKey.generate().public_key())
    with pytest.raises(ValidationError, match="not rsa"):
        service.create("acme", actor="ops", signing="rsa", public_key=pem)


def test_http_api_signed_request_uses_the_raw_query(
    service: Any, authorizer: Authorizer, clock: MsClock, lambda_context: Any
) -> None:
    authorizer.routes = RouteTable.from_json('{"GET /v1/prices/*": "prices:read"}')
    issued = service.create("acme", actor="ops", scopes=["prices:read"], signing="hmac")
    doc = event("authorizer_http_v2_simple")
    headers = sign(
        "GET",
        "/v1/prices/BTC",
        "currency=usd",
        key=issued.token,
        secret=issued.signing_secret,
        timestamp_ms=now_ms(clock),
    )
    doc["headers"] = {k.lower(): v for k, v in headers.items()}
    assert handler.lambda_handler(doc, lambda_context)["isAuthorized"] is True


def test_the_backend_refuses_a_body_that_does_not_match_its_signed_digest(lambda_context: Any) -> None:
    digest = hashlib.sha256(BODY).hexdigest()
    proxy = {
        "path": "/v1/orders",
        "headers": {"X-Ks-Content-Sha256": digest},
        "body": BODY.decode(),
        "requestContext": {"authorizer": {"key_id": "k", "signing": "hmac"}},
    }
    assert backend.lambda_handler(proxy, lambda_context)["statusCode"] == 200
    proxy["body"] = '{"symbol": "BTC", "side": "buy", "qty": "500"}'
    assert backend.lambda_handler(proxy, lambda_context)["statusCode"] == 400
    proxy["requestContext"]["authorizer"]["signing"] = "bearer"
    assert backend.lambda_handler(proxy, lambda_context)["statusCode"] == 200


def test_signing_from_the_command_line(
    stack: Any, tmp_path: Any, capfd: pytest.CaptureFixture[str], service: Any
) -> None:
    capfd.readouterr()
    assert cli.main(["keys", "create", "--owner", "acme", "--no-scopes", "--signing", "hmac", "--json"]) == 0
    created = json.loads(capfd.readouterr().out)
    assert created["signing_mode"] == "hmac" and len(created["signing_secret"]) == 43
    pem_file = tmp_path / "consumer.pem"
    pem_file.write_text(_pem(ed25519.Ed25519PrivateKey.generate().public_key()))
    assert (
        cli.main(
            [
                "keys",
                "create",
                "--owner",
                "acme",
                "--no-scopes",
                "--signing",
                "ed25519",
                "--public-key",
                str(pem_file),
                "--json",
            ]
        )
        == 0
    )
    assert json.loads(capfd.readouterr().out)["signing_mode"] == "ed25519"
    assert cli.main(["keys", "create", "--owner", "acme", "--no-scopes", "--json"]) == 0
    kid = json.loads(capfd.readouterr().out)["kid"]
    assert cli.main(["keys", "set-public-key", kid, str(pem_file)]) == 0
    assert service.get(kid).signing.mode == "ed25519"
    assert cli.main(["keys", "set-public-key", kid, str(tmp_path / "missing.pem")]) == 2
    assert "cannot read the public key file" in capfd.readouterr().err
    assert service.get(kid).status is Status.ACTIVE
