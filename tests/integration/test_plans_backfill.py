"""Keys from before API Gateway knew them: the deployment's custom resource (and `keysentry plans sync`)
gives every key the API key its stream records would have given it, in moto, and removes orphans."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import replace
from typing import Any

import pytest
from keysentry import aws, cli
from keysentry.model import Change
from keysentry.plans import usage_identifier

from functions.plans_sync import handler
from tests.conftest import FakeClock
from tests.integration.plans_helpers import CloudFormation, api_keys, on
from tests.integration.stream_helpers import StreamReader, batch


@pytest.fixture
def cfn() -> Iterator[CloudFormation]:
    cloudformation = CloudFormation()
    yield cloudformation
    cloudformation.server.shutdown()


@pytest.fixture
def stream(stack: Any) -> StreamReader:
    return StreamReader(stack.refs["KeysTable"])


def keys_in_every_state(service: Any, clock: FakeClock) -> dict[str, str]:
    """A table of keys issued and changed while nothing kept API Gateway in step: state -> kid."""
    kid = {
        name: service.create("acme", actor="ops", scopes=["prices:read"], plan=plan).record.kid
        for name, plan in (
            ("active", None),
            ("free", "free"),
            ("suspended", "pro"),
            ("leaked", "free"),
            ("rotated", "free"),
            ("revoked", None),
            ("expired", None),
        )
    }
    service.suspend(kid["suspended"], actor="sec", reason="look")
    service.report_leak(kid["leaked"], actor="github", reason="https://github.com/x/y")
    kid["successor"] = service.rotate(kid["rotated"], actor="ops").record.kid
    service.revoke(kid["revoked"], actor="sec", reason="done")
    service.expire(service.get(kid["expired"]), actor="schedule", reason="lifetime")
    return kid


def deploy(cfn: CloudFormation, request_type: str, context: Any) -> dict[str, Any]:
    handler.lambda_handler(cfn.request(request_type), context)
    answer: dict[str, Any] = cfn.answers[-1]
    return answer


def delete_all_api_keys() -> None:
    apigateway = aws.client("apigateway")
    for key in apigateway.get_api_keys()["items"]:
        apigateway.delete_api_key(apiKey=key["id"])


def plans_sync(capfd: pytest.CaptureFixture[str], *args: str) -> tuple[int, dict[str, Any]]:
    capfd.readouterr()  # what the handler printed before (its metrics)
    code = cli.main(["plans", "sync", *args, "--json"])
    doc: dict[str, Any] = json.loads(capfd.readouterr().out)
    return code, doc


def test_the_deploy_gives_every_key_what_its_stream_records_would_have(
    service: Any,
    clock: FakeClock,
    stream: StreamReader,
    cfn: CloudFormation,
    lambda_context: Any,
    leak_guard: list[str],
) -> None:
    # Given keys in every state, issued before API Gateway held any API key for them
    kid = keys_in_every_state(service, clock)
    records = stream.read()
    assert api_keys() == {}

    # When the custom resource is created (UsageIdentifier turned on)
    answer = deploy(cfn, "Create", lambda_context)

    # Then API Gateway holds exactly what the stream makes of the same keys
    assert answer["Status"] == "SUCCESS"
    assert answer["Data"]["ApiKeysFinished"] == "true" and answer["Data"]["ApiKeysFailed"] == "0"
    backfilled = api_keys()
    delete_all_api_keys()
    assert handler.lambda_handler(batch(records), lambda_context) == {"batchItemFailures": []}
    assert backfilled == api_keys()
    # which is: live keys on their plan's usage plan, suspended ones disabled, ended ones without any
    assert backfilled == {
        usage_identifier(kid["active"]): (usage_identifier(kid["active"]), True, on("unlimited")),
        usage_identifier(kid["free"]): (usage_identifier(kid["free"]), True, on("free")),
        usage_identifier(kid["suspended"]): (usage_identifier(kid["suspended"]), False, on("pro")),
        usage_identifier(kid["leaked"]): (usage_identifier(kid["leaked"]), False, on("free")),
        usage_identifier(kid["rotated"]): (usage_identifier(kid["rotated"]), True, on("free")),
        usage_identifier(kid["successor"]): (usage_identifier(kid["successor"]), True, on("free")),
    }
    assert leak_guard  # tokens were minted, and none of them is an API key's value


def test_deploying_again_changes_nothing(
    service: Any,
    clock: FakeClock,
    cfn: CloudFormation,
    lambda_context: Any,
    capfd: pytest.CaptureFixture[str],
) -> None:
    keys_in_every_state(service, clock)
    deploy(cfn, "Create", lambda_context)
    state = api_keys()
    ids = {k["name"]: k["id"] for k in aws.client("apigateway").get_api_keys()["items"]}

    again = deploy(cfn, "Update", lambda_context)

    assert again["Status"] == "SUCCESS"
    assert again["Data"]["ApiKeysChanged"] == "0"
    assert again["Reason"].endswith("API keys: 8 keys checked, 0 changed")
    assert api_keys() == state
    assert {k["name"]: k["id"] for k in aws.client("apigateway").get_api_keys()["items"]} == ids
    assert plans_sync(capfd, "--dry-run")[1]["changes"] == []


def test_orphans_are_deleted_and_api_keys_outside_keysentrys_naming_are_left(
    service: Any, clock: FakeClock, cfn: CloudFormation, lambda_context: Any
) -> None:
    # Given API keys of keys that are gone or ended, a key deleted by hand, and API keys not keysentry's
    live = service.create("acme", actor="ops", scopes=["prices:read"]).record.kid
    ended = service.create("acme", actor="ops", scopes=["prices:read"]).record.kid
    deploy(cfn, "Create", lambda_context)
    service.revoke(ended, actor="sec", reason="done")  # its stream record never reached the function
    apigateway = aws.client("apigateway")
    for name in ("keysentry-usage-GONEGONEGONE", "partner-portal-key-0001", "keysentry-usage-not-a-kid!"):
        apigateway.create_api_key(name=name, value=f"{name}-value-long-enough", enabled=True)
    free = next(p for p in apigateway.get_usage_plans()["items"] if p["name"] == on("free")[0])
    gone = apigateway.get_api_keys(nameQuery="keysentry-usage-GONEGONEGONE")["items"][0]["id"]
    apigateway.create_usage_plan_key(usagePlanId=free["id"], keyId=gone, keyType="API_KEY")
    delete_me = apigateway.get_api_keys(nameQuery=usage_identifier(live))["items"][0]["id"]
    apigateway.delete_api_key(apiKey=delete_me)

    # When the custom resource is updated
    answer = deploy(cfn, "Update", lambda_context)

    # Then the orphans are gone, the deleted key is back, and the others are left
    assert answer["Status"] == "SUCCESS"
    assert set(api_keys()) == {
        usage_identifier(live),
        "partner-portal-key-0001",
        "keysentry-usage-not-a-kid!",
    }
    assert api_keys()[usage_identifier(live)] == (usage_identifier(live), True, on("unlimited"))


def test_another_deployment_in_the_account_is_left_alone(
    service: Any, stack: Any, cfn: CloudFormation, lambda_context: Any
) -> None:
    """A second keysentry stack (stage dev-x: its plans' names start as stage dev's do) shares the
    account's API keys and usage plans, not the keys table: none of its keys is an orphan here."""
    from keysentry.gateway import Gateway
    from keysentry.plans import DEFAULT_PLAN, DEFAULT_PLANS, Plans
    from keysentry.plans_sync import sync_usage_plans, usage_plan_name

    apigateway = aws.client("apigateway")
    sync_usage_plans(Plans.from_json(DEFAULT_PLANS, DEFAULT_PLAN), "dev-x", [], Gateway())
    theirs = apigateway.create_api_key(name="keysentry-usage-THEIRSTHEIRS", value="x" * 30, enabled=True)
    plan = next(
        p for p in apigateway.get_usage_plans()["items"] if p["name"] == usage_plan_name("dev-x", "free")
    )
    apigateway.create_usage_plan_key(usagePlanId=plan["id"], keyId=theirs["id"], keyType="API_KEY")
    mine = service.create("acme", actor="ops", scopes=["prices:read"]).record.kid

    answer = deploy(cfn, "Update", lambda_context)

    assert answer["Status"] == "SUCCESS" and "dev-x" not in answer["Reason"]
    assert set(api_keys()) == {usage_identifier(mine), "keysentry-usage-THEIRSTHEIRS"}
    names = {p["name"] for p in apigateway.get_usage_plans()["items"]}
    assert {usage_plan_name("dev-x", "free"), usage_plan_name("dev", "free")} <= names
    keys_on_theirs = apigateway.get_usage_plan_keys(usagePlanId=plan["id"])["items"]
    assert [k["name"] for k in keys_on_theirs] == ["keysentry-usage-THEIRSTHEIRS"]


def test_a_key_that_fails_does_not_stop_the_others_and_is_reported(
    service: Any,
    clock: FakeClock,
    cfn: CloudFormation,
    lambda_context: Any,
    capfd: pytest.CaptureFixture[str],
) -> None:
    # Given a key on a plan that has no usage plan (removed from Plans, usage plan deleted by hand)
    kids = [service.create("acme", actor="ops", scopes=["prices:read"]).record.kid for _ in range(3)]
    record = service.get(kids[1])
    change = Change(action="update", actor="ops", at=clock())
    service.store.apply(
        record, replace(record, plan="retired", version=record.version + 1, last_change=change)
    )

    # When the custom resource runs
    answer = deploy(cfn, "Create", lambda_context)

    # Then the deployment succeeds, names the key that failed, and the others have their API keys
    assert answer["Status"] == "SUCCESS"
    assert answer["Data"]["ApiKeysFailed"] == "1"
    assert f"1 failed ({kids[1]})" in answer["Reason"]
    held = api_keys()
    assert held[usage_identifier(kids[0])] == (usage_identifier(kids[0]), True, on("unlimited"))
    assert held[usage_identifier(kids[2])] == (usage_identifier(kids[2]), True, on("unlimited"))
    assert held[usage_identifier(kids[1])][2] == []  # created, on no usage plan: refused by API Gateway

    code, doc = plans_sync(capfd)  # the operator's command reports it too, and exits non-zero
    assert code != 0
    assert [f["kid"] for f in doc["failed"]] == [kids[1]]
    assert "no usage plan keysentry-dev-retired" in doc["failed"][0]["reason"]


class _Running:
    """A Lambda context whose remaining time falls by ``step_ms`` each time it is asked."""

    def __init__(self, context: Any, start_ms: int, step_ms: int) -> None:
        self.context, self.left, self.step = context, start_ms, step_ms

    def __getattr__(self, name: str) -> Any:
        return getattr(self.context, name)

    def get_remaining_time_in_millis(self) -> int:
        self.left -= self.step
        return self.left


def test_out_of_time_the_deploy_succeeds_saying_so_and_the_command_finishes(
    service: Any,
    clock: FakeClock,
    cfn: CloudFormation,
    lambda_context: Any,
    capfd: pytest.CaptureFixture[str],
) -> None:
    # Given more keys than the function has time for
    kids = [service.create("acme", actor="ops", scopes=["prices:read"]).record.kid for _ in range(6)]
    orphan = "keysentry-usage-GONEGONEGONE"
    created = aws.client("apigateway").create_api_key(name=orphan, value=orphan, enabled=True)

    # When the custom resource runs with time for three keys before its reserve
    running = _Running(lambda_context, handler.RESERVE_MS + 3 * 1000 + 500, 1000)
    answer = deploy(cfn, "Create", running)

    # Then it answers SUCCESS, saying how far it got and what finishes it, and deletes no orphan yet
    assert answer["Status"] == "SUCCESS"
    assert answer["Data"]["ApiKeysFinished"] == "false"
    assert answer["Data"]["ApiKeysChecked"] == "3"
    assert "run `keysentry plans sync` to finish" in answer["Reason"]
    assert len(set(api_keys()) - {orphan}) == 3 and orphan in api_keys()
    unlimited = next(
        p for p in aws.client("apigateway").get_usage_plans()["items"] if p["name"] == on("unlimited")[0]
    )
    aws.client("apigateway").create_usage_plan_key(  # on this deployment's plan: its orphan
        usagePlanId=unlimited["id"], keyId=created["id"], keyType="API_KEY"
    )

    # And the operator's command finishes the work, printing what it changed
    dry_code, dry = plans_sync(capfd, "--dry-run")
    assert dry_code == 0 and len(dry["changes"]) == 3 * 2 + 1  # created + on unlimited, each; the orphan
    assert len(api_keys()) == 4  # a dry run changes nothing
    code, done = plans_sync(capfd)
    assert code == 0 and done["finished"] and done["failed"] == []
    assert done["changes"] == dry["changes"]  # what the dry run said is what was done
    assert set(api_keys()) == {usage_identifier(k) for k in kids}
