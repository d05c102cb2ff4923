"""The security suite: each module is a list of promises keysentry makes against an attacker.

Every test here runs under the same plaintext leak guard as the integration tests.
"""

from __future__ import annotations

from typing import Any

import pytest

from tests.integration.conftest import api_service, leak_guard, minted_secrets, plaintext_found

__all__ = ["api_service", "leak_guard", "minted_secrets", "plaintext_found"]


@pytest.fixture
def authorizer_env(stack: Any, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """The authorizer function's own environment, as template.yaml sets it (TestStages: dev,test),
    and the handler's authorizer built from it on its next call."""
    from functions.authorizer import handler

    variables = stack.template["Resources"]["AuthorizerFunction"]["Properties"]["Environment"]["Variables"]
    env = stack.environment(variables)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setattr(handler, "_authorizer", None)
    return env
