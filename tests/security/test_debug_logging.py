"""Promise: turning every log level up to DEBUG (Lambda's application log level, POWERTOOLS_DEBUG)
never writes a key, a signing secret or the pepper to a log, in plain text or base64.

The scenarios run through the real handlers: create, rotate an hmac key, the scheduled rotation
and one-time pickup of its successor, a fresh pepper read, and an authorizer decision that
decrypts a signing secret. Every log record of every logger is captured, with its arguments and
extra fields, and so is everything written to stdout and stderr.
"""

from __future__ import annotations

import base64
import binascii
import json
import logging
import re
import sys
import time
from collections.abc import Iterator
from typing import Any

import pytest
from keysentry import aws
from keysentry.aws import SDK_LOGGERS
from keysentry.client import sign

from functions.authorizer import handler as authorizer_handler
from tests.conftest import FakeClock
from tests.integration.api_helpers import call
from tests.integration.authz_helpers import effect, event


class Everything(logging.Handler):
    """Every record, formatted with its arguments, extra fields and traceback."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        text = f"{record.name} {record.levelname} {record.getMessage()} {record.__dict__!r}"
        if record.exc_info:
            text += logging.Formatter().formatException(record.exc_info)
        self.lines.append(text)


@pytest.fixture
def debug_everywhere(
    stack: Any, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> Iterator[Everything]:
    """Root at DEBUG with a handler (as Lambda's runtime sets AWS_LAMBDA_LOG_LEVEL), the handlers'
    Powertools loggers at DEBUG, and POWERTOOLS_DEBUG's package logger."""
    from aws_lambda_powertools.package_logger import set_package_logger_handler

    from functions.api import handler as api_handler

    monkeypatch.setenv("AWS_LAMBDA_LOG_LEVEL", "DEBUG")
    monkeypatch.setenv("POWERTOOLS_DEBUG", "true")
    monkeypatch.setenv("POWERTOOLS_LOG_LEVEL", "DEBUG")
    variables = stack.template["Resources"]["AuthorizerFunction"]["Properties"]["Environment"]["Variables"]
    for name, value in stack.environment(variables).items():
        monkeypatch.setenv(name, value)
    monkeypatch.setattr(authorizer_handler, "_authorizer", None)

    capture = Everything()
    powertools = logging.getLogger("aws_lambda_powertools")
    saved = {
        "root": logging.root.level,
        "powertools": (powertools.level, list(powertools.handlers), powertools.propagate),
        "loggers": [(lg, lg.level) for lg in (authorizer_handler.logger, api_handler.logger)],
    }
    caplog.set_level(logging.DEBUG)
    logging.root.addHandler(capture)
    set_package_logger_handler()  # what importing Powertools does when POWERTOOLS_DEBUG is set
    powertools.addHandler(capture)
    for lg, _ in saved["loggers"]:
        lg.setLevel(logging.DEBUG)
        lg.addHandler(capture)
    try:
        yield capture
    finally:
        logging.root.removeHandler(capture)
        for lg, level in saved["loggers"]:
            lg.removeHandler(capture)
            lg.setLevel(level)
        level, handlers, propagate = saved["powertools"]
        powertools.handlers[:] = handlers
        powertools.setLevel(level)
        powertools.propagate = propagate


_B64 = re.compile(r"[A-Za-z0-9+/_-]{16,}={0,2}")


def decoded(text: str) -> str:
    """The text plus whatever its base64-looking runs decode to (KMS plaintexts travel as base64)."""
    found = [text]
    for run in _B64.findall(text):
        for candidate in (run, run[1:], run[2:], run[3:]):
            padded = candidate + "=" * (-len(candidate) % 4)
            try:
                found.append(
                    base64.b64decode(padded, altchars=b"-_" if "-" in run or "_" in run else None).decode(
                        "latin-1"
                    )
                )
            except (binascii.Error, ValueError):
                continue
    return "\n".join(found)


def test_debug_logging_everywhere_leaks_no_key_signing_secret_or_pepper(
    debug_everywhere: Everything,
    leak_guard: list[str],
    api_service: Any,
    stack: Any,
    clock: FakeClock,
    lambda_context: Any,
    capfd: pytest.CaptureFixture[str],
) -> None:
    assert all(logging.getLogger(name).getEffectiveLevel() >= logging.WARNING for name in SDK_LOGGERS)
    sm = aws.client("secretsmanager")
    pepper_doc = json.loads(sm.get_secret_value(SecretId=stack.refs["PepperSecret"])["SecretString"])
    secrets = [v for k, v in pepper_doc.items() if k != "current"]
    api_service.peppers._peppers = None  # a fresh container reads the pepper

    # create an hmac key, then rotate it: the successor's signing secret is KMS-encrypted
    status, created = call(
        "api_create_key",
        lambda_context,
        body={"owner": "acme", "scopes": ["orders:write"], "signing": "hmac"},
        headers={"Idempotency-Key": "create-1"},
    )
    assert status == 200, created
    secrets.append(created["signing_secret"])
    status, rotated = call(
        "api_rotate_key", lambda_context, kid=created["kid"], headers={"Idempotency-Key": "rotate-1"}
    )
    assert status == 200, rotated
    secrets.append(rotated["signing_secret"])

    # a scheduled rotation keeps the successor KMS-encrypted for one pickup by the key itself
    from keysentry.rotation import RotationJob

    status, scheduled = call(
        "api_create_key",
        lambda_context,
        body={"owner": "acme", "scopes": ["orders:write"], "signing": "hmac", "rotation_days": 30},
        headers={"Idempotency-Key": "create-2"},
    )
    assert status == 200, scheduled
    secrets.append(scheduled["signing_secret"])
    clock.advance(days=30)
    RotationJob(api_service).run()
    status, picked = call("api_self_successor", lambda_context, kid=scheduled["kid"])
    assert status == 200, picked
    secrets.append(picked["signing_secret"])

    # an authorizer decision: GetItem, the pepper, the KMS decrypt of the signing secret, the nonce
    headers = sign(
        "POST",
        "/v1/orders",
        None,
        b"{}",
        key=rotated["key"],
        secret=rotated["signing_secret"],
        timestamp_ms=int(time.time() * 1000),
    )
    doc = event("authorizer_rest_request_wrong_scope")  # POST /v1/orders on the prod stage
    doc["headers"] = dict(headers)
    doc["multiValueHeaders"] = {k: [v] for k, v in headers.items()}
    assert effect(authorizer_handler.lambda_handler(doc, lambda_context)) == "Allow"

    out, err = capfd.readouterr()
    text = decoded("\n".join([*debug_everywhere.lines, out, err]))
    assert len(debug_everywhere.lines) > 10, "the capture saw the handlers' DEBUG logging"
    tokens = [t[-(50 + 6) : -6] for t in leak_guard]  # each key's secret part
    assert len(tokens) >= 4 and len(secrets) >= 5
    leaked = [kind for kind, values in (("key", tokens), ("secret", secrets)) for v in values if v in text]
    assert not leaked, f"found in DEBUG logs: {sorted(set(leaked))}"
    print(out, end="")  # the leak guard reads stdout as well
    print(err, end="", file=sys.stderr)


def test_a_key_pasted_into_a_management_request_body_never_reaches_a_debug_log(
    debug_everywhere: Everything,
    leak_guard: list[str],
    api_service: Any,
    lambda_context: Any,
    capfd: pytest.CaptureFixture[str],
) -> None:
    """A key (or anything secret) an operator pastes into a body field, with every logger at DEBUG,
    Powertools' resolver's own loggers included: the request is served, its body is not logged."""
    for name in (
        "aws_lambda_powertools.event_handler.api_gateway",
        "aws_lambda_powertools.event_handler.middlewares.async_utils",
        "aws_lambda_powertools.event_handler.middlewares.openapi_validation",
    ):
        logging.getLogger(name).setLevel(logging.DEBUG)
    status, first = call(
        "api_create_key",
        lambda_context,
        body={"owner": "acme", "scopes": ["prices:read"]},
        headers={"Idempotency-Key": "create-pasted-1"},
    )
    assert status == 200, first
    pasted = first["key"]
    # the route runs (a key of another owner's: refused there, so nothing of the body is stored)
    status, refused = call(
        "api_update_key", lambda_context, kid="unknownkid00", body={"metadata": {"note": pasted}}
    )
    assert status == 404, refused
    out, err = capfd.readouterr()
    text = decoded("\n".join([*debug_everywhere.lines, out, err]))
    assert any("aws_lambda_powertools" in line for line in debug_everywhere.lines), "the resolver logged"
    assert pasted[-(50 + 6) : -6] not in text
    print(out, end="")
    print(err, end="", file=sys.stderr)
