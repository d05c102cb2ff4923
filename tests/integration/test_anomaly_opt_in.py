"""Suspension on an anomaly is each key's own choice: off unless asked for, set at creation or later,
through the API and the CLI, shown with the key, kept by its successors and written in its trail."""

from __future__ import annotations

import json
from typing import Any

import pytest
from keysentry import cli

from tests.integration.api_helpers import call


def _create(lambda_context: Any, **body: Any) -> tuple[int, Any]:
    payload = {"owner": "acme-data", **body}
    return call("api_create_key", lambda_context, body=payload, headers={"Idempotency-Key": ""})


@pytest.mark.usefixtures("api_service")
def test_the_api_sets_and_shows_the_opt_in_and_refuses_what_is_not_a_boolean(lambda_context: Any) -> None:
    status, plain = _create(lambda_context)
    assert status == 200 and plain["suspend_on_anomaly"] is False
    status, opted = _create(lambda_context, suspend_on_anomaly=True)
    assert status == 200 and opted["suspend_on_anomaly"] is True
    assert call("api_get_key", lambda_context, kid=opted["kid"])[1]["suspend_on_anomaly"] is True

    for wrong in ("yes", 1, None):
        status, doc = _create(lambda_context, suspend_on_anomaly=wrong)
        assert status == 422, (wrong, doc)

    status, doc = call("api_update_key", lambda_context, kid=plain["kid"], body={"suspend_on_anomaly": True})
    assert status == 200 and doc["suspend_on_anomaly"] is True
    assert call("api_get_key", lambda_context, kid=plain["kid"])[1]["suspend_on_anomaly"] is True
    status, doc = call("api_update_key", lambda_context, kid=plain["kid"], body={"suspend_on_anomaly": "no"})
    assert status == 422
    status, doc = call("api_update_key", lambda_context, kid=plain["kid"], body={"suspend_on_anomaly": False})
    assert status == 200 and doc["suspend_on_anomaly"] is False


def test_the_cli_sets_shows_and_clears_the_opt_in(stack: Any, capfd: pytest.CaptureFixture[str]) -> None:
    def run(*argv: str) -> Any:
        assert cli.main(list(argv)) == 0
        out = capfd.readouterr().out
        return json.loads(out) if "--json" in argv else out

    kid = run("keys", "create", "--owner", "acme", "--no-scopes", "--suspend-on-anomaly", "--json")["kid"]
    assert run("keys", "show", kid, "--json")["suspend_on_anomaly"] is True
    assert "on anomaly:    suspend" in run("keys", "show", kid)
    assert run("keys", "update", kid, "--no-suspend-on-anomaly", "--json")["suspend_on_anomaly"] is False
    assert "on anomaly:    alert only" in run("keys", "show", kid)
    assert run("keys", "update", kid, "--suspend-on-anomaly", "--json")["suspend_on_anomaly"] is True
    plain = run("keys", "create", "--owner", "acme", "--no-scopes", "--json")["kid"]
    assert run("keys", "show", plain, "--json")["suspend_on_anomaly"] is False


def test_a_successor_keeps_the_opt_in_and_the_trail_records_each_change(service: Any) -> None:
    kid = service.create("acme", actor="ops", suspend_on_anomaly=True).record.kid
    successor = service.rotate(kid, actor="ops").record
    assert successor.suspend_on_anomaly is True
    service.update(successor.kid, actor="sec", suspend_on_anomaly=False)
    assert service.get(successor.kid).suspend_on_anomaly is False
    changes = [e.changes for e in service.audit(successor.kid) if e.action == "update"]
    assert changes == [{"suspend_on_anomaly": {"from": True, "to": False}}]
