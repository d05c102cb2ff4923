"""Per-process wiring for the API: the service and the idempotency layer, built on first use."""

from __future__ import annotations

from functools import cache
from typing import Any

from keysentry.service import KeyService
from keysentry.settings import ApiSettings


@cache
def service() -> KeyService:
    return KeyService.from_settings(ApiSettings.load().service)


@cache
def persistence() -> Any:
    from aws_lambda_powertools.utilities.idempotency import DynamoDBPersistenceLayer
    from keysentry import aws

    return DynamoDBPersistenceLayer(
        table_name=ApiSettings.load().service.idempotency_table,
        boto3_client=aws.client("dynamodb"),
    )


def reset() -> None:
    service.cache_clear()
    persistence.cache_clear()
