"""Events as AWS's own tools make them (`sam local generate-event`), key swapped in, fed to the
handlers: keysentry accepts the real shapes, not only its own files."""

from __future__ import annotations

import base64
import json
import os
import shutil
import subprocess
from typing import Any

import pytest
from keysentry.authorizer import Authorizer
from keysentry.peppers import PepperSource
from keysentry.routes import RouteTable
from keysentry.store import KeyStore

from functions.alerts import handler as alerts_handler
from functions.api import handler as api_handler
from functions.authorizer import handler as authorizer_handler
from functions.rotation import handler as rotation_handler
from tests.conftest import ROOT, FakeClock
from tests.integration.stream_helpers import StreamReader, Targets

SAM = (
    str(ROOT / ".venv-sam" / "bin" / "sam")
    if (ROOT / ".venv-sam" / "bin" / "sam").exists()
    else shutil.which("sam")
)


def generate(*args: str) -> dict[str, Any]:
    if SAM is None:
        pytest.skip("the SAM CLI is not installed (make test installs it)")
    done = subprocess.run(  # noqa: S603
        [SAM, "local", "generate-event", *args],
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, "SAM_CLI_TELEMETRY": "0"},
    )
    doc: dict[str, Any] = json.loads(done.stdout)
    return doc


@pytest.fixture
def authorizer(stack: Any, clock: FakeClock, monkeypatch: pytest.MonkeyPatch) -> Authorizer:
    built = Authorizer(
        KeyStore(stack.refs["KeysTable"]),
        PepperSource(stack.refs["PepperSecret"]),
        RouteTable.from_json('{"ANY /*": "prices:read"}'),
        clock=clock,
    )
    monkeypatch.setattr(authorizer_handler, "_authorizer", built)
    return built


def test_the_generated_token_authorizer_event(
    service: Any, authorizer: Authorizer, lambda_context: Any
) -> None:
    issued = service.create("acme", actor="ops", scopes=["prices:read"])
    event = generate("apigateway", "authorizer")
    event["authorizationToken"] = issued.token
    response = authorizer_handler.lambda_handler(event, lambda_context)
    assert response["principalId"] == issued.record.kid
    assert response["policyDocument"]["Statement"][0]["Effect"] == "Allow"
    event["authorizationToken"] = "incoming-client-token"
    with pytest.raises(Exception, match=r"^Unauthorized$"):
        authorizer_handler.lambda_handler(event, lambda_context)


def test_the_generated_request_authorizer_event(
    service: Any, authorizer: Authorizer, lambda_context: Any
) -> None:
    issued = service.create("acme", actor="ops", scopes=["prices:read"])
    event = generate("apigateway", "request-authorizer")
    event["headers"]["x-api-key"] = issued.token
    if event.get("multiValueHeaders"):
        event["multiValueHeaders"]["x-api-key"] = [issued.token]
    response = authorizer_handler.lambda_handler(event, lambda_context)
    assert response["policyDocument"]["Statement"][0]["Effect"] == "Allow"
    other = service.create("acme", actor="ops", scopes=["orders:write"])
    event["headers"]["x-api-key"] = other.token
    if event.get("multiValueHeaders"):
        event["multiValueHeaders"]["x-api-key"] = [other.token]
    assert (
        authorizer_handler.lambda_handler(event, lambda_context)["policyDocument"]["Statement"][0]["Effect"]
        == "Deny"
    )


def test_an_http_api_request_shaped_as_aws_makes_it(
    service: Any, authorizer: Authorizer, lambda_context: Any
) -> None:
    issued = service.create("acme", actor="ops", scopes=["prices:read"])
    event = generate("apigateway", "http-api-proxy")  # the 2.0 request an HTTP API authorizer also receives
    event.update(
        type="REQUEST",
        routeArn="arn:aws:execute-api:us-east-1:123456789012:api-id/$default/POST/path/to/resource",
        identitySource=[issued.token],
    )
    event["headers"]["x-api-key"] = issued.token
    assert authorizer_handler.lambda_handler(event, lambda_context)["isAuthorized"] is True
    del event["headers"]["x-api-key"]
    assert authorizer_handler.lambda_handler(event, lambda_context) == {"isAuthorized": False}


def test_the_generated_proxy_event_reaches_the_management_api(api_service: Any, lambda_context: Any) -> None:
    event = generate("apigateway", "aws-proxy")
    event.update(path="/keys", resource="/keys", httpMethod="POST", pathParameters=None)
    event["body"] = base64.b64encode(
        json.dumps({"owner": "acme", "scopes": ["prices:read"]}).encode()
    ).decode()
    event["isBase64Encoded"] = True
    response = api_handler.lambda_handler(event, lambda_context)
    assert response["statusCode"] == 200
    assert json.loads(response["body"])["owner_id"] == "acme"


def test_the_generated_stream_event_with_a_key_swapped_in(
    service: Any, stack: Any, lambda_context: Any
) -> None:
    targets = Targets(stack)
    event = generate("dynamodb", "update")
    assert alerts_handler.lambda_handler(event, lambda_context) == {"batchItemFailures": []}
    assert targets.from_sns() == [], "another table's items are not key transitions"
    reader = StreamReader(stack.refs["KeysTable"])
    kid = service.create("acme", actor="ops").record.kid
    service.revoke(kid, actor="sec", reason="leaked")
    images = [r["dynamodb"] for r in reader.read() if r["dynamodb"]["Keys"]["sk"]["S"] == "KEY"]
    for record, image in zip(event["Records"], images, strict=False):
        record["dynamodb"]["Keys"] = image["Keys"]
        record["dynamodb"]["NewImage"] = image["NewImage"]
        record["dynamodb"].pop("OldImage", None)
        if "OldImage" in image:
            record["dynamodb"]["OldImage"] = image["OldImage"]
    assert alerts_handler.lambda_handler(event, lambda_context) == {"batchItemFailures": []}
    types = [json.loads(e["Message"])["type"] for e in targets.from_sns()]
    assert types == ["created", "revoked"][: len(types)] and types


def test_the_generated_scheduled_event_runs_the_rotation(
    service: Any, clock: FakeClock, lambda_context: Any
) -> None:
    service.create("acme", actor="ops", rotation_days=30)
    clock.advance(days=30)
    result = rotation_handler.lambda_handler(
        generate("cloudwatch", "scheduled-event"), lambda_context, service=service
    )
    assert result["rotated"] == 1 and result["errors"] == 0
