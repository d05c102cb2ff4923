"""Responses that carry a plaintext key, and their idempotent replay.

A retried ``POST /keys`` (or rotate) with the same ``Idempotency-Key`` must not mint a second key,
and should give the caller the same answer. Powertools' idempotency stores the answer: the
serializer below stores the plaintext parts KMS-encrypted (context: the kid, purpose
``idempotency``), never in clear, and decrypts them on replay.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from aws_lambda_powertools.utilities.idempotency.serialization.base import BaseIdempotencySerializer
from keysentry.service import Issued

SECRET_FIELDS = Issued.SECRET_FIELDS


def issued_body(issued: Issued) -> dict[str, Any]:
    return issued.document()


class SealedResponseSerializer(BaseIdempotencySerializer):
    """Powertools idempotency output serializer that keeps secrets KMS-encrypted at rest."""

    def __init__(self, kms: Callable[[], Any]) -> None:
        self.kms = kms

    def to_dict(self, data: Any) -> dict[str, Any]:
        stored = dict(data)
        kid = str(stored["kid"])
        for name in SECRET_FIELDS:
            if stored.get(name):
                stored[name] = {"sealed": self.kms().encrypt(kid, "idempotency", stored[name])}
        return stored

    def from_dict(self, data: dict[str, Any]) -> Any:
        restored = dict(data)
        kid = str(restored["kid"])
        for name in SECRET_FIELDS:
            value = restored.get(name)
            if isinstance(value, dict) and "sealed" in value:
                restored[name] = self.kms().decrypt(kid, "idempotency", value["sealed"])
        return restored


class WithheldSecretSerializer(BaseIdempotencySerializer):
    """Stores the response without its secrets: a replay says what was minted and where its key is
    (with whoever received the first response), never the key itself."""

    def to_dict(self, data: Any) -> dict[str, Any]:
        stored = {k: v for k, v in dict(data).items() if k not in SECRET_FIELDS}
        stored["notice"] = (
            f"A repeat of a request already answered: the key of {stored['kid']} was in the first "
            "response only and is never shown again. If that response was lost, ask the key's owner "
            f"to rotate {stored['kid']} (POST /keys/{stored['kid']}/rotate) for a new one."
        )
        return stored

    def from_dict(self, data: dict[str, Any]) -> Any:
        return dict(data)


def idempotent(
    operation: Callable[[dict[str, Any]], dict[str, Any]],
    request: dict[str, Any],
    idempotency_key: str | None,
    lambda_context: Any = None,
    *,
    replay_secrets: bool = True,
) -> dict[str, Any]:
    """Run ``operation(request)`` once per (caller, route, Idempotency-Key, body).

    ``replay_secrets=False`` where the caller is a key (anyone holding it): the answer kept for
    replays has no secrets, so a second holder replaying the request learns no key."""
    if not idempotency_key:
        return operation(request)
    from aws_lambda_powertools.utilities.idempotency import IdempotencyConfig, idempotent_function
    from keysentry.api import context

    config = IdempotencyConfig(
        event_key_jmespath="[idempotency_key, route, actor]",
        payload_validation_jmespath="body",
        expires_after_seconds=3600,
    )
    if lambda_context is not None:
        config.register_lambda_context(lambda_context)
    wrapped = idempotent_function(
        data_keyword_argument="request",
        config=config,
        persistence_store=context.persistence(),
        output_serializer=SealedResponseSerializer(lambda: context.service().kms)
        if replay_secrets
        else WithheldSecretSerializer(),
    )(operation)  # the operation takes its input as the keyword argument ``request``
    return wrapped(request={**request, "idempotency_key": idempotency_key})  # type: ignore[no-any-return]
