"""Promises about GitHub's scanning keys: they are fetched and kept current, and nothing GitHub (or
the network) serves can empty or corrupt them.

GitHub is a real HTTP server on 127.0.0.1 (stdlib http.server, in a thread), serving what each test
tells it to.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from keysentry import aws, scanning_keys
from keysentry.model import Status

from tests.conftest import EVENTS, template
from tests.integration.api_helpers import call
from tests.integration.authz_helpers import emitted_metrics
from tests.integration.github_helpers import (
    keys_document,
    match,
    new_signer,
    public_pem,
    publish,
    report,
    signed,
)

pytestmark = pytest.mark.usefixtures("api_service")


@dataclass
class FakeGitHub:
    """What the server answers next: a status and a body, or a stall until the test ends."""

    status: int = 200
    body: bytes = b""
    stall: bool = False
    location: str = ""
    released: threading.Event = field(default_factory=threading.Event)
    requests: list[tuple[str, str, bytes]] = field(default_factory=list)

    def serve(self, doc: Any, status: int = 200) -> None:
        self.status, self.body, self.stall = (
            status,
            (doc if isinstance(doc, bytes) else json.dumps(doc).encode()),
            False,
        )


@pytest.fixture
def github_server() -> Iterator[tuple[FakeGitHub, str]]:
    fake = FakeGitHub()

    class Handler(BaseHTTPRequestHandler):
        def _answer(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            fake.requests.append((self.command, self.path, self.rfile.read(length)))
            if fake.stall:
                fake.released.wait(30)
                return
            # a GET is GitHub's answer; a PUT is S3's, to CloudFormation's response
            status, body = (fake.status, fake.body) if self.command == "GET" else (200, b"")
            try:
                self.send_response(status)
                if fake.location:
                    self.send_header("Location", fake.location)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)
            except (BrokenPipeError, ConnectionResetError):
                pass  # the client stopped reading (a body over its limit)

        do_GET = _answer
        do_PUT = _answer

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield fake, f"http://127.0.0.1:{server.server_address[1]}/meta/public_keys/secret_scanning"
    finally:
        fake.released.set()
        server.shutdown()
        server.server_close()
        thread.join(10)


@pytest.fixture
def refresh_env(stack: Any, github_server: tuple[FakeGitHub, str], monkeypatch: pytest.MonkeyPatch) -> str:
    """The refresh function's environment, as the template sets it, with GitHub on 127.0.0.1."""
    resource = stack.template["Resources"]["ScanningKeysFunction"]["Properties"]
    for name, value in stack.environment(resource["Environment"]["Variables"]).items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("GITHUB_SCANNING_KEYS_URL", github_server[1])
    monkeypatch.setenv("GITHUB_SCANNING_KEYS_PARAMETER", stack.refs["GitHubScanningKeys"])
    return stack.refs["GitHubScanningKeys"]  # type: ignore[no-any-return]


def stored(parameter: str) -> Any:
    return json.loads(aws.client("ssm").get_parameter(Name=parameter)["Parameter"]["Value"])


def run_refresh(lambda_context: Any, event: str = "scanning_keys_scheduled") -> dict[str, Any]:
    from functions.scanning_keys import handler

    return handler.lambda_handler(json.loads((EVENTS / f"{event}.json").read_text()), lambda_context)  # type: ignore[no-any-return]


# ---------------------------------------------------------------- the refresh


def test_published_keys_are_stored(
    lambda_context: Any, github_server: tuple[FakeGitHub, str], refresh_env: str
) -> None:
    fake, _ = github_server
    current, retired = new_signer(), new_signer()
    published = {
        "public_keys": [
            {"key_identifier": "old", "key": public_pem(retired), "is_current": False},
            {"key_identifier": "new", "key": public_pem(current), "is_current": True},
        ]
    }
    fake.serve(published)
    shipped = template()["Resources"]["GitHubScanningKeys"]["Properties"]["Value"]
    assert json.loads(shipped) == {"public_keys": []}, "the template ships it empty"
    assert stored(refresh_env) != published  # the local stack's own key, where a deploy fetches GitHub's

    result = run_refresh(lambda_context)

    assert result == {"stored": True, "keys": 2, "current": 1, "reason": ""}
    assert stored(refresh_env) == published
    assert fake.requests[0][:2] == ("GET", "/meta/public_keys/secret_scanning")


def _valid_then(fake: FakeGitHub) -> dict[str, Any]:
    doc = keys_document(new_signer(), "kept")
    fake.serve(doc)
    return doc


def _other_curve_pem() -> str:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    key = ec.generate_private_key(ec.SECP384R1()).public_key()
    return key.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    ).decode()


NOT_P256 = _other_curve_pem()

BROKEN = {
    "http-500": (500, b'{"message": "Server Error"}'),
    "http-404": (404, b'{"message": "Not Found"}'),
    "garbage": (200, b"<html>rate limited</html>"),
    "empty-list": (200, b'{"public_keys": []}'),
    "no-public-keys": (200, b'{"keys": []}'),
    "not-an-object": (200, b'[{"key_identifier": "a"}]'),
    "malformed-pem": (
        200,
        json.dumps(
            {
                "public_keys": [
                    {
                        "key_identifier": "x",
                        "key": "-----BEGIN PUBLIC KEY-----\nnope\n-----END PUBLIC KEY-----",
                        "is_current": True,
                    }
                ]
            }
        ).encode(),
    ),
    "rsa-or-other-curve-pem": (
        200,
        json.dumps({"public_keys": [{"key_identifier": "x", "key": NOT_P256, "is_current": True}]}).encode(),
    ),
    "missing-is-current": (
        200,
        json.dumps({"public_keys": [{"key_identifier": "x", "key": public_pem(new_signer())}]}).encode(),
    ),
    "number-identifier": (
        200,
        json.dumps(
            {"public_keys": [{"key_identifier": 7, "key": public_pem(new_signer()), "is_current": True}]}
        ).encode(),
    ),
    "duplicate-identifiers": (
        200,
        json.dumps(
            {
                "public_keys": [
                    {"key_identifier": "x", "key": public_pem(new_signer()), "is_current": b}
                    for b in (True, False)
                ]
            }
        ).encode(),
    ),
    "deeply-nested": (200, b"[" * 100_000 + b"]" * 100_000),
    "too-large": (200, b'{"public_keys": [' + b" " * (2 * scanning_keys.MAX_BYTES) + b"]}"),
}


@pytest.mark.parametrize("answer", BROKEN.values(), ids=BROKEN.keys())
def test_a_failed_or_bad_fetch_leaves_the_stored_keys_unchanged(
    lambda_context: Any, github_server: tuple[FakeGitHub, str], refresh_env: str, answer: tuple[int, bytes]
) -> None:
    fake, _ = github_server
    good = _valid_then(fake)
    assert run_refresh(lambda_context)["stored"] is True
    version = aws.client("ssm").get_parameter(Name=refresh_env)["Parameter"]["Version"]

    fake.serve(answer[1], status=answer[0])
    result = run_refresh(lambda_context)

    assert result["stored"] is False and result["reason"]
    assert stored(refresh_env) == good
    assert aws.client("ssm").get_parameter(Name=refresh_env)["Parameter"]["Version"] == version


def test_a_stalled_github_times_out_and_leaves_the_stored_keys_unchanged(
    github_server: tuple[FakeGitHub, str], refresh_env: str
) -> None:
    fake, url = github_server
    good = _valid_then(fake)
    ssm = aws.client("ssm")
    assert scanning_keys.refresh(url=url, parameter=refresh_env, ssm=ssm).stored
    fake.stall = True

    outcome = scanning_keys.refresh(url=url, parameter=refresh_env, ssm=ssm, timeout=0.5)

    assert not outcome.stored and "TimeoutError" in outcome.reason
    assert stored(refresh_env) == good


def test_an_unreachable_github_leaves_the_stored_keys_unchanged(refresh_env: str) -> None:
    import socket

    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    before = stored(refresh_env)
    outcome = scanning_keys.refresh(
        url=f"http://127.0.0.1:{port}/keys", parameter=refresh_env, ssm=aws.client("ssm"), timeout=2
    )
    assert not outcome.stored and outcome.reason.startswith("could not fetch")
    assert stored(refresh_env) == before


def test_a_redirect_away_from_https_is_not_followed(
    github_server: tuple[FakeGitHub, str], refresh_env: str
) -> None:
    fake, url = github_server
    before = stored(refresh_env)
    fake.serve(b"", status=302)
    fake.location = "http://192.0.2.1/meta/public_keys/secret_scanning"  # plain http, not loopback
    outcome = scanning_keys.refresh(url=url, parameter=refresh_env, ssm=aws.client("ssm"), timeout=2)
    assert not outcome.stored and "redirect must be https" in outcome.reason
    assert stored(refresh_env) == before


@pytest.mark.parametrize(
    "url",
    [
        "file:///etc/passwd",
        "http://api.github.com/meta/public_keys/secret_scanning",
        "ftp://127.0.0.1/x",
        "https://",
    ],
)
def test_only_https_urls_are_fetched(refresh_env: str, url: str) -> None:
    before = stored(refresh_env)
    outcome = scanning_keys.refresh(url=url, parameter=refresh_env, ssm=aws.client("ssm"))
    assert not outcome.stored and "https" in outcome.reason
    assert stored(refresh_env) == before


def test_a_failed_refresh_is_logged_and_measured(
    lambda_context: Any,
    github_server: tuple[FakeGitHub, str],
    refresh_env: str,
    capfd: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    fake, _ = github_server
    fake.serve(b"oops", status=503)
    run_refresh(lambda_context)
    errors = [r for r in caplog.records if r.levelname == "ERROR"]
    assert errors and errors[0].reason == "GitHub answered HTTP 503"  # type: ignore[attr-defined]
    (metrics,) = emitted_metrics(capfd.readouterr().out)
    assert metrics["ScanningKeysRefreshFailed"] == [1.0] and metrics["ScanningKeysRefreshed"] == [0.0]

    fake.serve(keys_document(new_signer()))
    run_refresh(lambda_context)
    (metrics,) = emitted_metrics(capfd.readouterr().out)
    assert metrics["ScanningKeysRefreshFailed"] == [0.0] and metrics["ScanningKeysStored"] == [1.0]


# ---------------------------------------------------------------- end to end


def test_a_report_signed_with_the_fetched_key_is_accepted(
    lambda_context: Any, github_server: tuple[FakeGitHub, str], refresh_env: str, service: Any, stack: Any
) -> None:
    fake, _ = github_server
    github = new_signer()
    key = service.create("acme-data", actor="ops")
    publish(stack, {"public_keys": []})  # as deployed: every report refused
    assert report(lambda_context, github, [match(key.token)])[0] == 401

    fake.serve(keys_document(github, "github-2026"))
    assert run_refresh(lambda_context)["stored"] is True
    from keysentry.api import leaks

    leaks.keys_provider.cache_clear()  # a new container; a warm one sees the keys within KEYS_MAX_AGE_S

    body = json.dumps([match(key.token)])
    status, feedback = call(
        "api_leaks_github", lambda_context, raw_body=body, headers=signed(github, body, "github-2026")
    )
    assert status == 200 and feedback[0]["label"] == "true_positive"
    assert service.get(key.record.kid).status is Status.SUSPENDED


# ---------------------------------------------------------------- at deploy


def deploy_event(response_url: str, request_type: str = "Create") -> dict[str, Any]:
    return {
        "RequestType": request_type,
        "ServiceToken": "arn:aws:lambda:us-east-1:123456789012:function:keysentry-ScanningKeysFunction",
        "ResponseURL": response_url,
        "StackId": "arn:aws:cloudformation:us-east-1:123456789012:stack/keysentry/1",
        "RequestId": "b6c3f5a2-1d2e-4f3a-9b8c-7d6e5f4a3b2c",
        "LogicalResourceId": "ScanningKeysAtDeploy",
        "ResourceType": "Custom::GitHubScanningKeys",
        "ResourceProperties": {},
    }


@pytest.mark.parametrize("github_answers", ["keys", "an-error"])
def test_a_deployment_fills_the_keys_and_is_never_failed_by_github(
    lambda_context: Any, github_server: tuple[FakeGitHub, str], refresh_env: str, github_answers: str
) -> None:
    from functions.scanning_keys import handler

    fake, url = github_server
    doc = keys_document(new_signer(), "at-deploy")
    if github_answers == "keys":
        fake.serve(doc)
    else:
        fake.serve(b"", status=502)
    response_url = url.replace("/meta/public_keys/secret_scanning", "/cfn-response?signature=x")
    before = stored(refresh_env)

    handler.lambda_handler(deploy_event(response_url), lambda_context)

    answer = json.loads(fake.requests[-1][2])
    assert fake.requests[-1][:2] == ("PUT", "/cfn-response?signature=x")
    assert answer["Status"] == "SUCCESS" and answer["RequestId"] == "b6c3f5a2-1d2e-4f3a-9b8c-7d6e5f4a3b2c"
    assert answer["LogicalResourceId"] == "ScanningKeysAtDeploy" and answer["PhysicalResourceId"]
    if github_answers == "keys":
        assert stored(refresh_env) == doc and answer["Data"]["Keys"] == "1"
    else:
        assert stored(refresh_env) == before and "502" in answer["Reason"]  # the keys it had, kept


def test_deleting_the_stack_leaves_the_keys_alone(
    lambda_context: Any, github_server: tuple[FakeGitHub, str], refresh_env: str
) -> None:
    from functions.scanning_keys import handler

    fake, url = github_server
    handler.lambda_handler(deploy_event(url.replace("/meta", "/cfn"), "Delete"), lambda_context)
    assert [r[0] for r in fake.requests] == ["PUT"]
    assert json.loads(fake.requests[0][2])["Status"] == "SUCCESS"


# ---------------------------------------------------------------- the template


def test_the_refresh_may_write_the_keys_parameter_and_nothing_else(stack: Any) -> None:
    resources = stack.template["Resources"]
    function = resources["ScanningKeysFunction"]["Properties"]
    statements = [s for policy in function["Policies"] for s in policy["Statement"]]
    assert [s["Action"] for s in statements] == ["ssm:PutParameter"]
    assert stack.resolve(statements[0]["Resource"]).endswith(f":parameter/{stack.refs['GitHubScanningKeys']}")
    schedule = function["Events"]["Refresh"]
    assert schedule["Type"] == "ScheduleV2"
    assert stack.resolve(schedule["Properties"]["ScheduleExpression"]) == "rate(6 hours)"
    assert (
        stack.resolve(function["Environment"]["Variables"]["GITHUB_SCANNING_KEYS_URL"])
        == scanning_keys.DEFAULT_URL
    )
    assert resources["ScanningKeysAtDeploy"]["Properties"]["ServiceToken"] == {
        "Fn::GetAtt": ["ScanningKeysFunction", "Arn"]
    }


def test_local_up_gives_the_refresh_function_its_environment(stack: Any) -> None:
    from keysentry_dev.local import sam_env_vars

    doc = sam_env_vars(stack, "http://172.17.0.1:4566")
    assert doc["ScanningKeysFunction"]["GITHUB_SCANNING_KEYS_PARAMETER"] == stack.refs["GitHubScanningKeys"]
    assert doc["ScanningKeysFunction"]["GITHUB_SCANNING_KEYS_URL"] == scanning_keys.DEFAULT_URL


def test_the_endpoint_reads_githubs_keys_from_ssm_once_per_container_not_per_report(
    lambda_context: Any, service: Any, stack: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GITHUB_SCANNING_KEYS_PARAMETER", stack.refs["GitHubScanningKeys"])
    github = new_signer()
    publish(stack, keys_document(github))
    reads: list[str] = []
    aws.client("ssm").meta.events.register(
        "provide-client-params.ssm.GetParameter", lambda params, **_: reads.append(params["Name"])
    )
    for _ in range(5):
        key = service.create("acme-data", actor="ops")
        assert report(lambda_context, github, [match(key.token)])[0] == 200
    assert reads == [stack.refs["GitHubScanningKeys"]]
