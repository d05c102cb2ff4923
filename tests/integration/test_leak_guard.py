"""The plaintext guard every integration and security test runs under finds what it must, and only that."""

from __future__ import annotations

from typing import Any

from keysentry import aws, keyformat

from tests.integration.conftest import SecretFinder, plaintext_found, secret_part


def test_a_secret_is_found_wherever_it_sits_in_a_longer_run_of_base62() -> None:
    token = keyformat.generate("live").token
    secret = secret_part(token)
    finder = SecretFinder([keyformat.generate("test").token, token])
    for text in (token, f"x{secret}", f"{secret}9", f'{{"k": "AA{secret}zz"}}', f"a b {token[:-1]}"):
        assert finder.found_in(text), text
    for text in ("", secret[:-1], f"{secret[:16]}-{secret[16:]}", token.replace(secret, secret[::-1])):
        assert not finder.found_in(text), text
    assert not SecretFinder([]).found_in(token)


def test_a_secret_sent_through_the_topic_or_left_in_a_queue_is_found(
    stack: Any, leak_guard: list[str], minted_secrets: list[str]
) -> None:
    published, queued = keyformat.generate("live").token, keyformat.generate("live").token
    assert plaintext_found([published, queued], stack, []) == []
    aws.client("sns").publish(TopicArn=stack.refs["AlertsTopic"], Message=f"key {published}")
    assert plaintext_found([published, queued], stack, []) == ["messages"]
    queue = aws.client("sqs").create_queue(QueueName="guard-test")["QueueUrl"]
    aws.client("sqs").send_message(QueueUrl=queue, MessageBody=f'{{"key": "{queued}"}}')
    assert plaintext_found([queued], stack, []) == ["messages"]
    leak_guard[:] = minted_secrets[:] = []  # planted on purpose: without this the guard fails this test


def test_a_signing_secret_is_watched_like_a_key(
    service: Any, stack: Any, minted_secrets: list[str], leak_guard: list[str]
) -> None:
    issued = service.create("acme", actor="test", scopes=["prices:read"], signing="hmac")
    assert issued.signing_secret in minted_secrets
    assert plaintext_found([], stack, []) == []
    assert plaintext_found([], stack, [], minted_secrets) == []  # stored KMS-encrypted only
    line = f'{{"level": "INFO", "message": "created", "secret": "{issued.signing_secret}"}}'
    assert plaintext_found([], stack, [line], minted_secrets) == ["logs"]
    assert plaintext_found(
        [], stack, [line[:40] + issued.signing_secret[: keyformat.SECRET_LEN]], minted_secrets
    ) == ["logs"]


def test_every_table_of_the_template_is_read_the_usage_table_included(stack: Any) -> None:
    from tests.integration.conftest import stored_texts

    tables = {ref for logical, ref in stack.refs.items() if logical.endswith("Table")}
    assert stack.refs["UsageTable"] in tables
    assert set(stored_texts(stack)) == tables


def test_a_key_registered_as_an_api_gateway_api_key_is_found(
    stack: Any, leak_guard: list[str], minted_secrets: list[str]
) -> None:
    token = keyformat.generate("live").token
    assert plaintext_found([token], stack, []) == []
    aws.client("apigateway").create_api_key(name="carelessly-named", value=token, enabled=True)
    assert plaintext_found([token], stack, []) == ["apigateway"]
    leak_guard[:] = minted_secrets[:] = []  # planted on purpose: without this the guard fails this test
