"""The security suite: each module is a list of promises keysentry makes against an attacker.

Every test here runs under the same plaintext leak guard as the integration tests.
"""

from __future__ import annotations

from tests.integration.conftest import api_service, leak_guard, minted_secrets, plaintext_found

__all__ = ["api_service", "leak_guard", "minted_secrets", "plaintext_found"]
