"""Promises: whatever botocore raises on the authorizer's path, the request fails closed, and the
failure is logged and counted (the decision log line and the Decision metric the alarm reads).

Every exception class in ``botocore.exceptions`` is raised, through the real clients' call path
(a ``before-call`` hook), at each AWS call the authorizer makes: the key's GetItem, the KMS
decrypt of an hmac signing secret, the Secrets Manager read of the pepper and the nonce claim.
"""

from __future__ import annotations

import inspect
import json
import string
from typing import Any

import botocore.exceptions
import pytest
from keysentry import aws
from keysentry.authorizer import Authorizer
from keysentry.client import sign
from keysentry.peppers import PepperSource
from keysentry.routes import RouteTable
from keysentry.store import KeyStore

from functions.authorizer import handler
from tests.conftest import FakeClock
from tests.integration.authz_helpers import effect, emitted_metrics, event

ROUTES = '{"GET /v1/prices/*": "prices:read", "POST /v1/orders": "orders:write"}'


def every_botocore_exception() -> list[BaseException]:
    """One instance of each exception class botocore defines, built from its message template."""
    made: list[BaseException] = []
    for _, cls in sorted(vars(botocore.exceptions).items()):
        if not (
            inspect.isclass(cls)
            and issubclass(cls, BaseException)
            and cls.__module__ == "botocore.exceptions"
        ):
            continue
        params = inspect.signature(cls.__init__).parameters
        kwargs: dict[str, Any]
        if "error_response" in params:  # ClientError and its kin
            kwargs = {
                "error_response": {"Error": {"Code": "InternalServerError", "Message": "injected"}},
                "operation_name": "Injected",
            }
        elif "last_response" in params:  # WaiterError
            kwargs = {"name": "injected", "reason": "injected", "last_response": {}}
        else:  # BotoCoreError and the HTTP errors: the fields of their message template
            fields = (f for _, f, _, _ in string.Formatter().parse(getattr(cls, "fmt", "")) if f)
            kwargs = {f.split(".")[0].split("[")[0]: "injected" for f in fields}
        error = cls(**kwargs)
        str(error)  # the message formats
        made.append(error)
    return made


EXCEPTIONS = every_botocore_exception()


def test_every_botocore_exception_class_is_covered() -> None:
    names = {type(e).__name__ for e in EXCEPTIONS}
    assert {"ReadTimeoutError", "ConnectionClosedError", "EndpointConnectionError", "ClientError"} <= names
    assert len(EXCEPTIONS) >= 90  # botocore defines about a hundred


@pytest.fixture
def authorizer(stack: Any, clock: FakeClock, monkeypatch: pytest.MonkeyPatch) -> Authorizer:
    built = Authorizer(
        KeyStore(stack.refs["KeysTable"]),
        PepperSource(stack.refs["PepperSecret"]),
        RouteTable.from_json(ROUTES),
        cache_ttl=30,
        clock=clock,
        kms_key_id=stack.refs["SigningSecretsKey"],
        nonce_table=stack.refs["NonceTable"],
    )
    monkeypatch.setattr(handler, "_authorizer", built)
    return built


def signed_order(issued: Any, clock: FakeClock) -> dict[str, Any]:
    headers = sign(
        "POST",
        "/v1/orders",
        None,
        b"{}",
        key=issued.token,
        secret=issued.signing_secret,
        timestamp_ms=clock.now * 1000,
    )
    doc = event("authorizer_rest_request_wrong_scope")  # POST /v1/orders
    doc["headers"] = dict(headers)
    doc["multiValueHeaders"] = {k: [v] for k, v in headers.items()}
    return doc


# where: (service, operation, the key's signing mode, forget the pepper before each request)
POINTS = {
    "key GetItem": ("dynamodb", "GetItem", "bearer", False),
    "KMS decrypt of the signing secret": ("kms", "Decrypt", "hmac", False),
    "Secrets Manager pepper read": ("secretsmanager", "GetSecretValue", "bearer", True),
    "nonce claim": ("dynamodb", "PutItem", "hmac", False),
}


def failure_lines(
    caplog: pytest.LogCaptureFixture, output: str
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """The decision log lines (as Powertools passed their fields) and the EMF documents since the last call."""
    logs = [
        {k: getattr(r, k, None) for k in ("outcome", "reason", "error", "key_id")}
        for r in caplog.records
        if r.getMessage() == "decision"
    ]
    caplog.clear()
    return logs, emitted_metrics(output)


@pytest.mark.parametrize("point", list(POINTS))
def test_any_botocore_failure_fails_closed_with_its_decision_log_line_and_metric(
    point: str,
    service: Any,
    authorizer: Authorizer,
    clock: FakeClock,
    lambda_context: Any,
    capfd: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    service_name, operation, mode, forget_pepper = POINTS[point]
    scopes = ["orders:write"] if mode == "hmac" else ["prices:read"]
    issued = service.create("acme", actor="ops", scopes=scopes, signing=mode)

    def request() -> dict[str, Any]:
        if mode == "hmac":
            return signed_order(issued, clock)
        return event("authorizer_rest_request_valid", issued.token)

    # The path works before anything is injected.
    assert effect(handler.lambda_handler(request(), lambda_context)) == "Allow"
    capfd.readouterr()
    caplog.clear()

    injected: list[BaseException] = []

    def raise_injected(**_: Any) -> None:
        raise injected[-1]

    client = aws.client(service_name)
    event_name = f"before-call.{client.meta.service_model.service_id.hyphenize()}.{operation}"
    client.meta.events.register(event_name, raise_injected)
    wrong: list[str] = []
    try:
        for error in EXCEPTIONS:
            injected.append(error)
            authorizer.cache.clear()
            if forget_pepper:
                authorizer.peppers._peppers = None  # a new container: the pepper is read again
            name = type(error).__name__
            try:
                response: Any = handler.lambda_handler(request(), lambda_context)
            except RuntimeError as raised:
                response = str(raised)
            except Exception as raised:  # anything else escaping the handler is a crash
                response = f"crash: {type(raised).__name__}"
            logs, metrics = failure_lines(caplog, capfd.readouterr().out)
            if response != "authorizer error":
                wrong.append(f"{name}: answered {response!r}")
            if not any(
                d.get("outcome") == "error"
                and d.get("reason") == "internal_error"
                and str(d.get("error", "")).startswith(name)
                and d.get("key_id") == issued.record.kid
                for d in logs
            ):
                wrong.append(f"{name}: no decision log line naming the key")
            if [(m.get("outcome"), m.get("Decision")) for m in metrics] != [("error", [1.0])]:
                wrong.append(f"{name}: no error metric")
    finally:
        client.meta.events.unregister(event_name, raise_injected)
    assert not wrong, "\n".join(wrong)
    assert len(injected) == len(EXCEPTIONS)


def test_the_failure_names_the_aws_error_code_never_the_message(
    service: Any,
    authorizer: Authorizer,
    lambda_context: Any,
    capfd: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    issued = service.create("acme", actor="ops", scopes=["prices:read"])
    secret_message = "token ks_live_leaked-in-a-message"

    def throttled(**_: Any) -> None:
        raise botocore.exceptions.ClientError(
            {"Error": {"Code": "ThrottlingException", "Message": secret_message}}, "GetItem"
        )

    client = aws.client("dynamodb")
    client.meta.events.register("before-call.dynamodb.GetItem", throttled)
    try:
        with pytest.raises(RuntimeError):
            handler.lambda_handler(event("authorizer_rest_request_valid", issued.token), lambda_context)
    finally:
        client.meta.events.unregister("before-call.dynamodb.GetItem", throttled)
    logs, _ = failure_lines(caplog, capfd.readouterr().out)
    assert [d["error"] for d in logs] == ["ClientError ThrottlingException"]
    assert secret_message not in json.dumps(logs)


def test_the_alarm_reads_the_metric_a_failure_emits(
    service: Any,
    authorizer: Authorizer,
    lambda_context: Any,
    capfd: pytest.CaptureFixture[str],
) -> None:
    """The documented alarm fires on what the handler really emits: namespace, name, dimensions."""
    from tests.conftest import template

    alarm = template()["Resources"]["AuthorizerErrorAlarm"]["Properties"]
    watched = {
        (
            m["MetricStat"]["Metric"]["Namespace"],
            m["MetricStat"]["Metric"]["MetricName"],
            frozenset((d["Name"], d["Value"]) for d in m["MetricStat"]["Metric"]["Dimensions"]),
        )
        for m in alarm["Metrics"]
        if "MetricStat" in m
    }
    issued = service.create("acme", actor="ops", scopes=["prices:read"])
    client = aws.client("dynamodb")

    def unavailable(**_: Any) -> None:
        raise botocore.exceptions.ReadTimeoutError(endpoint_url="injected")

    client.meta.events.register("before-call.dynamodb.GetItem", unavailable)
    try:
        with pytest.raises(RuntimeError):
            handler.lambda_handler(event("authorizer_rest_request_valid", issued.token), lambda_context)
    finally:
        client.meta.events.unregister("before-call.dynamodb.GetItem", unavailable)
    (doc,) = emitted_metrics(capfd.readouterr().out)
    (directive,) = doc["_aws"]["CloudWatchMetrics"]
    (dimensions,) = directive["Dimensions"]
    emitted = (directive["Namespace"], "Decision", frozenset((name, doc[name]) for name in dimensions))
    assert emitted in watched
    assert alarm["AlarmActions"] == [{"Ref": "AlertsTopic"}] and alarm["Threshold"] == 0
