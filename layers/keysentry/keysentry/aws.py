"""Lazily created AWS clients. Never at import: moto must be active first, and import is cold start.

Clients come from botocore directly: boto3's session adds nothing keysentry uses, and importing it
(with s3transfer) is a measurable part of the authorizer's cold start. botocore honours
``AWS_ENDPOINT_URL`` (and ``AWS_ENDPOINT_URL_<SERVICE>``), which is how the CLI and ``sam local``
reach a moto server.

Importing this module (every function that calls AWS does, before its first call) keeps the SDK's
loggers at WARNING or above, whatever the root logger's level. At DEBUG, botocore logs every
request and response body, and those carry KMS plaintexts (keys, signing secrets, successors) and
the pepper. Lambda's advanced logging controls (``AWS_LAMBDA_LOG_LEVEL``) set the root logger's
level, which these loggers would inherit; Powertools' Logger sets only its own logger's level (from
``AWS_LAMBDA_LOG_LEVEL`` or ``POWERTOOLS_LOG_LEVEL``), and ``POWERTOOLS_DEBUG`` only its package's.
The clients Powertools creates (idempotency, parameters) log through the same loggers.

:func:`client` is typed per service (``client("dynamodb")`` is a ``DynamoDBClient``) with the
``mypy_boto3_*`` stubs, imported for the type checker only: ``mypy --strict`` checks every call at
the edge, and nothing of them is imported at run time.
"""

from __future__ import annotations

import logging
from functools import cache
from typing import TYPE_CHECKING, Any, Literal, overload

import botocore.session
from botocore.config import Config
from botocore.loaders import Loader, create_loader

if TYPE_CHECKING:
    from mypy_boto3_apigateway import APIGatewayClient
    from mypy_boto3_cloudformation import CloudFormationClient
    from mypy_boto3_cloudwatch import CloudWatchClient
    from mypy_boto3_dynamodb import DynamoDBClient
    from mypy_boto3_dynamodbstreams import DynamoDBStreamsClient
    from mypy_boto3_events import EventBridgeClient
    from mypy_boto3_iam import IAMClient
    from mypy_boto3_kms import KMSClient
    from mypy_boto3_lambda import LambdaClient
    from mypy_boto3_logs import CloudWatchLogsClient
    from mypy_boto3_scheduler import EventBridgeSchedulerClient
    from mypy_boto3_secretsmanager import SecretsManagerClient
    from mypy_boto3_sns import SNSClient
    from mypy_boto3_sqs import SQSClient
    from mypy_boto3_ssm import SSMClient

SDK_LOGGERS = ("botocore", "boto3", "urllib3", "s3transfer")


def quiet_sdk_loggers() -> None:
    """WARNING or above for the SDK's loggers (their children inherit it); a higher level is kept."""
    for name in SDK_LOGGERS:
        logger = logging.getLogger(name)
        if logger.level < logging.WARNING:  # NOTSET (the root's level), DEBUG or INFO
            logger.setLevel(logging.WARNING)


quiet_sdk_loggers()

_CONFIG = Config(retries={"max_attempts": 3, "mode": "standard"}, connect_timeout=2, read_timeout=5)


@cache
def _loader() -> Loader:
    """One model loader for the process: service models are parsed once, even across resets."""
    return create_loader()


@cache
def session() -> botocore.session.Session:
    core = botocore.session.get_session()
    core.register_component("data_loader", _loader())
    return core


@overload
def client(service: Literal["apigateway"]) -> APIGatewayClient: ...
@overload
def client(service: Literal["cloudformation"]) -> CloudFormationClient: ...
@overload
def client(service: Literal["dynamodb"]) -> DynamoDBClient: ...
@overload
def client(service: Literal["dynamodbstreams"]) -> DynamoDBStreamsClient: ...
@overload
def client(service: Literal["events"]) -> EventBridgeClient: ...
@overload
def client(service: Literal["kms"]) -> KMSClient: ...
@overload
def client(service: Literal["secretsmanager"]) -> SecretsManagerClient: ...
@overload
def client(service: Literal["sns"]) -> SNSClient: ...
@overload
def client(service: Literal["sqs"]) -> SQSClient: ...
@overload
def client(service: Literal["ssm"]) -> SSMClient: ...
@overload
def client(service: Literal["logs"]) -> CloudWatchLogsClient: ...
@overload
def client(service: Literal["cloudwatch"]) -> CloudWatchClient: ...
@overload
def client(service: Literal["scheduler"]) -> EventBridgeSchedulerClient: ...
@overload
def client(service: Literal["lambda"]) -> LambdaClient: ...
@overload
def client(service: Literal["iam"]) -> IAMClient: ...
def client(service: str) -> Any:
    """The process's one client for ``service``, created on first use."""
    return _client(service)


@cache
def _client(service: str) -> Any:
    return session().create_client(service, config=_CONFIG)


def reset() -> None:
    """Forget cached clients and credentials (tests start a fresh moto per test)."""
    _client.cache_clear()
    session.cache_clear()
