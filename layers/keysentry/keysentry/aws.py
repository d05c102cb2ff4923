"""Lazily created AWS clients. Never at import: moto must be active first, and import is cold start.

Clients come from botocore directly: boto3's session adds nothing keysentry uses, and importing it
(with s3transfer) is a measurable part of the authorizer's cold start. botocore honours
``AWS_ENDPOINT_URL`` (and ``AWS_ENDPOINT_URL_<SERVICE>``), which is how the CLI and ``sam local``
reach a moto server.
"""

from __future__ import annotations

from functools import cache
from typing import Any

import botocore.session
from botocore.config import Config
from botocore.loaders import Loader, create_loader

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


@cache
def client(service: str) -> Any:
    return session().create_client(service, config=_CONFIG)


def reset() -> None:
    """Forget cached clients and credentials (tests start a fresh moto per test)."""
    client.cache_clear()
    session.cache_clear()
