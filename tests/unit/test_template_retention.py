"""Nothing that must outlive the stack dies with it: the data the stack keeps, and whatever unlocks
it, share the keys table's DeletionPolicy and UpdateReplacePolicy (docs/adr/0011).

One rule, read from template.yaml: every resource that stores something is either retained data,
something that unlocks retained data, or declared transient here with its reason. What unlocks is
derived from the template: the secrets and KMS keys the functions are handed in their environment
(the pepper the digests are HMACs under, the key the signing secrets are encrypted under), and the
keys that encrypt a retained resource."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
from keysentry_dev.recovery import retained
from keysentry_dev.template import load_template, references

ROOT = Path(__file__).resolve().parents[2]
TABLE = "KeysTable"
# What is kept when the stack goes, and why a user expects it kept.
RETAINED_DATA = {
    "KeysTable": "every key's record (digest, HMAC secret ciphertext, rules) and the audit trail",
    "UsageTable": "usage history and the counts of the current quota periods (HTTP APIs' quotas)",
}
# What goes with the stack, and why that loses nothing a new stack needs.
TRANSIENT = {
    "NonceTable": "signed-request nonces live seconds; leak reports are re-verified on redelivery",
    "IdempotencyTable": "responses replayed for an hour at most",
    "AlertsTopicKey": "encrypts alert messages in flight on the topic; nothing stored under it",
    "GitHubScanningKeys": "GitHub's public keys, fetched again at every deploy",
    "ManagementApiId": "the management API's id, written again from !Ref ManagementApi at every deploy",
}
STORES = {
    "AWS::DynamoDB::Table",
    "AWS::SecretsManager::Secret",
    "AWS::KMS::Key",
    "AWS::SSM::Parameter",
    "AWS::S3::Bucket",
}
SECRETS = {"AWS::SecretsManager::Secret", "AWS::KMS::Key"}
# properties by which a resource names the KMS key that encrypts it
ENCRYPTED_BY = ("KmsKeyId", "KMSMasterKeyId", "KmsMasterKeyId", "KMSKeyArn")
FUNCTION_TYPES = {"AWS::Serverless::Function", "AWS::Lambda::Function"}


@pytest.fixture(scope="module")
def template() -> dict[str, Any]:
    return load_template(ROOT / "template.yaml")


def _find(value: Any, keys: tuple[str, ...]) -> list[Any]:
    """Every value under one of ``keys``, at any depth."""
    if isinstance(value, dict):
        found = [v for k, v in value.items() if k in keys]
        return found + [f for v in value.values() for f in _find(v, keys)]
    if isinstance(value, list):
        return [f for v in value for f in _find(v, keys)]
    return []


def unlockers(template: dict[str, Any]) -> dict[str, str]:
    """Each resource without which retained data cannot be read -> how the template says so."""
    resources = template["Resources"]
    found: dict[str, str] = {}
    environments = [("Globals", template.get("Globals", {}).get("Function", {}).get("Environment", {}))]
    environments += [
        (name, r.get("Properties", {}).get("Environment", {}))
        for name, r in resources.items()
        if r["Type"] in FUNCTION_TYPES
    ]
    for owner, environment in environments:
        for variable, value in environment.get("Variables", {}).items():
            for name in references(value):
                if resources.get(name, {}).get("Type") in SECRETS:
                    found.setdefault(name, f"{owner} environment {variable}")
    kept = set(RETAINED_DATA) | set(found)
    while True:  # the keys that encrypt what is kept, and the keys of those
        more = {
            name: f"encrypts {holder}"
            for holder in sorted(kept)
            for name in references(_find(resources.get(holder, {}).get("Properties", {}), ENCRYPTED_BY))
            if name in resources and name not in kept
        }
        if not more:
            return found
        found.update(more)
        kept |= set(more)


def retention_problems(template: dict[str, Any]) -> list[str]:
    resources = template["Resources"]
    policy = {key: resources[TABLE].get(key) for key in ("DeletionPolicy", "UpdateReplacePolicy")}
    problems = []
    must_keep = {**RETAINED_DATA, **unlockers(template)}
    for name, why in sorted(must_keep.items()):
        if name in TRANSIENT:
            problems.append(f"{name} is declared transient but is {why}")
        have = {key: resources.get(name, {}).get(key) for key in policy}
        if have != policy:
            problems.append(f"{name} ({why}) has {have}, not the keys table's {policy}")
    for name, resource in resources.items():
        if resource["Type"] in STORES and name not in must_keep and name not in TRANSIENT:
            problems.append(
                f"{name}: a new {resource['Type']}: retained data, its key, or transient (and why)?"
            )
    for name, resource in retained(template).items():
        for used in sorted(set(references(resource)) & set(resources)):
            if used not in retained(template):
                problems.append(f"{name} is retained but refers to {used}, which is not")
    return problems


def test_everything_that_holds_or_unlocks_retained_data_is_retained_as_the_table_is(
    template: dict[str, Any],
) -> None:
    assert template["Resources"][TABLE]["DeletionPolicy"] == "Retain"
    assert retention_problems(template) == []


def test_the_pepper_and_the_signing_key_are_found_as_what_unlocks_the_table(template: dict[str, Any]) -> None:
    assert unlockers(template) == {
        "PepperSecret": "Globals environment PEPPER_SECRET_ID",
        "SigningSecretsKey": "Globals environment KMS_KEY_ID",
    }


def test_deleting_the_stack_leaves_the_table_the_pepper_and_the_signing_key(template: dict[str, Any]) -> None:
    """CloudFormation deletes every resource whose DeletionPolicy is not Retain (for these types the
    default is Delete), and replaces one in an update leaving the old only under UpdateReplacePolicy."""
    left = {
        name
        for name, r in template["Resources"].items()
        if r.get("DeletionPolicy") == "Retain" and r.get("UpdateReplacePolicy") == "Retain"
    }
    assert {"KeysTable", "PepperSecret", "SigningSecretsKey"} <= left
    assert left == {"KeysTable", "UsageTable", "PepperSecret", "SigningSecretsKey"}


@pytest.mark.parametrize("name", ["PepperSecret", "SigningSecretsKey", "UsageTable"])
@pytest.mark.parametrize("policy", ["DeletionPolicy", "UpdateReplacePolicy"])
def test_a_template_that_lets_one_go_fails_the_rule(template: dict[str, Any], name: str, policy: str) -> None:
    changed = copy.deepcopy(template)
    del changed["Resources"][name][policy]
    (problem,) = retention_problems(changed)
    assert problem.startswith(f"{name} (")


def test_a_new_secret_handed_to_a_function_must_be_retained(template: dict[str, Any]) -> None:
    changed = copy.deepcopy(template)
    changed["Resources"]["WebhookSecret"] = {"Type": "AWS::SecretsManager::Secret", "Properties": {}}
    env = changed["Resources"]["AlertsFunction"]["Properties"]["Environment"]["Variables"]
    env["WEBHOOK_SECRET_ID"] = {"Ref": "WebhookSecret"}
    assert retention_problems(changed) == [
        "WebhookSecret (AlertsFunction environment WEBHOOK_SECRET_ID) has "
        "{'DeletionPolicy': None, 'UpdateReplacePolicy': None}, not the keys table's "
        "{'DeletionPolicy': 'Retain', 'UpdateReplacePolicy': 'Retain'}"
    ]


def test_the_key_a_retained_secret_is_encrypted_under_must_be_retained_too(template: dict[str, Any]) -> None:
    changed = copy.deepcopy(template)
    changed["Resources"]["PepperKey"] = {"Type": "AWS::KMS::Key", "Properties": {}}
    changed["Resources"]["PepperSecret"]["Properties"]["KmsKeyId"] = {"Fn::GetAtt": ["PepperKey", "Arn"]}
    problems = retention_problems(changed)
    assert problems[0].startswith("PepperKey (encrypts PepperSecret) has {'DeletionPolicy': None")
    assert problems[1:] == ["PepperSecret is retained but refers to PepperKey, which is not"]


def test_a_new_store_must_be_declared(template: dict[str, Any]) -> None:
    changed = copy.deepcopy(template)
    changed["Resources"]["WebhooksTable"] = copy.deepcopy(changed["Resources"]["NonceTable"])
    assert retention_problems(changed) == [
        "WebhooksTable: a new AWS::DynamoDB::Table: retained data, its key, or transient (and why)?"
    ]


def test_nothing_declared_transient_unlocks_retained_data(template: dict[str, Any]) -> None:
    changed = copy.deepcopy(template)
    changed["Resources"]["AlertsFunction"]["Properties"]["Environment"]["Variables"]["TOPIC_KEY"] = {
        "Ref": "AlertsTopicKey"
    }
    assert "AlertsTopicKey is declared transient but is AlertsFunction environment TOPIC_KEY" in (
        retention_problems(changed)
    )
