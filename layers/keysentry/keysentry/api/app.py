"""The management API: one Powertools REST resolver, a router per resource, errors mapped once."""

from __future__ import annotations

import logging
from typing import Final

from aws_lambda_powertools import Logger
from aws_lambda_powertools.event_handler import APIGatewayRestResolver, Response
from aws_lambda_powertools.event_handler.exceptions import NotFoundError, UnauthorizedError
from aws_lambda_powertools.event_handler.openapi.exceptions import RequestValidationError
from keysentry.api import keys, leaks, selfservice, usage
from keysentry.errors import (
    ConfigurationError,
    ConflictError,
    ForbiddenError,
    KeyNotFoundError,
    MalformedKeyError,
    TransitionError,
    ValidationError,
)

# Powertools' resolver logs every route's arguments at DEBUG, the parsed body among them: a key or
# secret pasted into a body field would reach the log. Its record is dropped at the logger that makes
# it, whatever any logger's level (a logger's filter runs before its record reaches any handler).
RESOLVER_LOGGERS: Final = (
    "aws_lambda_powertools.event_handler.api_gateway",
    "aws_lambda_powertools.event_handler.middlewares.async_utils",
)
_ROUTE_ARGUMENTS: Final = "Calling API Route Handler"


class WithoutRouteArguments(logging.Filter):
    """Drops the resolver's record of a route's arguments (the request body among them)."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith(_ROUTE_ARGUMENTS)


def keep_bodies_out_of_logs() -> None:
    for name in RESOLVER_LOGGERS:
        resolver_logger = logging.getLogger(name)
        if not any(isinstance(f, WithoutRouteArguments) for f in resolver_logger.filters):
            resolver_logger.addFilter(WithoutRouteArguments())


keep_bodies_out_of_logs()
logger = Logger(child=True)
app = APIGatewayRestResolver(enable_validation=True)
app.include_router(keys.router)
app.include_router(selfservice.router)
app.include_router(leaks.router)
app.include_router(usage.router)


def _error(status: int, message: str) -> Response[str]:
    import json

    return Response(status, "application/json", json.dumps({"message": message}))


@app.exception_handler(ValidationError)
@app.exception_handler(MalformedKeyError)
def bad_input(error: Exception) -> Response[str]:
    return _error(400, str(error))


@app.exception_handler(RecursionError)
def nested_too_deeply(error: RecursionError) -> Response[str]:
    """A request body nested deeper than the JSON parser recurses (e.g. '[' * 100000)."""
    logger.warning("request refused: recursion limit reached", error=str(error))
    return _error(400, "the request body is not valid JSON: it is nested too deeply")


@app.exception_handler(KeyNotFoundError)
def not_found(error: KeyNotFoundError) -> Response[str]:
    return _error(404, str(error))


@app.exception_handler(TransitionError)
@app.exception_handler(ConflictError)
def conflict(error: Exception) -> Response[str]:
    return _error(409, str(error))


@app.exception_handler(ForbiddenError)
def forbidden(error: ForbiddenError) -> Response[str]:
    return _error(403, str(error))


@app.exception_handler(NotFoundError)
def no_route_or_nothing(error: NotFoundError) -> Response[str]:
    return _error(404, str(error.msg))


@app.exception_handler(UnauthorizedError)
def unauthorized(error: UnauthorizedError) -> Response[str]:
    return _error(401, "Unauthorized")


@app.exception_handler(ConfigurationError)
def misconfigured(error: ConfigurationError) -> Response[str]:
    logger.error("configuration error", error=str(error))
    return _error(500, "keysentry is misconfigured; see its logs")


@app.exception_handler(RequestValidationError)
def invalid_request(error: RequestValidationError) -> Response[str]:
    """422 with where and what, never the offending input (it may be a key or a secret)."""
    import json

    details = [
        {"loc": list(e.get("loc", ())), "msg": e.get("msg", ""), "type": e.get("type", "")}
        for e in error.errors()
    ]
    return Response(422, "application/json", json.dumps({"message": "invalid request", "errors": details}))


def _idempotency_conflict(error: Exception) -> Response[str]:
    return _error(
        409, "this Idempotency-Key was used with another request body, or that request is still running"
    )


def _register_idempotency_errors() -> None:
    from aws_lambda_powertools.utilities.idempotency.exceptions import (
        IdempotencyAlreadyInProgressError,
        IdempotencyValidationError,
    )

    app.exception_handler(IdempotencyValidationError)(_idempotency_conflict)
    app.exception_handler(IdempotencyAlreadyInProgressError)(_idempotency_conflict)


_register_idempotency_errors()


@app.exception_handler(Exception)
def unexpected(error: Exception) -> Response[str]:
    logger.exception("unhandled error")
    return _error(500, "internal error")
