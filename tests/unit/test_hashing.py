from __future__ import annotations

import json

import pytest
from keysentry import keyformat
from keysentry.errors import ConfigurationError
from keysentry.hashing import Peppers

P1 = "a" * 64
P2 = "b" * 64


def peppers(current: str = "1") -> Peppers:
    return Peppers.from_secret_string(json.dumps({"current": current, "1": P1, "2": P2}))


def test_digest_is_hmac_sha256_of_the_token_under_the_pepper() -> None:
    import hashlib
    import hmac

    token = keyformat.generate().token
    assert peppers().digest(token) == hmac.new(P1.encode(), token.encode(), hashlib.sha256).hexdigest()


def test_verify_accepts_the_token_and_rejects_any_other() -> None:
    token, other = keyformat.generate().token, keyformat.generate().token
    p = peppers()
    digest = p.digest(token)
    assert p.verify(token, digest, "1")
    assert not p.verify(other, digest, "1")
    assert not p.verify(token, digest, "2")


def test_a_key_hashed_under_an_older_pepper_still_verifies_and_needs_a_rehash() -> None:
    token = keyformat.generate().token
    old_digest = peppers("1").digest(token)
    rotated = peppers("2")
    assert rotated.verify(token, old_digest, "1")
    assert rotated.needs_rehash("1")
    assert not rotated.needs_rehash("2")
    assert rotated.digest(token) != old_digest


def test_an_unknown_pepper_version_never_verifies() -> None:
    token = keyformat.generate().token
    assert not peppers().verify(token, peppers().digest(token), "9")


@pytest.mark.parametrize(
    "secret",
    [
        "not json",
        json.dumps(["current"]),
        json.dumps({"1": P1}),
        json.dumps({"current": "2", "1": P1}),
        json.dumps({"current": "1", "1": "short"}),
    ],
)
def test_a_malformed_pepper_secret_is_a_configuration_error(secret: str) -> None:
    with pytest.raises(ConfigurationError) as raised:
        Peppers.from_secret_string(secret)
    assert P1 not in str(raised.value)


def test_repr_never_shows_the_pepper() -> None:
    assert P1 not in repr(peppers())
    assert P1 not in str(peppers())
