"""Usage reports: the window's query parameters (shared with the key's and the self-service
routes), and an owner's keys by use (AWS_IAM in the template)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from aws_lambda_powertools.event_handler.api_gateway import Router
from aws_lambda_powertools.event_handler.openapi.params import Query
from keysentry.api import context
from keysentry.model import MAX_OWNER
from keysentry.service.usage import OWNER_KEYS, parse_time

router = Router()

_TIME = "epoch seconds, or ISO 8601 with its offset (2026-11-29T10:00:00Z) or a date (midnight UTC)"
From = Annotated[
    str | None,
    Query(
        alias="from",
        max_length=40,
        description=f"Start of the window: {_TIME}. Default: 24 hours or 30 days before to",
    ),
]
To = Annotated[
    str | None,
    Query(alias="to", max_length=40, description=f"End of the window (exclusive): {_TIME}. Default: now"),
]
Granularity = Annotated[
    Literal["hour", "day"],
    Query(description="Periods of the series: hour (kept 35 days, at most 840) or day (kept 400 days)"),
]


def window_of(start: str | None, end: str | None) -> tuple[int | None, int | None]:
    """The window's bounds from the query (``from``, ``to``): 400 with a reason when unreadable."""
    return (
        None if start is None else parse_time(start, "from"),
        None if end is None else parse_time(end, "to"),
    )


@router.get(
    "/usage",
    summary=f"An owner's keys with their use in a window, busiest first (the first {OWNER_KEYS} keys)",
    tags=["usage"],
)
def owner_usage(
    owner: Annotated[str, Query(min_length=1, max_length=MAX_OWNER)],
    start: From = None,
    end: To = None,
    granularity: Granularity = "hour",
) -> dict[str, Any]:
    return context.service().owner_usage(owner, *window_of(start, end), granularity)
