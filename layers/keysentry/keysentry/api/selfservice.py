"""Self-service routes behind the keysentry authorizer: the caller is the key, and only that key."""

from __future__ import annotations

from typing import Annotated, Any, cast

from aws_lambda_powertools.event_handler.api_gateway import Router
from aws_lambda_powertools.event_handler.exceptions import NotFoundError, UnauthorizedError
from aws_lambda_powertools.event_handler.openapi.params import Body
from aws_lambda_powertools.utilities.data_classes import APIGatewayProxyEvent
from keysentry import keyformat
from keysentry.api import context
from keysentry.api.issued import idempotent, issued_body
from keysentry.api.models import Reason
from keysentry.api.usage import From, Granularity, To, window_of
from keysentry.service import SealedSuccessor

router = Router()


def caller_kid() -> str:
    """The key the authorizer admitted. Never taken from the path, query or body."""
    authorizer = cast(APIGatewayProxyEvent, router.current_event).request_context.authorizer
    kid = authorizer.raw_event.get("key_id")
    if not keyformat.is_kid(kid):
        raise UnauthorizedError("Unauthorized")
    return str(kid)


@router.get("/self", summary="Who am I: the calling key, its plan and quota", tags=["self"])
def whoami() -> dict[str, Any]:
    view = context.service().view(caller_kid())
    return {
        k: view[k]
        for k in (
            "kid",
            "owner_id",
            "name",
            "env",
            "status",
            "scopes",
            "rotate_after",
            "grace_until",
            "successor",
            "expires_at",
            "signing_mode",
            "plan",
            "quota",
        )
    }


@router.post(
    "/self/rotate",
    summary="Rotate the calling key (scope keys:rotate-self); the successor is in this response only",
    tags=["self"],
)
def rotate_self() -> dict[str, Any]:
    kid = caller_kid()

    def operation(request: dict[str, Any]) -> dict[str, Any]:
        return issued_body(context.service().rotate_self(request["kid"]))

    # Anyone holding the key can send its Idempotency-Key: a replay names the successor, never its key.
    key = router.current_event.get_header_value("Idempotency-Key", case_sensitive=False)
    request = {"route": f"self-rotate:{kid}", "kid": kid, "actor": f"key:{kid}", "body": {}}
    return idempotent(operation, request, key, router.lambda_context, replay_secrets=False)


@router.post(
    "/self/successor",
    summary="Collect the successor the schedule created: sealed to the key's delivery key, else once in clear",
    tags=["self"],
)
def pick_up_successor() -> dict[str, Any]:
    kid = caller_kid()
    picked = context.service().pick_up_successor(kid, actor=f"key:{kid}")
    if picked is None:
        raise NotFoundError("no successor is waiting for pickup")
    # when the calling key stops working: the holder's deadline for switching
    grace = {"predecessor_grace_until": context.service().get(kid).grace_until}
    if isinstance(picked, SealedSuccessor):
        return {
            **picked.record.public_view(),
            **grace,
            "sealed_successor": picked.sealed,
            "notice": "Sealed to the key's delivery key: open it with the X25519 private key.",
        }
    return {**issued_body(picked), **grace}


@router.post("/self/revoke", summary="Kill the calling key now (when it leaks)", tags=["self"])
def revoke_self(body: Annotated[Reason, Body()]) -> dict[str, Any]:
    kid = caller_kid()
    reason = body.reason or "revoked by its holder"
    record = context.service().revoke(kid, actor=f"key:{kid}", reason=reason)
    return {"kid": record.kid, "status": str(record.status)}


@router.get("/self/usage", summary="The calling key's use in a window, by hour or day", tags=["self"])
def self_usage(start: From = None, end: To = None, granularity: Granularity = "hour") -> dict[str, Any]:
    return context.service().usage(caller_kid(), *window_of(start, end), granularity)
