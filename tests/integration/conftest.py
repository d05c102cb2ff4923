"""Every integration test is watched for plaintext keys: none may reach a table, a message or a log line."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import Any

import pytest
from keysentry import keyformat

# A secret is SECRET_LEN base62 characters, so it can only sit inside a run of base62 characters at
# least that long: only the windows of such runs need a look-up, whatever the number of secrets.
_CANDIDATE_RUN = re.compile(f"[{keyformat.ALPHABET}]{{{keyformat.SECRET_LEN},}}")


def secret_part(token: str) -> str:
    return token[-(keyformat.SECRET_LEN + keyformat.CHECKSUM_LEN) : -keyformat.CHECKSUM_LEN]


class SecretFinder:
    """Whether a text holds the secret part of any of the given tokens, or any other given secret
    (by its first SECRET_LEN characters: a fragment that long is a leak too): one pass over the
    text, a set look-up per candidate window, instead of one substring search per secret."""

    def __init__(self, tokens: list[str], secrets: list[str] | None = None) -> None:
        self.secrets = {secret_part(t) for t in tokens}
        self.secrets |= {s[: keyformat.SECRET_LEN] for s in secrets or () if len(s) >= keyformat.SECRET_LEN}

    def found_in(self, text: str) -> bool:
        width = keyformat.SECRET_LEN
        for run in _CANDIDATE_RUN.finditer(text) if self.secrets else ():
            chars = run.group()
            if any(chars[i : i + width] in self.secrets for i in range(len(chars) - width + 1)):
                return True
        return False


def _region_and_account(arn: str) -> tuple[str, str]:
    _, _, _, region, account, _ = arn.split(":", 5)
    return region, account


def stored_texts(stack: Any) -> dict[str, str]:
    """Each template table's items, as text: read from moto's memory, not through a paginated Scan
    (every test starts from empty tables, so this is exactly what the test wrote)."""
    from moto.dynamodb.models import dynamodb_backends

    texts = {}
    for logical, resource in stack.template["Resources"].items():
        if resource["Type"].endswith("Table"):
            region, account = _region_and_account(stack.attrs[logical]["Arn"])
            table = dynamodb_backends[account][region].get_table(stack.refs[logical])
            texts[stack.refs[logical]] = json.dumps([i.to_json() for i in table.all_items()], default=str)
    return texts


def messages_text() -> str:
    """Every message moto's SNS topics sent and its SQS queues hold, in every account and region."""
    from moto.sns.models import sns_backends
    from moto.sqs.models import sqs_backends

    sent = [
        topic.sent_notifications
        for account in sns_backends.values()
        for backend in dict.values(account)
        for topic in backend.topics.values()
    ]
    held = [
        (message.body, message.message_attributes)
        for account in sqs_backends.values()
        for backend in dict.values(account)
        for queue in backend.queues.values()
        for message in queue._messages
    ]
    return json.dumps([sent, held], default=str)


def apigateway_text() -> str:
    """Every API key moto's API Gateway holds (its value included) and every usage plan key."""
    from moto.apigateway.models import apigateway_backends

    backends = [backend for account in apigateway_backends.values() for backend in dict.values(account)]
    keys = [key.to_json() for backend in backends for key in backend.keys.values()]
    plan_keys = [
        {"plan": plan, "key": key.to_json()}
        for backend in backends
        for plan, members in backend.usage_plan_keys.items()
        for key in members.values()
    ]
    return json.dumps([keys, plan_keys], default=str)


def plaintext_found(
    tokens: list[str], stack: Any, log_lines: list[str], secrets: list[str] | None = None
) -> list[str]:
    """Where the secret part of any of ``tokens``, or any of ``secrets``, appears: each table's
    items, the messages sent or queued, API Gateway's API keys, and the log lines."""
    finder = SecretFinder(tokens, secrets)
    if not finder.secrets:
        return []  # nothing minted, nothing to find: no need to read anything
    places = {
        **stored_texts(stack),
        "messages": messages_text(),
        "apigateway": apigateway_text(),
        "logs": "\n".join(log_lines),
    }
    return [place for place, text in places.items() if finder.found_in(text)]


@pytest.fixture
def minted_secrets(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Every random secret drawn during the test: a key's secret part, an HMAC signing secret."""
    secrets: list[str] = []
    real_random = keyformat.random_base62

    def recording_random(length: int) -> str:
        value = real_random(length)
        if length > keyformat.KID_LEN:  # a kid names a key in logs and alerts: it is not a secret
            secrets.append(value)
        return value

    monkeypatch.setattr(keyformat, "random_base62", recording_random)
    return secrets


@pytest.fixture(autouse=True)
def leak_guard(
    stack: Any,
    minted_secrets: list[str],
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    capfd: pytest.CaptureFixture[str],
) -> Iterator[list[str]]:
    """Record every token minted during the test, and every other random secret (a key's secret part,
    an HMAC signing secret); afterwards look for each in every table, message and log."""
    minted: list[str] = []
    real_generate = keyformat.generate

    def recording_generate(env: str = "live", kid: str | None = None) -> keyformat.ParsedKey:
        parsed = real_generate(env, kid)
        minted.append(parsed.token)
        return parsed

    monkeypatch.setattr(keyformat, "generate", recording_generate)
    yield minted

    out, err = capfd.readouterr()
    log_lines = (
        [r.getMessage() for r in caplog.records]
        + [line for line in (out + err).splitlines() if line.startswith("{") and '"level"' in line]
        + err.splitlines()
    )
    leaks = plaintext_found(minted, stack, log_lines, minted_secrets)
    assert not leaks, f"plaintext keys found in: {', '.join(sorted(set(leaks)))}"


@pytest.fixture
def api_service(service: Any, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """The management API uses the test's service (and its clock); its idempotency layer is per test."""
    from keysentry.api import context

    context.persistence.cache_clear()
    monkeypatch.setattr(context, "service", lambda: service)
    yield service
    context.persistence.cache_clear()
