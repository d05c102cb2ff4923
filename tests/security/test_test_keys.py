"""Promises: a ks_test_ key works only on the stages the deployment marks as test (``TestStages``),
on every event shape; a live key works on every stage, test stages included."""

from __future__ import annotations

from typing import Any

import pytest
from keysentry.authorizer import Authorizer, Outcome, parse_test_stages, read_request

from functions.authorizer import handler
from tests.integration.authz_helpers import effect, event


def on_stage(doc: dict[str, Any], stage: str) -> dict[str, Any]:
    for field in ("methodArn", "routeArn"):
        if field in doc:
            doc[field] = doc[field].replace("/prod/", f"/{stage}/")
    doc["requestContext"]["stage"] = stage
    return doc


def outcome(doc: dict[str, Any], lambda_context: Any) -> str:
    try:
        response = handler.lambda_handler(doc, lambda_context)
    except Exception as error:
        return str(error)
    if "isAuthorized" in response:
        return "Allow" if response["isAuthorized"] else "Deny"
    return effect(response)


def reasons(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [getattr(r, "reason", "") for r in caplog.records if r.getMessage() == "decision"]


def test_the_template_marks_dev_and_test_as_the_test_stages(authorizer_env: dict[str, str]) -> None:
    assert authorizer_env["TEST_STAGES"] == "dev,test"
    assert Authorizer.from_env().test_stages == frozenset({"dev", "test"})


@pytest.mark.parametrize(
    "name", ["authorizer_rest_request_valid", "authorizer_http_v2_simple", "authorizer_http_v2_iam"]
)
def test_a_test_key_is_denied_on_a_stage_not_marked_test_with_its_reason(
    service: Any,
    authorizer_env: dict[str, str],
    lambda_context: Any,
    caplog: pytest.LogCaptureFixture,
    name: str,
) -> None:
    issued = service.create("acme", actor="ops", scopes=["prices:read"], env="test")
    assert outcome(on_stage(event(name, issued.token), "prod"), lambda_context) == "Deny"
    assert reasons(caplog) == ["test_key_on_non_test_stage"]
    assert outcome(on_stage(event(name, issued.token), "test"), lambda_context) == "Allow"


def test_a_token_authorizer_binds_test_keys_by_the_method_arn_stage(
    service: Any, authorizer_env: dict[str, str], lambda_context: Any
) -> None:
    issued = service.create("acme", actor="ops", scopes=["prices:read"], env="test")
    doc = event("authorizer_rest_token", issued.token)
    assert outcome(doc, lambda_context) == "Deny"  # its methodArn names the prod stage
    doc["methodArn"] = doc["methodArn"].replace("/prod/", "/dev/")
    assert outcome(doc, lambda_context) == "Allow"


def test_an_http_api_without_a_parsable_route_arn_is_bound_by_its_request_context_stage(
    service: Any, authorizer_env: dict[str, str], lambda_context: Any
) -> None:
    issued = service.create("acme", actor="ops", scopes=["prices:read"], env="test")
    doc = event("authorizer_http_v2_simple", issued.token)
    doc["routeArn"] = "not-an-arn"
    doc["requestContext"]["stage"] = "prod"
    assert outcome(doc, lambda_context) == "Deny"
    doc["requestContext"]["stage"] = "test"
    assert outcome(doc, lambda_context) == "Allow"


def test_live_keys_may_call_every_stage_test_stages_included(
    service: Any, authorizer_env: dict[str, str], lambda_context: Any
) -> None:
    issued = service.create("acme", actor="ops", scopes=["prices:read"], env="live")
    for stage in ("prod", "test", "dev", "anything"):
        doc = on_stage(event("authorizer_rest_request_valid", issued.token), stage)
        assert outcome(doc, lambda_context) == "Allow", stage


def test_an_allow_on_a_test_stage_is_never_reused_for_another_stage(
    service: Any, authorizer_env: dict[str, str], lambda_context: Any
) -> None:
    issued = service.create("acme", actor="ops", scopes=["prices:read"], env="test")
    # the same key, method, path and source address: only the stage differs
    assert outcome(
        on_stage(event("authorizer_rest_request_valid", issued.token), "test"), lambda_context
    ) == ("Allow")
    assert outcome(
        on_stage(event("authorizer_rest_request_valid", issued.token), "prod"), lambda_context
    ) == ("Deny")


def test_with_no_test_stages_test_keys_are_refused_everywhere(
    service: Any, stack: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    issued = service.create("acme", actor="ops", scopes=["prices:read"], env="test")
    monkeypatch.setenv("TEST_STAGES", "")
    authorizer = Authorizer.from_env()
    for stage in ("prod", "test", "dev"):
        request = read_request(on_stage(event("authorizer_rest_request_valid", issued.token), stage))
        assert request is not None
        decision = authorizer.decide(request)
        assert (decision.outcome, decision.reason) == (Outcome.DENY, "test_key_on_non_test_stage")


def test_the_test_stages_parameter_is_a_comma_list() -> None:
    assert parse_test_stages("") == frozenset()
    assert parse_test_stages(" dev, test ,,qa") == frozenset({"dev", "test", "qa"})


def on_api(doc: dict[str, Any], api: str, stage: str) -> dict[str, Any]:
    """The request to ``api``'s ``stage``: its ARN and its request context say so."""
    for field in ("methodArn", "routeArn"):
        if field in doc:
            doc[field] = doc[field].replace("a1b2c3d4e5/prod/", f"{api}/{stage}/")
    doc.setdefault("requestContext", {}).update(stage=stage, apiId=api)  # a TOKEN event has none
    return doc


@pytest.mark.parametrize(
    "name",
    [
        "authorizer_rest_request_valid",
        "authorizer_rest_token",
        "authorizer_http_v2_simple",
        "authorizer_http_v2_iam",
    ],
)
def test_a_test_stage_bound_to_an_api_takes_test_keys_on_that_api_only(
    service: Any,
    authorizer_env: dict[str, str],
    lambda_context: Any,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    name: str,
) -> None:
    """TestStages=a1b2c3d4e5/dev: another API's dev stage is not a test stage."""
    monkeypatch.setenv("TEST_STAGES", "a1b2c3d4e5/dev")
    monkeypatch.setenv("AUTHORIZER_HTTP_RESPONSE", "iam" if name.endswith("iam") else "simple")
    issued = service.create("acme", actor="ops", scopes=["prices:read"], env="test")
    bound = on_api(event(name, issued.token), "a1b2c3d4e5", "dev")
    assert outcome(bound, lambda_context) == "Allow"
    caplog.clear()
    other = on_api(event(name, issued.token), "f6g7h8i9j0", "dev")
    assert outcome(other, lambda_context) == "Deny"
    assert reasons(caplog) == ["test_key_on_non_test_stage"]


def test_the_test_stages_parameter_takes_api_bound_entries_and_refuses_anything_else(stack: Any) -> None:
    import re

    from keysentry.errors import ConfigurationError

    assert parse_test_stages("a1b2c3d4e5/dev, test") == frozenset({"a1b2c3d4e5/dev", "test"})
    for wrong in ("a1b2/dev", "a1b2c3d4e5/", "dev/test/x", "dev stage"):
        with pytest.raises(ConfigurationError):
            parse_test_stages(wrong)
    pattern = re.compile(stack.template["Parameters"]["TestStages"]["AllowedPattern"])
    assert pattern.fullmatch("a1b2c3d4e5/dev,test,$default")
    assert not pattern.fullmatch("a1b2/dev")
