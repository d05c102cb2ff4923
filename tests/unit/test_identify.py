"""Which key a token is: one function for the authorizer and the leak endpoint, with no I/O of its own."""

from __future__ import annotations

import json
import subprocess
import sys

from keysentry import keyformat, model
from keysentry.hashing import Peppers
from keysentry.identify import Refusal, identify_token
from keysentry.model import KeyRecord

from tests.conftest import T0

PEPPERS = Peppers.from_secret_string(json.dumps({"current": "1", "1": "a" * 64}))


def stored(token: str) -> KeyRecord:
    kid = keyformat.parse(token).kid
    return model.new_record(
        kid=kid,
        owner_id="acme",
        env="live",
        digest=PEPPERS.digest(token),
        pepper_version="1",
        now=T0,
        actor="t",
    )


def test_a_token_is_its_keys_and_no_other() -> None:
    token = keyformat.generate().token
    record = stored(token)
    found = identify_token(token, {record.kid: record}.get, lambda version: PEPPERS)
    assert found.record is record and found.refusal is None and found.kid == record.kid


def test_a_malformed_token_is_refused_before_any_lookup() -> None:
    def lookup(kid: str) -> KeyRecord | None:
        raise AssertionError("no lookup for a malformed token")

    found = identify_token("ks_live_" + "A" * 50, lookup, lambda version: PEPPERS)
    assert found.refusal is Refusal.MALFORMED and found.kid is None and found.record is None


def test_an_unknown_kid_and_a_wrong_secret_are_told_apart() -> None:
    token = keyformat.generate().token
    record = stored(token)
    assert identify_token(token, {}.get, lambda version: PEPPERS).refusal is Refusal.UNKNOWN
    forged = keyformat.generate(kid=record.kid).token  # same kid, another secret
    found = identify_token(forged, {record.kid: record}.get, lambda version: PEPPERS)
    assert found.refusal is Refusal.WRONG_DIGEST and found.kid == record.kid and found.record is None


def test_identifying_imports_nothing_heavy() -> None:
    code = (
        "import sys, keysentry.identify; "
        "print([m for m in ('pydantic', 'cryptography', 'boto3', 'botocore', 'aws_lambda_powertools', "
        "'keysentry.service') if m in sys.modules])"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)  # noqa: S603
    assert out.stdout.strip() == "[]"
