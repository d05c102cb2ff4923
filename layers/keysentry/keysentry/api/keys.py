"""Owner routes (AWS_IAM in the template): issue and manage keys."""

from __future__ import annotations

from typing import Annotated, Any, cast

from aws_lambda_powertools.event_handler.api_gateway import Router
from aws_lambda_powertools.event_handler.openapi.params import Body, Path, Query
from aws_lambda_powertools.utilities.data_classes import APIGatewayProxyEvent
from keysentry.api import context
from keysentry.api.issued import idempotent, issued_body
from keysentry.api.models import CreateKey, Reason, RequiredReason, Rotate, UpdateKey
from keysentry.api.usage import From, Granularity, To, window_of
from keysentry.keyformat import KID_LEN, KID_PATTERN
from keysentry.model import MAX_OWNER, MAX_PAGE, STATUS_PATTERN, KeySpec

router = Router()

Kid = Annotated[str, Path(min_length=KID_LEN, max_length=KID_LEN, pattern=KID_PATTERN, description="Key id")]


def actor() -> str:
    """The IAM principal API Gateway authenticated (AWS_IAM on every owner route)."""
    identity = cast(APIGatewayProxyEvent, router.current_event).request_context.identity
    return str(identity.user_arn or identity.caller or identity.account_id or "iam:unknown")


def _idempotency_key() -> str | None:
    value = router.current_event.get_header_value("Idempotency-Key", case_sensitive=False)
    return value[:128] if value else None


@router.post("/keys", summary="Issue a key (the plaintext is in this response only)", tags=["keys"])
def create_key(body: Annotated[CreateKey, Body()]) -> dict[str, Any]:
    def operation(request: dict[str, Any]) -> dict[str, Any]:
        issued = context.service().create(KeySpec(**request["body"]), actor=request["actor"])
        return issued_body(issued)

    request = {"route": "create", "actor": actor(), "body": body.model_dump()}
    return idempotent(operation, request, _idempotency_key(), router.lambda_context)


@router.get("/keys", summary="List keys, by owner and status, paginated", tags=["keys"])
def list_keys(
    owner: Annotated[str | None, Query(max_length=MAX_OWNER)] = None,
    status: Annotated[str | None, Query(pattern=STATUS_PATTERN)] = None,
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE)] = 100,
    cursor: Annotated[str | None, Query(max_length=2048)] = None,
) -> dict[str, Any]:
    records, next_cursor = context.service().list_keys(owner, status=status, limit=limit, cursor=cursor)
    return {"keys": [r.public_view() for r in records], "next_cursor": next_cursor}


@router.get("/keys/<kid>", summary="One key, with its plan and the quota used this period", tags=["keys"])
def get_key(kid: Kid) -> dict[str, Any]:
    return context.service().view(kid)


@router.patch(
    "/keys/<kid>",
    summary="Change name, scopes, IP rules, metadata, rotation policy, public keys, suspension on anomaly, "
    "plan",
    tags=["keys"],
)
def update_key(kid: Kid, body: Annotated[UpdateKey, Body()]) -> dict[str, Any]:
    """Every given field is checked before anything is written: one change, or none."""
    changes = body.model_dump(exclude_none=True)
    return context.service().update(kid, actor=actor(), **changes).public_view()


@router.post(
    "/keys/<kid>/rotate",
    summary="Rotate now, or replace a suspended key; the successor's plaintext is in this response only",
    tags=["lifecycle"],
)
def rotate_key(kid: Kid, body: Annotated[Rotate, Body()]) -> dict[str, Any]:
    def operation(request: dict[str, Any]) -> dict[str, Any]:
        data = request["body"]
        issued = context.service().rotate(
            request["kid"], actor=request["actor"], reason=data["reason"], grace_days=data["grace_days"]
        )
        return issued_body(issued)

    request = {"route": f"rotate:{kid}", "kid": kid, "actor": actor(), "body": body.model_dump()}
    return idempotent(operation, request, _idempotency_key(), router.lambda_context)


@router.post("/keys/<kid>/suspend", summary="Suspend (reversible): disable it first", tags=["lifecycle"])
def suspend_key(kid: Kid, body: Annotated[Reason, Body()]) -> dict[str, Any]:
    return context.service().suspend(kid, actor=actor(), reason=body.reason).public_view()


@router.post("/keys/<kid>/resume", summary="Resume a suspended key", tags=["lifecycle"])
def resume_key(kid: Kid, body: Annotated[Reason, Body()]) -> dict[str, Any]:
    return context.service().resume(kid, actor=actor(), reason=body.reason).public_view()


@router.post("/keys/<kid>/revoke", summary="Revoke for good (a reason is required)", tags=["lifecycle"])
def revoke_key(kid: Kid, body: Annotated[RequiredReason, Body()]) -> dict[str, Any]:
    return context.service().revoke(kid, actor=actor(), reason=body.reason).public_view()


@router.get("/keys/<kid>/audit", summary="The key's audit trail", tags=["keys"])
def key_audit(kid: Kid) -> dict[str, Any]:
    return {"kid": kid, "entries": [e.as_dict() for e in context.service().audit(kid)]}


@router.get(
    "/audit", summary="An owner's audit trail across their keys, newest first, paginated", tags=["keys"]
)
def owner_audit(
    owner: Annotated[str, Query(min_length=1, max_length=MAX_OWNER)],
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE)] = 50,
    cursor: Annotated[str | None, Query(max_length=2048)] = None,
) -> dict[str, Any]:
    entries, next_cursor = context.service().owner_audit(owner, limit=limit, cursor=cursor)
    return {"owner": owner, "entries": [e.as_dict() for e in entries], "next_cursor": next_cursor}


@router.get(
    "/keys/<kid>/usage",
    summary="The key's use in a window, by hour or day: totals, statuses, routes, networks, refusals, "
    "the series; its last use",
    tags=["keys"],
)
def key_usage(
    kid: Kid, start: From = None, end: To = None, granularity: Granularity = "hour"
) -> dict[str, Any]:
    report = context.service().usage(kid, *window_of(start, end), granularity)
    return {
        **report,
        "last_used_precision_seconds": 3600,
        "decisions": {
            "metrics": "CloudWatch namespace keysentry, metric Decision, dimensions outcome and reason",
            "logs_insights_query": (
                'fields @timestamp, outcome, reason | filter message = "decision" and key_id = "'
                + kid
                + '" | stats count() by outcome, reason'
            ),
        },
    }
