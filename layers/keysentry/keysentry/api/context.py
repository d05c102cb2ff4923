"""Per-process wiring for the API: the service and the idempotency layer, built on first use."""

from __future__ import annotations

import os
from functools import cache
from typing import Any

from keysentry.service import KeyService


@cache
def service() -> KeyService:
    return KeyService.from_settings()


@cache
def persistence() -> Any:
    from aws_lambda_powertools.utilities.idempotency import DynamoDBPersistenceLayer
    from keysentry import aws

    return DynamoDBPersistenceLayer(
        table_name=os.environ.get("IDEMPOTENCY_TABLE", "keysentry-idempotency"),
        boto3_client=aws.client("dynamodb"),
    )


def reset() -> None:
    service.cache_clear()
    persistence.cache_clear()
