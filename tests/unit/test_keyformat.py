from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from keysentry import keyformat
from keysentry.errors import MalformedKeyError


def test_generated_key_has_the_documented_shape() -> None:
    parsed = keyformat.generate("live")
    assert parsed.token.startswith(f"ks_live_{parsed.kid}")
    assert len(parsed.token) <= keyformat.MAX_TOKEN_LEN
    assert all(c.isalnum() or c == "_" for c in parsed.token)
    assert keyformat.SECRET_LEN * math.log2(62) >= 160


def test_repr_never_shows_the_plaintext() -> None:
    parsed = keyformat.generate("test")
    assert parsed.token not in repr(parsed)
    assert parsed.kid in repr(parsed)


@settings(max_examples=200)
@given(env=st.sampled_from(keyformat.ENVS))
def test_every_generated_key_parses_back(env: str) -> None:
    minted = keyformat.generate(env)
    assert keyformat.parse(minted.token) == minted


def _token(env: str, kid: str, secret: str) -> str:
    body = f"ks_{env}_{kid}{secret}"
    return body + keyformat.checksum(body)


tokens = st.builds(
    _token,
    st.sampled_from(keyformat.ENVS),
    st.text(keyformat.ALPHABET, min_size=keyformat.KID_LEN, max_size=keyformat.KID_LEN),
    st.text(keyformat.ALPHABET, min_size=keyformat.SECRET_LEN, max_size=keyformat.SECRET_LEN),
)


@settings(max_examples=300)
@given(token=tokens, data=st.data())
def test_every_single_character_change_is_rejected(token: str, data: st.DataObject) -> None:
    keyformat.parse(token)
    position = data.draw(st.integers(0, len(token) - 1))
    replacement = data.draw(st.sampled_from(keyformat.ALPHABET + "_").filter(lambda c: c != token[position]))
    changed = token[:position] + replacement + token[position + 1 :]
    with pytest.raises(MalformedKeyError):
        keyformat.parse(changed)


def test_every_single_character_change_is_rejected_exhaustively_for_one_key() -> None:
    token = keyformat.generate().token
    for position in range(len(token)):
        for replacement in keyformat.ALPHABET + "_":
            if replacement == token[position]:
                continue
            with pytest.raises(MalformedKeyError):
                keyformat.parse(token[:position] + replacement + token[position + 1 :])


@pytest.mark.parametrize(
    "mutate, reason",
    [
        (lambda t: t.replace("ks_", "sk_", 1), "format"),
        (lambda t: t.replace("_live_", "_prod_", 1), "format"),
        (lambda t: t[:-1], "length"),
        (lambda t: t + "A", "length"),
        (lambda t: t[:20] + "-" + t[21:], "format"),
        (lambda t: t[:20] + "é" + t[21:], "non-ASCII"),
        (lambda t: t[:20] + "\ud800" + t[21:], "non-ASCII"),
        (lambda t: t[:20] + "\x00" + t[21:], "format"),
        (lambda t: t.upper(), "format"),
        (lambda t: " " + t[1:], "format"),
    ],
)
def test_malformed_tokens_are_rejected_with_a_typed_error(mutate, reason) -> None:  # type: ignore[no-untyped-def]
    token = keyformat.generate().token
    with pytest.raises(MalformedKeyError) as raised:
        keyformat.parse(mutate(token))
    assert token not in str(raised.value)


@pytest.mark.parametrize("value", [None, 42, b"ks_live_x", ["ks"], ""])
def test_non_strings_are_rejected(value: object) -> None:
    with pytest.raises(MalformedKeyError):
        keyformat.parse(value)


@settings(max_examples=500)
@given(st.text(max_size=200) | st.from_regex(r"\Aks_(live|test)_[0-9A-Za-z]{50}\Z"))
def test_arbitrary_text_only_ever_raises_malformed(text: str) -> None:
    try:
        parsed = keyformat.parse(text)
    except MalformedKeyError:
        return
    assert parsed.token == text  # a 1-in-2^32 checksum collision is still a well-formed token


@given(st.integers(0, 62**6 - 1))
def test_base62_round_trips(value: int) -> None:
    assert keyformat.decode_base62(keyformat.encode_base62(value, 6)) == value


def test_kid_check() -> None:
    assert keyformat.is_kid(keyformat.new_kid())
    assert not keyformat.is_kid("short")
    assert not keyformat.is_kid("abc-def-ghij")
    assert not keyformat.is_kid(None)


def test_the_documented_signing_example_is_exact() -> None:
    """docs/signing.md's worked example, recomputed: the document cannot drift from the code."""
    import base64
    import hashlib
    import hmac

    from tests.conftest import ROOT

    doc = (ROOT / "docs" / "signing.md").read_text()
    body = b'{"symbol":"BTC","side":"buy","qty":"0.5"}'
    message = "\n".join(
        [
            "KS2-HMAC-SHA256",
            "1795824000123",
            "n0nce-7f3a9c2e41d8b6a0",
            "POST",
            "/v1/orders",
            "account=main&tag=b&tag=a%20b",
            "application/json",
            hashlib.sha256(body).hexdigest(),
        ]
    )
    secret = b"kss0EXAMPLE0SECRET0000000000000000000000000"
    signature = base64.b64encode(hmac.new(secret, message.encode(), hashlib.sha256).digest()).decode()
    assert f"```\n{message}\n```" in doc
    assert f"Signature: `{signature}`" in doc
    assert "query         tag=b&account=main&tag=a%20b\n" in doc
    assert "content type  application/json\n" in doc
    assert f"Body digest: `{hashlib.sha256(body).hexdigest()}`" in doc
    from keysentry.client import query_string, sign

    headers = sign(
        "POST",
        "/v1/orders",
        "tag=b&account=main&tag=a%20b",
        body,
        key="ks_test_EXAMPLEKEY00000000000000000000000000000000001gKwCs",
        secret=secret.decode(),
        content_type="application/json",
        timestamp_ms=1795824000123,
        nonce="n0nce-7f3a9c2e41d8b6a0",
    )
    assert headers["X-Ks-Signature"] == signature
    assert headers["Content-Type"] == "application/json"
    assert f"must be sent in its canonical form,\n`{query_string('tag=b&account=main&tag=a%20b')}`" in doc
