"""API Gateway Lambda authorizer (REST TOKEN/REQUEST, HTTP API 2.0): thin over keysentry.authorizer."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext
from keysentry.authorizer import (
    Authorizer,
    Decision,
    Outcome,
    Unauthorized,
    failure,
    read_request,
    respond,
)
from keysentry.errors import ConfigurationError
from keysentry.settings import AuthorizerSettings, authorizer_http_response

logger = Logger()
metrics = Metrics()
_authorizer: Authorizer | None = None


def get_authorizer() -> Authorizer:
    """Built on first use, not at import: the pepper and clients cost nothing until a key arrives.
    Its settings are read here, once per container (again only while they fail)."""
    global _authorizer
    if _authorizer is None:
        _authorizer = Authorizer.from_settings(AuthorizerSettings.from_env())
    return _authorizer


def _closed(shape: str) -> dict[str, Any]:
    """The answer when no authorizer could be built: never an Allow. A simple HTTP API response
    says so; every other form is a 500, which API Gateway does not cache."""
    try:
        simple = shape == "http" and authorizer_http_response() == "simple"
    except ConfigurationError:  # the variable itself is wrong: answer in the IAM form's way
        simple = False
    if simple:
        return {"isAuthorized": False}
    raise RuntimeError("authorizer error") from None


def _record(decision: Decision, shape: str) -> None:
    metrics.add_dimension("outcome", decision.outcome.value)
    metrics.add_dimension("reason", decision.reason)
    metrics.add_metric(name="Decision", unit=MetricUnit.Count, value=1)
    # Allows are the bulk of traffic: counted always, logged at DEBUG. Every refusal is logged.
    if decision.outcome is Outcome.ALLOW:
        log = logger.debug
    elif decision.outcome is Outcome.ERROR:
        log = logger.warning
    else:
        log = logger.info
    log(
        "decision",
        outcome=decision.outcome.value,
        reason=decision.reason,
        key_id=decision.kid,
        shape=shape,
        error=decision.error,
    )


@metrics.log_metrics
@logger.inject_lambda_context(clear_state=True, log_event=False)
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    request = read_request(event)
    if request is None:
        _record(Decision(Outcome.UNAUTHORIZED, "unknown_event_shape"), "unknown")
        raise Unauthorized()
    try:
        authorizer = get_authorizer()
    except Exception:
        logger.exception("authorizer configuration failed; failing closed")
        _record(Decision(Outcome.ERROR, "configuration"), request.shape)
        return _closed(request.shape)
    try:
        decision = authorizer.decide(request)
    except Exception as error:  # decide fails closed itself: this keeps the log and metric for the rest
        decision = failure(error)
    _record(decision, request.shape)
    return respond(authorizer, request, decision)
