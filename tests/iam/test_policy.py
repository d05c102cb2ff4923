"""The IAM evaluator the conformance check relies on can say no: a grant, a wildcard, an absent
grant, an explicit Deny, NotAction, and conditions (met, unmet, unevaluable)."""

from __future__ import annotations

from typing import Any

from tests.iam.policy import Request, evaluate, statements

TABLE = "arn:aws:dynamodb:us-east-1:123456789012:table/keys"
KEY = "arn:aws:kms:us-east-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab"


def policy(*statement: dict[str, Any]) -> Any:
    return statements({"Statement": list(statement)}, "P")


def kms(action: str, context: dict[str, str]) -> Request:
    return Request(
        f"kms:{action}",
        KEY,
        {f"kms:EncryptionContext:{k}": (v,) for k, v in context.items()},
        ("kms:EncryptionContext:*", "kms:EncryptionContextKeys"),
    )


def test_an_allow_grants_exactly_its_action_on_its_resource() -> None:
    grant = policy({"Sid": "Read", "Effect": "Allow", "Action": "dynamodb:GetItem", "Resource": TABLE})
    verdict = evaluate(grant, Request("dynamodb:GetItem", TABLE))
    assert verdict.allowed and verdict.granted_by is not None and verdict.granted_by.sid == "Read"
    assert not evaluate(grant, Request("dynamodb:UpdateItem", TABLE)).allowed
    assert not evaluate(grant, Request("dynamodb:GetItem", TABLE + "-other")).allowed
    assert not evaluate(grant, Request("dynamodb:GetItem", TABLE + "/index/owner-index")).allowed


def test_actions_match_in_any_case_and_wildcards_match_across_separators() -> None:
    grant = policy(
        {"Effect": "Allow", "Action": ["kms:GenerateDataKey*"], "Resource": "*"},
        {
            "Effect": "Allow",
            "Action": "apigateway:GET",
            "Resource": "arn:aws:apigateway:us-east-1::/apikeys/*",
        },
    )
    assert evaluate(grant, Request("KMS:generatedatakeywithoutplaintext", KEY)).allowed
    assert evaluate(grant, Request("apigateway:GET", "arn:aws:apigateway:us-east-1::/apikeys/a/b")).allowed
    assert not evaluate(grant, Request("apigateway:GET", "arn:aws:apigateway:us-east-1::/apikeys")).allowed
    assert not evaluate(grant, Request("apigateway:GET", "arn:aws:apigateway:us-east-1::/APIKEYS/a")).allowed


def test_an_explicit_deny_wins_over_any_allow() -> None:
    both = policy(
        {"Effect": "Allow", "Action": "dynamodb:*", "Resource": "*"},
        {"Sid": "NoScan", "Effect": "Deny", "Action": "dynamodb:Scan", "Resource": TABLE},
    )
    verdict = evaluate(both, Request("dynamodb:Scan", TABLE))
    assert not verdict.allowed and verdict.denied_by is not None and verdict.denied_by.sid == "NoScan"
    assert "explicitly denied by P/NoScan" in verdict.reason
    assert evaluate(both, Request("dynamodb:Query", TABLE)).allowed


def test_not_action_allows_everything_else() -> None:
    grant = policy({"Effect": "Allow", "NotAction": "dynamodb:DeleteItem", "Resource": TABLE})
    assert evaluate(grant, Request("dynamodb:PutItem", TABLE)).allowed
    assert not evaluate(grant, Request("dynamodb:DeleteItem", TABLE)).allowed


def test_an_encryption_context_condition_grants_only_the_contexts_it_names() -> None:
    grant = policy(
        {
            "Effect": "Allow",
            "Action": "kms:Decrypt",
            "Resource": KEY,
            "Condition": {"StringEquals": {"kms:EncryptionContext:purpose": ["signing", "pickup"]}},
        }
    )
    assert evaluate(grant, kms("Decrypt", {"kid": "k1", "purpose": "signing"})).allowed
    assert not evaluate(grant, kms("Decrypt", {"kid": "k1", "purpose": "idempotency"})).allowed
    assert not evaluate(grant, kms("Decrypt", {"kid": "k1"})).allowed, "an absent key matches nothing"


def test_negated_and_if_exists_operators_hold_when_the_key_is_absent() -> None:
    grant = policy(
        {
            "Effect": "Allow",
            "Action": "kms:Encrypt",
            "Resource": KEY,
            "Condition": {
                "StringNotEquals": {"kms:EncryptionContext:purpose": "admin"},
                "StringLikeIfExists": {"kms:EncryptionContext:kid": "k*"},
            },
        }
    )
    assert evaluate(grant, kms("Encrypt", {})).allowed
    assert evaluate(grant, kms("Encrypt", {"kid": "k9", "purpose": "signing"})).allowed
    assert not evaluate(grant, kms("Encrypt", {"purpose": "admin"})).allowed
    assert not evaluate(grant, kms("Encrypt", {"kid": "x1"})).allowed


def test_a_condition_on_a_key_the_request_cannot_tell_does_not_grant_and_says_so() -> None:
    grant = policy(
        {
            "Sid": "FromVpc",
            "Effect": "Allow",
            "Action": "dynamodb:GetItem",
            "Resource": TABLE,
            "Condition": {"StringEquals": {"aws:SourceVpce": "vpce-1"}},
        }
    )
    verdict = evaluate(grant, Request("dynamodb:GetItem", TABLE))
    assert not verdict.allowed
    assert verdict.unevaluable == ("P/FromVpc: StringEquals on aws:SourceVpce",)
    assert "not evaluable here, so not granting" in verdict.reason


def test_a_deny_whose_condition_cannot_be_told_is_taken_to_apply() -> None:
    both = policy(
        {"Effect": "Allow", "Action": "dynamodb:GetItem", "Resource": TABLE},
        {
            "Sid": "OutsideVpc",
            "Effect": "Deny",
            "Action": "*",
            "Resource": "*",
            "Condition": {"StringNotEquals": {"aws:SourceVpce": "vpce-1"}},
        },
    )
    verdict = evaluate(both, Request("dynamodb:GetItem", TABLE))
    assert not verdict.allowed and verdict.denied_by is not None
