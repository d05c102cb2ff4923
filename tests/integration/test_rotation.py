"""The scheduled rotation job under moto, with a controllable clock."""

from __future__ import annotations

import json
from dataclasses import replace
from types import SimpleNamespace
from typing import Any

import pytest
from keysentry import aws, keyformat, model
from keysentry.authorizer import Authorizer
from keysentry.errors import ConflictError
from keysentry.model import DAY, Status
from keysentry.peppers import PepperSource
from keysentry.rotation import RotationJob
from keysentry.routes import RouteTable
from keysentry.store import KeyStore, to_item

from functions.authorizer import handler as authorizer_handler
from functions.rotation import handler
from tests.conftest import EVENTS, FakeClock, all_items, template
from tests.integration.authz_helpers import effect, emitted_metrics, event


def job(service: Any, **kwargs: Any) -> RotationJob:
    return RotationJob(service, **kwargs)


def live_keys(service: Any, owner: str = "acme") -> list[Any]:
    records, _ = service.list_keys(owner)
    return records


def test_a_30_day_key_is_rotated_on_day_30_and_not_before(service: Any, clock: FakeClock) -> None:
    kid = service.create("acme", actor="ops", rotation_days=30, scopes=["prices:read"]).record.kid
    clock.advance(days=30)
    clock.advance(-1)
    assert job(service).run().rotated == []
    assert service.get(kid).status is Status.ACTIVE
    clock.advance(1)
    summary = job(service).run()
    assert len(summary.rotated) == 1
    predecessor = service.get(kid)
    successor = service.get(predecessor.successor)
    assert predecessor.status is Status.ROTATING and predecessor.grace_until == clock() + 7 * DAY
    assert successor.status is Status.ACTIVE and successor.predecessor == kid
    assert (successor.scopes, successor.rotation_days, successor.owner_id) == (("prices:read",), 30, "acme")
    assert successor.rotate_after == clock() + 30 * DAY


def test_the_predecessor_authorizes_during_grace_and_is_expired_after(
    service: Any, clock: FakeClock, stack: Any, lambda_context: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    issued = service.create("acme", actor="ops", rotation_days=30, scopes=["prices:read"])
    authorizer = Authorizer(
        KeyStore(stack.refs["KeysTable"]),
        PepperSource(stack.refs["PepperSecret"]),
        RouteTable.from_json('{"GET /v1/prices/*": "prices:read"}'),
        cache_ttl=0,
        clock=clock,
    )
    monkeypatch.setattr(authorizer_handler, "_authorizer", authorizer)

    def call() -> str:
        return effect(
            authorizer_handler.lambda_handler(
                event("authorizer_rest_request_valid", issued.token), lambda_context
            )
        )

    clock.advance(days=30)
    job(service).run()
    clock.advance(days=6)
    assert call() == "Allow"
    clock.advance(days=1)
    assert call() == "Deny"  # grace is over even before the job runs
    summary = job(service).run()
    assert summary.expired == [issued.record.kid]
    assert service.get(issued.record.kid).status is Status.EXPIRED
    assert call() == "Deny"


def test_reminders_fire_once_each(service: Any, clock: FakeClock) -> None:
    kid = service.create("acme", actor="ops", rotation_days=30).record.kid
    reminded = []
    for day in (22, 23, 23.5, 24, 29, 29.2, 29.9):
        clock.now = service.get(kid).created_at + int(day * DAY)
        reminded += job(service).run().reminded
    assert reminded == [f"{kid}:7d", f"{kid}:1d"]
    actions = [e.action for e in service.audit(kid)]
    assert actions == ["create", "remind", "remind"]


def test_a_predecessor_still_in_use_late_in_grace_is_reminded(service: Any, clock: FakeClock) -> None:
    kid = service.create("acme", actor="ops", rotation_days=30).record.kid
    clock.advance(days=30)
    job(service).run()
    clock.advance(days=6)
    service.store.touch(kid, clock(), stale_before=clock())
    summary = job(service).run()
    assert summary.reminded == [f"{kid}:grace"]
    assert service.audit(kid)[-1].reason == "predecessor still in use late in its grace window"
    assert job(service).run().reminded == []


def test_two_interleaved_runs_produce_exactly_one_successor(
    service: Any, clock: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    kid = service.create("acme", actor="ops", rotation_days=30).record.kid
    clock.advance(days=30)
    real_get = service.store.get
    interleaved: list[Any] = []

    def get_then_let_the_other_run_finish(key: str) -> Any:
        record = real_get(key)
        if not interleaved:
            interleaved.append(None)
            interleaved[0] = job(service).run()  # run B reads, rotates and commits first
        return record

    monkeypatch.setattr(service.store, "get", get_then_let_the_other_run_finish)
    summary_a = job(service).run()
    summary_b = interleaved[0]
    assert len(summary_b.rotated) == 1
    assert summary_a.rotated == [] and summary_a.skipped == 1 and summary_a.errors == 0
    assert len(live_keys(service)) == 2
    assert real_get(kid).status is Status.ROTATING


def test_a_revoke_during_a_run_wins(service: Any, clock: FakeClock, monkeypatch: pytest.MonkeyPatch) -> None:
    kid = service.create("acme", actor="ops", rotation_days=30).record.kid
    clock.advance(days=30)
    real_rotate = service.store.rotate

    def revoke_first(*args: Any, **kwargs: Any) -> Any:
        service.revoke(kid, actor="sec", reason="leaked")
        return real_rotate(*args, **kwargs)

    monkeypatch.setattr(service.store, "rotate", revoke_first)
    summary = job(service).run()
    assert summary.rotated == [] and summary.skipped == 1
    assert service.get(kid).status is Status.REVOKED
    assert [r.kid for r in live_keys(service)] == [kid]


def test_a_run_resumed_after_a_crash_completes_the_rotation_once(
    service: Any, clock: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    kid = service.create("acme", actor="ops", rotation_days=30).record.kid
    before = service.store.get_item(kid)
    clock.advance(days=30)

    def crash(*args: Any, **kwargs: Any) -> None:
        raise TimeoutError("the container died mid-rotation")

    with monkeypatch.context() as patch:
        patch.setattr(service.store, "rotate", crash)
        summary = job(service).run()
    assert summary.errors == 1
    assert service.store.get_item(kid) == before, "a failed rotation leaves the key as it was"
    assert len(live_keys(service)) == 1
    summary = job(service).run()
    assert len(summary.rotated) == 1
    assert job(service).run().rotated == []
    assert len(live_keys(service)) == 2


def test_a_run_near_the_time_limit_stops_cleanly_and_the_next_continues(
    service: Any, clock: FakeClock
) -> None:
    for _ in range(5):
        service.create("acme", actor="ops", rotation_days=30)
    clock.advance(days=30)
    budget = iter([60_000, 60_000, 1_000] + [60_000] * 20)
    first = job(service, remaining_ms=lambda: next(budget)).run()
    assert first.stopped_early and len(first.rotated) == 2
    second = job(service).run()
    assert not second.stopped_early and len(second.rotated) == 3


def test_one_bad_item_is_logged_and_skipped(service: Any, clock: FakeClock, stack: Any) -> None:
    good = [service.create("acme", actor="ops", rotation_days=30).record.kid for _ in range(2)]
    bad = service.create("acme", actor="ops", rotation_days=30).record.kid
    aws.client("dynamodb").update_item(
        TableName=stack.refs["KeysTable"],
        Key={"pk": {"S": bad}, "sk": {"S": "KEY"}},
        UpdateExpression="SET #s = :x",
        ExpressionAttributeNames={"#s": "status"},
        ExpressionAttributeValues={":x": {"S": "corrupted"}},
    )
    clock.advance(days=30)
    failed: list[str] = []
    summary = job(service, on_error=lambda kid, error: failed.append(kid)).run()
    assert summary.errors == 1 and failed == [bad]
    assert sorted(pair.split("->")[0] for pair in summary.rotated) == sorted(good)


def test_lifetime_expiry(service: Any, clock: FakeClock) -> None:
    kid = service.create("acme", actor="ops", rotation_days=90, expires_in_days=10).record.kid
    clock.advance(days=10)
    assert job(service).run().expired == [kid]
    assert service.get(kid).status is Status.EXPIRED
    assert "due_at" not in service.store.get_item(kid)


def test_the_successor_waits_kms_encrypted_for_one_pickup(service: Any, clock: FakeClock, stack: Any) -> None:
    issued = service.create("acme", actor="ops", rotation_days=30)
    clock.advance(days=30)
    job(service).run()
    successor_kid = service.get(issued.record.kid).successor
    item = service.store.get_item(successor_kid)
    assert "pickup" in item
    picked = service.pick_up_successor(issued.record.kid)
    assert picked is not None and picked.record.kid == successor_kid
    assert keyformat.parse(picked.token).kid == successor_kid
    assert service.peppers.get().verify(picked.token, picked.record.digest, picked.record.pepper_version)
    assert picked.token not in json.dumps(all_items(stack.refs["KeysTable"]))
    assert service.pick_up_successor(issued.record.kid) is None, "a pickup is one-time"
    assert "pickup" not in service.store.get_item(successor_kid)


def test_an_uncollected_pickup_is_erased_when_the_grace_window_ends(service: Any, clock: FakeClock) -> None:
    issued = service.create("acme", actor="ops", rotation_days=30)
    clock.advance(days=30)
    job(service).run()
    successor_kid = service.get(issued.record.kid).successor
    clock.advance(days=7)
    job(service).run()
    assert "pickup" not in service.store.get_item(successor_kid)
    assert service.get(successor_kid).status is Status.ACTIVE


def test_with_a_delivery_key_the_successor_is_sealed_to_the_owner(service: Any, clock: FakeClock) -> None:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
    from keysentry.envelope import open_sealed

    private = X25519PrivateKey.generate()
    pem = private.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    issued = service.create("acme", actor="ops", rotation_days=30)
    service.set_delivery_key(issued.record.kid, pem.decode(), actor="ops")
    clock.advance(days=30)
    job(service).run()
    predecessor = service.get(issued.record.kid)
    assert predecessor.sealed_successor is not None
    opened = open_sealed(private, predecessor.sealed_successor)
    assert opened["kid"] == predecessor.successor
    successor = service.get(predecessor.successor)
    assert service.peppers.get().verify(opened["key"], successor.digest, successor.pepper_version)
    assert "pickup" not in service.store.get_item(predecessor.successor)
    assert successor.delivery_key == predecessor.delivery_key


def test_a_weak_or_malformed_delivery_key_is_refused(service: Any) -> None:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from keysentry.errors import ValidationError

    kid = service.create("acme", actor="ops").record.kid
    with pytest.raises(ValidationError):
        service.set_delivery_key(kid, "not a pem", actor="ops")
    other = ec.generate_private_key(ec.SECP256R1()).public_key()
    pem = other.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    ).decode()
    with pytest.raises(ValidationError):
        service.set_delivery_key(kid, pem, actor="ops")


def test_ten_thousand_keys_ten_due_reads_about_ten_items_and_never_scans(
    service: Any, clock: FakeClock, stack: Any
) -> None:
    ddb = aws.client("dynamodb")
    peppers = service.peppers.get()
    table = stack.refs["KeysTable"]
    items = []
    for i in range(10_000):
        record = model.new_record(
            kid=keyformat.new_kid(),
            owner_id=f"owner{i % 50}",
            env="live",
            digest=peppers.digest(f"token-{i}"),
            pepper_version=peppers.current,
            now=clock() - (30 * DAY if i < 10 else 0),
            actor="load",
            rotation_days=30 if i < 10 else 90,
        )
        if i < 10:  # the due ones have had their reminders already
            record = replace(record, reminded="1d")
        items.append({"PutRequest": {"Item": to_item(record)}})
    for start in range(0, len(items), 25):
        ddb.batch_write_item(RequestItems={table: items[start : start + 25]})

    operations: list[str] = []
    read = {"items": 0}

    def count(model: Any, parsed: Any, **_: Any) -> None:
        operations.append(model.name)
        read["items"] += len(parsed.get("Items", [])) + (1 if parsed.get("Item") else 0)

    ddb.meta.events.register(
        "after-call.dynamodb", lambda http_response, parsed, model, **kw: count(model, parsed)
    )
    # Reads are what this test measures. The writes are the same as in the tests above; under
    # moto each transaction deep-copies the whole table, which at 10,000 items is slow, not wrong.
    rotated: list[str] = []

    def record_rotation(record: Any, **kwargs: Any) -> Any:
        rotated.append(record.kid)
        return SimpleNamespace(record=SimpleNamespace(kid="successor"))

    service.rotate_record = record_rotation
    summary = job(service).run()
    assert len(rotated) == 10 and summary.errors == 0
    assert "Scan" not in operations
    assert read["items"] <= 25, read  # 10 from the due index + 10 consistent re-reads
    assert operations.count("Query") == model.DUE_SHARDS


def test_the_handler_runs_on_the_scheduled_event(service: Any, clock: FakeClock, lambda_context: Any) -> None:
    service.create("acme", actor="ops", rotation_days=30)
    clock.advance(days=30)
    result = handler.lambda_handler(
        json.loads((EVENTS / "rotation_scheduled.json").read_text()), lambda_context, service=service
    )
    assert result["rotated"] == 1 and result["errors"] == 0


def heartbeats(output: str) -> list[dict[str, Any]]:
    return [doc for doc in emitted_metrics(output) if "RotationHeartbeat" in doc]


def test_a_completed_run_beats_the_heartbeat_its_alarm_watches(
    service: Any, clock: FakeClock, lambda_context: Any, capfd: pytest.CaptureFixture[str]
) -> None:
    alarm = template()["Resources"]["RotationHeartbeatAlarm"]["Properties"]
    capfd.readouterr()
    handler.lambda_handler(
        json.loads((EVENTS / "rotation_scheduled.json").read_text()), lambda_context, service=service
    )
    (beat,) = heartbeats(capfd.readouterr().out)
    (metric,) = beat["_aws"]["CloudWatchMetrics"]
    assert metric["Namespace"] == alarm["Namespace"] == "keysentry"
    assert [m["Name"] for m in metric["Metrics"]] == [alarm["MetricName"]] and beat[alarm["MetricName"]] == [
        1.0
    ]
    # the alarm's dimensions, with the function's name where the template names RotationFunction
    wanted = {
        d["Name"]: lambda_context.function_name if d["Value"] == {"Ref": "RotationFunction"} else d["Value"]
        for d in alarm["Dimensions"]
    }
    assert set(metric["Dimensions"][0]) == set(wanted)
    assert {name: beat[name] for name in wanted} == wanted


def test_a_run_that_fails_beats_no_heartbeat(
    service: Any, lambda_context: Any, capfd: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(**_: Any) -> Any:
        raise RuntimeError("the keys table is unreachable")

    monkeypatch.setattr(service, "run_schedule", broken)
    capfd.readouterr()
    with pytest.raises(RuntimeError):
        handler.lambda_handler({}, lambda_context, service=service)
    assert heartbeats(capfd.readouterr().out) == []


def test_rotation_run_from_the_command_line(service: Any, capfd: pytest.CaptureFixture[str]) -> None:
    import datetime as dt

    from keysentry import cli

    issued = service.create("acme", actor="ops", rotation_days=30)
    at = dt.datetime.fromtimestamp(issued.record.rotate_after, dt.UTC).isoformat()
    capfd.readouterr()
    assert cli.main(["rotation", "run", "--now", at, "--json"]) == 0
    doc = json.loads(capfd.readouterr().out)
    assert doc["rotated"] == 1 and doc["rotated_keys"][0].startswith(issued.record.kid)
    assert cli.main(["rotation", "run", "--now", "yesterday"]) == 2


def test_a_key_whose_write_loses_a_race_is_skipped_not_counted_as_an_error(
    service: Any, clock: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    kid = service.create("acme", actor="ops", rotation_days=30).record.kid
    clock.advance(days=30)
    real_rotate, raised = service.rotate_record, []

    def rotate_after_a_rival_revoke(record: Any, **kwargs: Any) -> Any:
        service.revoke(kid, actor="sec", reason="leaked")  # lands between the job's read and write
        try:
            return real_rotate(record, **kwargs)
        except Exception as error:
            raised.append(error)
            raise

    monkeypatch.setattr(service, "rotate_record", rotate_after_a_rival_revoke)
    errors: list[Exception] = []
    summary = job(service, on_error=lambda kid, error: errors.append(error)).run()

    assert [type(e) for e in raised] == [ConflictError]
    assert (summary.rotated, summary.skipped, summary.errors, errors) == ([], 1, 0, [])
    assert service.get(kid).status is Status.REVOKED
    assert [r.kid for r in live_keys(service)] == [kid], "no successor was created"
