"""End to end: every function under `sam local invoke`, and a scenario over HTTP under
`sam local start-api`, against `keysentry local up` (a moto server with template.yaml's resources).

Run by `make e2e`. Prints each step with its result and exits non-zero on the first failure; stops
everything it started, even on failure. Uses `SAM_INVOKE_IMAGE` when set (a locally built Lambda
image, for machines that cannot pull the public ones).
"""

from __future__ import annotations

import base64
import gzip
import json
import os
import platform
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import yaml
from keysentry_dev.template import load_template

from tests.e2e.flatten import env_vars, flat_template, nested_application
from tests.integration.authz_helpers import iam_effect

ROOT = Path(__file__).resolve().parents[2]
EVENTS = ROOT / "events"
VENV_BIN = Path(sys.executable).parent
SAM = os.environ.get("SAM", str(ROOT / ".venv-sam" / "bin" / "sam"))
EXAMPLE_TOKEN = "ks_test_EXAMPLEKEY00000000000000000000000000000000001gKwCs"
EXAMPLE_KID = "EXAMPLEKEY00"
MOTO_PORT = int(os.environ.get("E2E_MOTO_PORT", "4566"))
API_PORT = int(os.environ.get("E2E_API_PORT", "3000"))
DOCKER_HOST_IP = os.environ.get("E2E_DOCKER_HOST_IP", "172.17.0.1")
BUILD_DIR = ROOT / ".aws-sam" / "e2e"
TEMPLATE = ROOT / ".e2e-template.yaml"
ENV_FILE = ROOT / ".keysentry-e2e.json"
START_API_LOG = BUILD_DIR / "start-api.log"  # sam local start-api's output, for a failing step
HTTP_EXAMPLE = ROOT / "examples" / "http-api"
HTTP_EXAMPLE_TEMPLATE = BUILD_DIR / "example-http-api.yaml"  # beside the built functions it refers to
HTTP_EXAMPLE_ENV_FILE = BUILD_DIR / "example-http-api-env.json"
HTTP_EXAMPLE_LOG = BUILD_DIR / "example-http-api.log"

started: list[subprocess.Popen[str]] = []
passed: list[str] = []
failures: list[str] = []


def step(name: str, ok: bool, detail: str = "") -> None:
    print(f"  {'PASS' if ok else 'FAIL'}  {name}{'  ' + detail if detail else ''}", flush=True)
    if not ok:
        failures.append(name)
        raise SystemExit(f"e2e failed at: {name}")
    passed.append(name)


def sam_args(parameters: str = "") -> list[str]:
    """The local endpoint goes in as a template parameter: sam local only lets --env-vars override
    variables the template declares, and the template declares AWS_ENDPOINT_URL only for it."""
    image = os.environ.get("SAM_INVOKE_IMAGE")
    overrides = f"LocalEndpointUrl=http://{DOCKER_HOST_IP}:{MOTO_PORT} {parameters}".strip()
    endpoint = ["--parameter-overrides", overrides]
    return endpoint + (["--invoke-image", image, "--skip-pull-image"] if image else [])


SAM_ENV = {
    "SAM_CLI_TELEMETRY": "0",
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",  # moto's dummy credentials, handed to the containers
    "AWS_DEFAULT_REGION": "us-east-1",
}


def run(cmd: list[str], **kwargs: Any) -> subprocess.CompletedProcess[str]:
    return subprocess.run(cmd, cwd=ROOT, text=True, capture_output=True, check=False, **kwargs)  # noqa: S603


def wait_port(port: int, seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return True
        time.sleep(0.5)
    return False


# ---------------------------------------------------------------- set-up


HTTP_API_EVENTS = ("        HttpPrices:", "        HttpOrders:")  # the sample backend's HTTP API routes


def local_template(text: str, arch: str) -> str:
    """template.yaml as SAM CLI can emulate it: this machine's architecture; without the source
    address among the sample API's identity sources (SAM CLI looks ``identity.sourceIp`` up as one flat
    key of the request context, finds nothing and answers 401 without calling the authorizer;
    API Gateway reads it); and without the sample HTTP API's routes, which are the REST API's own
    method and path: `sam local start-api` serves all APIs on one port, one handler per route, and
    would answer the REST scenario through the HTTP API's authorizer."""
    lines: list[str] = []
    skipping = False
    for line in text.replace("arm64", arch).splitlines():
        if line.startswith(HTTP_API_EVENTS):
            skipping = True
            continue
        if skipping and line.strip() and len(line) - len(line.lstrip()) <= 8:
            skipping = False
        if not skipping and "Context: [identity.sourceIp]" not in line:
            lines.append(line)
    return "\n".join(lines) + "\n"


def host_arch() -> str:
    return "x86_64" if platform.machine() in ("x86_64", "AMD64") else "arm64"


def build() -> None:
    """sam build of template.yaml, for this machine's architecture (the template targets arm64)."""
    TEMPLATE.write_text(local_template((ROOT / "template.yaml").read_text(), host_arch()))
    env = {**os.environ, "PYENV_VERSION": os.environ.get("PYENV_VERSION", "3.13.0"), "SAM_CLI_TELEMETRY": "0"}
    started_at = time.monotonic()
    done = run([SAM, "build", "-t", str(TEMPLATE), "--build-dir", str(BUILD_DIR)], env=env)
    step(
        "sam build (python3.13)",
        done.returncode == 0,
        f"{time.monotonic() - started_at:.0f} s" if done.returncode == 0 else done.stderr[-2000:],
    )


def local_up() -> dict[str, str]:
    process = subprocess.Popen(  # noqa: S603
        [
            str(VENV_BIN / "keysentry"),
            "local",
            "up",
            "--host",
            "0.0.0.0",  # noqa: S104 - the containers of sam local reach it through docker0
            "--port",
            str(MOTO_PORT),
            "--env-file",
            str(ENV_FILE),
            "--container-host",
            DOCKER_HOST_IP,
        ],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    started.append(process)
    exports: dict[str, str] = {}
    assert process.stdout is not None
    for line in process.stdout:
        if line.startswith("export "):  # quoted for a shell: read as a shell reads it
            name, _, value = shlex.split(line)[1].partition("=")
            exports[name] = value
        if line.startswith("# moto server on"):
            break
    step("keysentry local up (moto server from template.yaml)", "KEYS_TABLE" in exports, f"port {MOTO_PORT}")
    doc = json.loads(ENV_FILE.read_text())
    doc["AuthorizerFunction"]["AUTH_CACHE_TTL"] = "0"  # see a revocation on the next request
    ENV_FILE.write_text(json.dumps(doc, indent=2))
    return exports


def cli(env: dict[str, str], *args: str) -> dict[str, Any]:
    done = run([str(VENV_BIN / "keysentry"), *args, "--json"], env=env)
    if done.returncode != 0:
        step(f"keysentry {' '.join(args[:2])}", False, done.stderr)
    result: dict[str, Any] = json.loads(done.stdout)
    return result


# ---------------------------------------------------------------- sam local invoke


def invoke(function: str, event: dict[str, Any], parameters: str = "") -> tuple[dict[str, Any] | None, str]:
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as f:
        json.dump(event, f)
    try:
        done = run(
            [
                SAM,
                "local",
                "invoke",
                function,
                "-t",
                str(BUILD_DIR / "template.yaml"),
                "-e",
                f.name,
                "--env-vars",
                str(ENV_FILE),
                *sam_args(parameters),
            ],
            env={**os.environ, **SAM_ENV},
            timeout=180,
        )
    finally:
        os.unlink(f.name)
    out = done.stdout.strip().splitlines()
    try:
        return json.loads(out[-1]) if out else None, done.stderr
    except ValueError:
        return None, done.stdout + done.stderr


def event_with(name: str, token: str | None = None, kid: str | None = None) -> dict[str, Any]:
    text = (EVENTS / f"{name}.json").read_text()
    if token:
        text = text.replace(EXAMPLE_TOKEN, token)
    if kid:
        text = text.replace(EXAMPLE_KID, kid)
    doc: dict[str, Any] = json.loads(text)
    return doc


def effect(response: dict[str, Any] | None, event: dict[str, Any]) -> str:
    """What API Gateway does with the answer for this request: a policy is evaluated as IAM does,
    for the request's own ARN (an explicit Deny wins, then an Allow)."""
    if not response:
        return "none"
    if "errorMessage" in response:
        return str(response["errorMessage"])
    if "isAuthorized" in response:
        return "Allow" if response["isAuthorized"] else "Deny"
    arn = str(event.get("methodArn") or event.get("routeArn") or "")
    return iam_effect(response["policyDocument"], arn)


def invocations(env: dict[str, str]) -> None:
    print("sam local invoke", flush=True)
    prices = cli(
        env,
        "keys",
        "create",
        "--owner",
        "acme",
        "--scope",
        "prices:read",
        "--env",
        "live",
        "--allow-cidr",
        "203.0.113.0/24",
        "--allow-cidr",
        "2001:db8:1234::/48",
    )
    token, kid = prices["key"], prices["kid"]
    for name, expected in (
        ("authorizer_rest_request_valid", "Allow"),
        ("authorizer_rest_request_bearer", "Allow"),
        ("authorizer_rest_token", "Deny"),  # IP rules need a source IP: a TOKEN authorizer has none
        ("authorizer_rest_request_ipv6", "Allow"),
        ("authorizer_rest_request_wrong_ip", "Deny"),
        ("authorizer_rest_request_wrong_scope", "Deny"),
        ("authorizer_rest_request_malformed", "Unauthorized"),
        ("authorizer_rest_request_missing_key", "Unauthorized"),
        ("authorizer_http_v2_simple", "Allow"),
    ):
        event = event_with(name, token)
        response, log = invoke("AuthorizerFunction", event)
        got = effect(response, event)
        step(f"AuthorizerFunction {name}", got == expected, f"-> {got}" if got == expected else log[-1500:])
    response, log = invoke("ApiFunction", event_with("api_get_key", kid=kid))
    ok = bool(response) and response.get("statusCode") == 200 and json.loads(response["body"])["kid"] == kid  # type: ignore[union-attr]
    step("ApiFunction api_get_key", ok, "-> 200" if ok else log[-1500:])
    response, log = invoke("RotationFunction", event_with("rotation_scheduled"))
    ok = bool(response) and response.get("errors") == 0  # type: ignore[union-attr]
    step("RotationFunction rotation_scheduled", ok, f"-> {response}" if ok else log[-1500:])
    response, log = invoke("AlertsFunction", event_with("alerts_stream_revoked"))
    ok = response == {"batchItemFailures": []}
    step("AlertsFunction alerts_stream_revoked", ok, f"-> {response}" if ok else log[-1500:])
    response, log = invoke("ScanningKeysFunction", event_with("scanning_keys_scheduled"))
    ok = bool(response) and "stored" in response  # type: ignore[operator]  # GitHub may be unreachable here
    step("ScanningKeysFunction scanning_keys_scheduled", ok, f"-> {response}" if ok else log[-1500:])
    proxy = event_with("api_self", kid=kid)
    proxy["path"], proxy["resource"] = "/v1/prices/BTC", "/v1/prices/{symbol}"
    proxy["requestContext"]["authorizer"] = {"key_id": kid, "owner_id": "acme", "signing": "bearer"}
    response, log = invoke("SampleBackendFunction", proxy)
    ok = bool(response) and response.get("statusCode") == 200  # type: ignore[union-attr]
    step("SampleBackendFunction (protected route)", ok, "-> 200" if ok else log[-1500:])
    usage_invocations(env)
    plans_invocations(env)


def log_lines(event: dict[str, Any]) -> list[str]:
    """The messages of a CloudWatch Logs subscription event (base64 of gzip of JSON)."""
    payload = json.loads(gzip.decompress(base64.b64decode(event["awslogs"]["data"])))
    return [e["message"] for e in payload["logEvents"]]


def access_line(message: str) -> dict[str, Any] | None:
    try:
        line = json.loads(message)
    except ValueError:
        return None
    return line if isinstance(line, dict) and "requestId" in line else None


def usage_invocations(env: dict[str, str]) -> None:
    """The usage function folds the example access log delivery into the usage table, once: the
    same batch delivered again (CloudWatch Logs retries a failed invocation) changes no counter."""
    import boto3

    event = event_with("usage_access_logs")
    lines = log_lines(event)
    readable = [line for line in map(access_line, lines) if line is not None]
    example = [line for line in readable if line["keyId"] == EXAMPLE_KID]
    hours = {
        time.strftime("h#%Y-%m-%dT%H", time.gmtime(int(line["requestTime"]) // 1000)) for line in example
    }
    assert len(hours) == 1, "the example's lines for its key are in one hour"
    key = {"pk": {"S": f"k#{EXAMPLE_KID}"}, "sk": {"S": hours.pop()}}
    dynamodb = boto3.client(
        "dynamodb",
        endpoint_url=env["AWS_ENDPOINT_URL"],
        region_name=env["AWS_DEFAULT_REGION"],
        aws_access_key_id=env["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=env["AWS_SECRET_ACCESS_KEY"],
    )
    expected = {"lines": len(lines), "unreadable": len(lines) - len(readable)}
    for delivery in ("first delivery", "the same batch redelivered"):
        response, log = invoke("UsageFunction", event)
        got = {name: (response or {}).get(name) for name in expected}
        step(
            f"UsageFunction usage_access_logs ({delivery})",
            got == expected,
            f"-> {response}" if got == expected else log[-1500:],
        )
        item = dynamodb.get_item(TableName=env["USAGE_TABLE"], Key=key, ConsistentRead=True).get("Item")
        requests = int(item["requests"]["N"]) if item else None
        step(
            f"usage table: {key['pk']['S']} {key['sk']['S']} counts its {len(example)} requests ({delivery})",
            requests == len(example),
            f"-> requests {requests}",
        )
    event = event_with("usage_authorizer_decisions")
    expected = {"lines": len(log_lines(event)), "unreadable": 0}
    response, log = invoke("UsageFunction", event)
    got = {name: (response or {}).get(name) for name in expected}
    step(
        "UsageFunction usage_authorizer_decisions",
        got == expected,
        f"-> {response}" if got == expected else log[-1500:],
    )


def moto_client(env: dict[str, str], service: str) -> Any:
    import boto3

    factory: Any = boto3.client  # any service, by name
    return factory(
        service,
        endpoint_url=env["AWS_ENDPOINT_URL"],
        region_name=env["AWS_DEFAULT_REGION"],
        aws_access_key_id=env["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=env["AWS_SECRET_ACCESS_KEY"],
    )


def metered(env: dict[str, str], kid: str) -> tuple[str, bool, list[str]] | None:
    """What the moto server's API Gateway holds for a key: (its API key's value, enabled, usage plans)."""
    apigateway = moto_client(env, "apigateway")
    name = f"keysentry-usage-{kid}"
    found = [k for k in apigateway.get_api_keys(includeValues=True)["items"] if k["name"] == name]
    if not found:
        return None
    plans = apigateway.get_usage_plans(keyId=found[0]["id"])["items"]
    return found[0]["value"], found[0]["enabled"], sorted(p["name"] for p in plans)


def plans_invocations(env: dict[str, str]) -> None:
    """PlansSyncFunction (UsageIdentifier on): a stream record of a key this run issued gives it its
    API key on its plan's usage plan; then the deployment's custom resource gives one to a key issued
    without a record delivered (the backfill). Its answer to CloudFormation is checked by the
    integration tests, not here: it goes only to https or to http on the function's own host, and a
    container of sam local cannot reach this host's 127.0.0.1 (SAM CLI does not support
    ``--docker-network host``), so the PUT fails after the backfill and the step reads its log line."""
    streamed = cli(env, "keys", "create", "--owner", "acme", "--scope", "prices:read", "--plan", "free")[
        "kid"
    ]
    event = json.loads(
        (EVENTS / "plans_sync_stream_created.json").read_text().replace("X3Rju0idQzF7", streamed)
    )
    response, log = invoke("PlansSyncFunction", event, "UsageIdentifier=true")
    got = metered(env, streamed)
    want = (f"keysentry-usage-{streamed}", True, ["keysentry-dev-free"])
    ok = response == {"batchItemFailures": []} and got == want
    step("PlansSyncFunction stream record: API key on its usage plan", ok, f"-> {got}" if ok else log[-1500:])

    backfilled = cli(env, "keys", "create", "--owner", "acme", "--scope", "prices:read")["kid"]
    request = {
        "RequestType": "Create",
        "ResponseURL": "http://127.0.0.1:9/answer",  # the container's own: the answer is not checked here
        "StackId": "arn:aws:cloudformation:us-east-1:123456789012:stack/keysentry/e2e",
        "RequestId": "e2e",
        "LogicalResourceId": "UsagePlansAtDeploy",
        "ResourceType": "Custom::UsagePlans",
        "ResourceProperties": {},
    }
    _, log = invoke("PlansSyncFunction", request, "UsageIdentifier=true")
    reconciled = [line for line in log.splitlines() if '"message":"API keys reconciled"' in line]
    done = json.loads(reconciled[0]) if reconciled else {}
    got = metered(env, backfilled)
    ok = got == (f"keysentry-usage-{backfilled}", True, ["keysentry-dev-unlimited"]) and done.get("finished")
    detail = (
        f"-> {done.get('checked')} keys checked, {len(done.get('changes', []))} changes"
        if ok
        else log[-1500:]
    )
    step("PlansSyncFunction custom resource Create: the backfill gives an older key its API key", ok, detail)


# ---------------------------------------------------------------- sam local start-api


def http(method: str, path: str, headers: dict[str, str] | None = None, body: Any = None) -> tuple[int, Any]:
    data = None if body is None else (body if isinstance(body, bytes) else json.dumps(body).encode())
    request = urllib.request.Request(
        f"http://127.0.0.1:{API_PORT}{path}", data=data, method=method, headers=headers or {}
    )
    try:
        with urllib.request.urlopen(request, timeout=120) as response:  # noqa: S310
            raw = response.read()
            status = response.status
    except urllib.error.HTTPError as error:
        raw, status = error.read(), error.code
    try:
        return status, json.loads(raw) if raw else None
    except ValueError:
        return status, raw.decode(errors="replace")


def start_api(template: Path, env_file: Path, warm: str, log: Path) -> subprocess.Popen[str]:
    """`sam local start-api` on API_PORT, its output in ``log``; waits until it listens."""
    process = subprocess.Popen(  # noqa: S603
        [
            SAM,
            "local",
            "start-api",
            "-t",
            str(template),
            "--port",
            str(API_PORT),
            "--env-vars",
            str(env_file),
            "--warm-containers",
            warm,
            *sam_args(),
        ],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=log.open("w"),
        text=True,
        env={**os.environ, **SAM_ENV},
    )
    started.append(process)
    step("sam local start-api is listening", wait_port(API_PORT, 180), f"port {API_PORT} ({template.name})")
    return process


def scenario(env: dict[str, str]) -> subprocess.Popen[str]:
    print("sam local start-api", flush=True)
    process = start_api(BUILD_DIR / "template.yaml", ENV_FILE, "EAGER", START_API_LOG)

    status, created = http(
        "POST",
        "/keys",
        {"Content-Type": "application/json"},
        {"owner": "acme", "scopes": ["prices:read"], "env": "live"},
    )
    step("POST /keys (management API) creates a key", status == 200 and "key" in created, f"-> {status}")
    key, kid = created["key"], created["kid"]

    status, body = http("GET", "/v1/prices/BTC", {"X-Api-Key": key})
    step(
        "GET /v1/prices/BTC with the key",
        status == 200 and body["caller"]["key_id"] == kid,
        f"-> {status}, caller {body.get('caller') if isinstance(body, dict) else body}",
    )
    status, _ = http("GET", "/v1/prices/BTC")
    step("GET /v1/prices/BTC without a key", status == 401, f"-> {status}")
    status, _ = http("GET", "/v1/prices/BTC", {"X-Api-Key": key[:-1] + ("A" if key[-1] != "A" else "B")})
    # API Gateway turns the authorizer's "Unauthorized" error into a 401; SAM CLI's emulator does not
    # and answers 502 (the invoke step above checks the authorizer's own answer). Either way: no entry.
    step(
        "GET /v1/prices/BTC with a mistyped key is refused",
        status in (401, 502),
        f"-> {status} (401 on API Gateway)",
    )
    status, _ = http("POST", "/v1/orders", {"X-Api-Key": key, "Content-Type": "application/json"}, {"qty": 1})
    step("POST /v1/orders outside the key's scopes", status == 403, f"-> {status}")

    status, who = http("GET", "/self", {"X-Api-Key": key})
    step(
        "GET /self (self-service, behind the keysentry authorizer)",
        status == 200 and who["kid"] == kid,
        f"-> {status}",
    )

    status, rotated = http(
        "POST", f"/keys/{kid}/rotate", {"Content-Type": "application/json"}, {"grace_days": 1}
    )
    step("POST /keys/{kid}/rotate gives a successor", status == 200 and "key" in rotated, f"-> {status}")
    status, _ = http("GET", "/v1/prices/BTC", {"X-Api-Key": rotated["key"]})
    step("the successor is allowed", status == 200, f"-> {status}")
    status, _ = http("GET", "/v1/prices/BTC", {"X-Api-Key": key})
    step("the predecessor still works during grace", status == 200, f"-> {status}")

    status, revoked = http(
        "POST", f"/keys/{kid}/revoke", {"Content-Type": "application/json"}, {"reason": "e2e"}
    )
    step("POST /keys/{kid}/revoke", status == 200 and revoked["status"] == "revoked", f"-> {status}")
    status, _ = http("GET", "/v1/prices/BTC", {"X-Api-Key": key})
    step("the revoked key is refused", status == 403, f"-> {status}")

    status, signed_key = http(
        "POST",
        "/keys",
        {"Content-Type": "application/json"},
        {"owner": "globex", "scopes": ["orders:write"], "signing": "hmac", "env": "live"},
    )
    step(
        "POST /keys with signing hmac returns the secret once",
        status == 200 and "signing_secret" in signed_key,
        f"-> {status}",
    )
    from keysentry.client import sign

    body = json.dumps({"symbol": "BTC", "qty": "0.5"}).encode()
    headers = {
        **sign(
            "POST",
            "/v1/orders",
            None,
            body,
            key=signed_key["key"],
            secret=signed_key["signing_secret"],
            content_type="application/json",
        ),
    }
    status, _ = http("POST", "/v1/orders", headers, body)
    step("POST /v1/orders signed with hmac", status == 200, f"-> {status}")
    status, _ = http("POST", "/v1/orders", headers, body)
    step("the same signed request replayed", status == 403, f"-> {status}")
    fresh = {
        **sign(
            "POST",
            "/v1/orders",
            None,
            body,
            key=signed_key["key"],
            secret=signed_key["signing_secret"],
            content_type="application/json",
        ),
    }
    status, _ = http("POST", "/v1/orders", fresh, b'{"symbol": "BTC", "qty": "500"}')
    step(
        "a signed request whose body was changed",
        status == 400,
        f"-> {status} (the backend checks the signed digest)",
    )
    return process


# ---------------------------------------------------------------- examples/http-api


def flatten_http_example(arch: str) -> None:
    """examples/http-api as one flat template beside keysentry's built functions (tests/e2e/flatten.py
    says why `sam local` cannot serve the nested application as it is deployed)."""
    example = load_template(HTTP_EXAMPLE / "template.yaml")
    source = load_template(ROOT / "template.yaml")
    built = load_template(BUILD_DIR / "template.yaml")
    _, parameters = nested_application(example)
    flat = flat_template(built, source, example, HTTP_EXAMPLE, arch)
    HTTP_EXAMPLE_TEMPLATE.write_text(yaml.safe_dump(flat, sort_keys=False))
    doc = env_vars(json.loads(ENV_FILE.read_text()), source, parameters)
    HTTP_EXAMPLE_ENV_FILE.write_text(json.dumps(doc, indent=2))


def http_api_example(env: dict[str, str]) -> None:
    """The HTTP API example's own routes behind keysentry's authorizer, with the example's RouteScopes."""
    print("examples/http-api under sam local start-api", flush=True)
    remove_containers()  # the previous scenario's warm containers
    flatten_http_example(host_arch())
    start_api(HTTP_EXAMPLE_TEMPLATE, HTTP_EXAMPLE_ENV_FILE, "LAZY", HTTP_EXAMPLE_LOG)
    reader = cli(env, "keys", "create", "--owner", "acme", "--scope", "items:read", "--env", "live")
    writer = cli(env, "keys", "create", "--owner", "acme", "--scope", "items:write", "--env", "live")
    sample = cli(env, "keys", "create", "--owner", "acme", "--scope", "prices:read", "--env", "live")

    for path, route in (("/v1/items", "GET /v1/items"), ("/v1/items/42", "GET /v1/items/{id}")):
        status, body = http("GET", path, {"X-Api-Key": reader["key"]})
        answer = body if isinstance(body, dict) else {}
        step(
            f"GET {path} with an items:read key",
            status == 200
            and answer.get("route") == route
            and (answer.get("caller") or {}).get("key_id") == reader["kid"],
            f"-> {status}, {body}",
        )
    status, _ = http("GET", "/v1/items")
    step("GET /v1/items without a key", status == 401, f"-> {status}")
    mistyped = reader["key"][:-1] + ("A" if reader["key"][-1] != "A" else "B")
    status, body = http("GET", "/v1/items", {"X-Api-Key": mistyped})
    # with simple responses the authorizer answers every refusal isAuthorized: false, which HTTP
    # APIs answer with 403; only a missing identity source is API Gateway's own 401
    step(
        "GET /v1/items with a mistyped key is refused before the backend",
        status == 403 and "caller" not in str(body),
        f"-> {status}",
    )
    status, _ = http("POST", "/v1/items", {"X-Api-Key": reader["key"]}, {"name": "x"})
    step("POST /v1/items with a key without items:write", status == 403, f"-> {status}")
    status, _ = http("POST", "/v1/items", {"X-Api-Key": writer["key"]}, {"name": "x"})
    step("POST /v1/items with an items:write key", status == 200, f"-> {status}")
    status, _ = http("GET", "/v1/items", {"X-Api-Key": sample["key"]})
    step(
        "GET /v1/items with a prices:read key (the example's RouteScopes decide)",
        status == 403,
        f"-> {status}",
    )


def stop(process: subprocess.Popen[str]) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()


def remove_containers() -> None:
    if shutil.which("docker"):
        ids = run(["docker", "ps", "-q", "--filter", "label=sam.cli.container.type"]).stdout.split()
        if ids:
            run(["docker", "rm", "-f", *ids])


def stop_all() -> None:
    for process in reversed(started):
        stop(process)
    remove_containers()
    TEMPLATE.unlink(missing_ok=True)


def main() -> int:
    started_at = time.monotonic()
    print(f"keysentry e2e (image: {os.environ.get('SAM_INVOKE_IMAGE') or 'public Lambda image'})", flush=True)
    try:
        build()
        exports = local_up()
        env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")} | exports
        invocations(env)
        stop(scenario(env))
        http_api_example(env)
    except SystemExit as error:
        print(error, flush=True)
        print(f"e2e: {len(passed)} passed, {len(failures) or 1} failed", flush=True)
        return 1
    finally:
        stop_all()
    print(f"all steps passed in {time.monotonic() - started_at:.0f} s", flush=True)
    print(f"e2e: {len(passed)} passed, 0 failed", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
