"""keysentry benchmarks: each figure measured next to its floor in the same run, reported as ratios.

Run with ``make bench`` (``python -m bench.run`` from the project root). Prints a table and writes bench/results.json. Nothing here is a test:
shared machines are noisy, so budgets are judged on medians of repeated batches, side by side.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]

os.environ.update(
    AWS_ACCESS_KEY_ID="testing",
    AWS_SECRET_ACCESS_KEY="testing",
    AWS_DEFAULT_REGION="us-east-1",
    AWS_ACCOUNT_ID_ENDPOINT_MODE="disabled",
    POWERTOOLS_SERVICE_NAME="keysentry",
    POWERTOOLS_METRICS_NAMESPACE="keysentry",
    POWERTOOLS_TRACE_DISABLED="true",
)
os.environ.pop("AWS_ENDPOINT_URL", None)

ROUTES = (
    '{"GET /v1/prices": "prices:read", "GET /v1/prices/*": "prices:read", "POST /v1/orders": "orders:write"}'
)
ARN = "arn:aws:execute-api:us-east-1:123456789012:a1b2c3d4e5/prod"


def per_call(fn: Callable[[], Any], *, batch: int, batches: int = 15) -> float:
    """Median seconds per call over ``batches`` batches of ``batch`` calls (after a warm-up batch)."""
    for _ in range(batch):
        fn()
    samples = []
    for _ in range(batches):
        start = time.perf_counter()
        for _ in range(batch):
            fn()
        samples.append((time.perf_counter() - start) / batch)
    return statistics.median(samples)


def rest_event(
    token: str, path: str = "/v1/prices/BTC", method: str = "GET", ip: str = "203.0.113.10"
) -> dict[str, Any]:
    return {
        "type": "REQUEST",
        "methodArn": f"{ARN}/{method}{path}",
        "httpMethod": method,
        "path": path,
        "headers": {"X-Api-Key": token, "Accept": "application/json", "User-Agent": "bench"},
        "multiValueHeaders": {"X-Api-Key": [token], "Accept": ["application/json"], "User-Agent": ["bench"]},
        "requestContext": {"identity": {"sourceIp": ip}},
    }


class Context:
    function_name = "bench"
    memory_limit_in_mb = 1024
    invoked_function_arn = "arn:aws:lambda:us-east-1:123456789012:function:bench"
    aws_request_id = "bench"

    def get_remaining_time_in_millis(self) -> int:
        return 900_000


def authorizer_figures(rows: list[dict[str, Any]]) -> None:
    from keysentry import aws
    from keysentry.authorizer import Authorizer, read_request, respond
    from keysentry.routes import RouteTable
    from keysentry.service import KeyService
    from keysentry.settings import Settings

    service = KeyService.from_settings(Settings.from_env())
    issued = service.create("bench", actor="bench", scopes=["prices:read"], allow_cidrs=["203.0.113.0/24"])
    authorizer = Authorizer(service.store, service.peppers, RouteTable.from_json(ROUTES), cache_ttl=3600)
    event = rest_event(issued.token)

    def hit() -> Any:
        request = read_request(event)
        assert request is not None
        return respond(authorizer, request, authorizer.decide(request))

    assert hit()["policyDocument"]["Statement"][0]["Effect"] == "Allow"

    # The floor: hash the token, look the record up in a dict, build the same response by hand.
    table = {
        issued.record.kid: {
            "owner": "bench",
            "scopes": "prices:read",
            "digest": hashlib.sha256(issued.token.encode()).hexdigest(),
        }
    }
    resources = [f"{ARN}/GET/v1/prices", f"{ARN}/GET/v1/prices/*"]

    def floor() -> Any:
        token = event["headers"]["X-Api-Key"]
        digest = hashlib.sha256(token.encode()).hexdigest()
        record = table[token[8:20]]
        assert hmac.compare_digest(digest, record["digest"])
        return {
            "principalId": token[8:20],
            "policyDocument": {
                "Version": "2012-10-17",
                "Statement": [{"Action": "execute-api:Invoke", "Effect": "Allow", "Resource": resources}],
            },
            "context": {
                "key_id": token[8:20],
                "owner_id": record["owner"],
                "scopes": record["scopes"],
                "status": "active",
            },
        }

    hit_s = per_call(hit, batch=2000)
    floor_s = per_call(floor, batch=2000)
    rows.append(
        _row(
            "authorizer warm, cache hit (decide + respond)",
            hit_s,
            floor_s,
            3.0,
            "floor: sha256 + dict + response",
        )
    )

    from functions.authorizer import handler

    handler._authorizer = authorizer
    context = Context()
    devnull = open(os.devnull, "w")  # noqa: SIM115 - the handler's log and EMF lines, not our output
    stream = handler.logger.registered_handler
    real_stdout, real_stream = sys.stdout, stream.stream  # type: ignore[attr-defined]
    sys.stdout = devnull
    stream.setStream(devnull)  # type: ignore[attr-defined]
    try:
        full_s = per_call(lambda: handler.lambda_handler(event, context), batch=300)
    finally:
        sys.stdout = real_stdout
        stream.setStream(real_stream)  # type: ignore[attr-defined]
    rows.append(
        _row(
            "authorizer warm, cache hit (whole handler, Powertools log + EMF)",
            full_s,
            floor_s,
            None,
            "info: logging and metrics included",
        )
    )

    # Cache miss: one strongly consistent GetItem, next to a bare GetItem on the same (moto) endpoint.
    calls: list[str] = []
    ddb = aws.client("dynamodb")
    ddb.meta.events.register("before-call", lambda model, **_: calls.append(model.name))

    def miss() -> Any:
        authorizer.cache.clear()
        request = read_request(event)
        assert request is not None
        return respond(authorizer, request, authorizer.decide(request))

    miss()
    calls.clear()
    miss()
    assert calls == ["GetItem"], calls
    key = {"pk": {"S": issued.record.kid}, "sk": {"S": "KEY"}}

    def bare() -> Any:
        return ddb.get_item(TableName=service.store.table, Key=key, ConsistentRead=True)

    miss_s = per_call(miss, batch=100)
    bare_s = per_call(bare, batch=100)
    rows.append(
        _row(
            "authorizer warm, cache miss (1 GetItem)",
            miss_s,
            bare_s,
            1.15,
            "floor: bare boto3 GetItem, same endpoint",
        )
    )

    # Malformed: zero AWS calls.
    bad = rest_event(issued.token[:-1] + ("x" if issued.token[-1] != "x" else "y"))
    calls.clear()

    def malformed() -> Any:
        request = read_request(bad)
        assert request is not None
        return authorizer.decide(request)

    malformed_s = per_call(malformed, batch=2000)
    rows.append(
        {
            "figure": "malformed token",
            "value_us": round(malformed_s * 1e6, 2),
            "floor_us": None,
            "ratio": None,
            "budget": "0 AWS calls",
            "met": calls == [],
            "note": f"AWS calls made: {len(calls)}",
        }
    )

    # Made-up keys with valid checksums: CRC32 is public, so every new kid passes the offline checks
    # and costs one strongly consistent GetItem (the negative cache only helps a repeated kid).
    # 1,000 fresh tokens per batch, next to 1,000 malformed ones through the same path.
    from keysentry import keyformat

    def made_up_events(valid: bool) -> list[dict[str, Any]]:
        events = []
        for _ in range(1000):
            body = f"ks_live_{keyformat.new_kid()}{keyformat.random_base62(keyformat.SECRET_LEN)}"
            check = keyformat.checksum(body)
            if not valid:
                check = check[:-1] + ("0" if check[-1] != "0" else "1")
            events.append(rest_event(body + check))
        return events

    def thousand(events: list[dict[str, Any]]) -> float:
        start = time.perf_counter()
        for doc in events:
            request = read_request(doc)
            assert request is not None
            assert authorizer.decide(request).reason in ("unknown_key", "malformed_key")
        return time.perf_counter() - start

    made_up_s, malformed_1000_s, made_up_calls, malformed_calls = [], [], [], []
    for _ in range(5):
        fresh, broken = made_up_events(True), made_up_events(False)
        calls.clear()
        made_up_s.append(thousand(fresh))
        made_up_calls.append(calls.count("GetItem"))
        calls.clear()
        malformed_1000_s.append(thousand(broken))
        malformed_calls.append(len(calls))
    rows.append(
        {
            **_row(
                "1,000 made-up keys, valid checksum (vs 1,000 malformed)",
                statistics.median(made_up_s),
                statistics.median(malformed_1000_s),
                None,
                f"GetItem per 1,000: {max(made_up_calls)} made-up, {max(malformed_calls)} malformed "
                "(moto; DynamoDB: ~3-6 ms and 1 read request unit each)",
            ),
            "budget": "report: 1 GetItem per made-up kid",
            "met": min(made_up_calls) == 1000 and max(malformed_calls) == 0,
        }
    )


def signing_figures(rows: list[dict[str, Any]]) -> None:
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ed25519, padding, rsa
    from keysentry.client import sign
    from keysentry.signing import Verifier, canonical_query, read_content_type, read_signed

    token = "ks_test_EXAMPLEKEY00000000000000000000000000000000001gKwCs"
    secret = "s" * 43
    body = b'{"symbol":"BTC","qty":"1"}'
    ed = ed25519.Ed25519PrivateKey.generate()
    rs = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    from cryptography.hazmat.primitives import serialization

    def pem(key: Any) -> str:
        return (
            key.public_key()
            .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
            .decode()
        )

    pss = padding.PSS(mgf=padding.MGF1(hashes.SHA256()), salt_length=32)
    for mode, verifier, signer in (
        ("hmac", Verifier("hmac", secret=secret), {"secret": secret}),
        ("ed25519", Verifier("ed25519", public_key_pem=pem(ed)), {"private_key": ed}),
        ("rsa", Verifier("rsa", public_key_pem=pem(rs)), {"private_key": rs}),
    ):
        query = {"account": ["main"], "tag": ["b", "a b"]}
        headers = sign(
            "POST",
            "/v1/orders",
            query,
            body,
            key=token,
            timestamp_ms=1,
            nonce="n" * 20,
            content_type="application/json",
            **signer,
        )
        lowered = {k.lower(): [v] for k, v in headers.items()}

        def verify(verifier: Any = verifier, lowered: dict[str, list[str]] = lowered) -> None:
            # per request: the signature headers, the canonical query, the Content-Type, the check
            verifier.verify(
                read_signed(lowered),
                "POST",
                "/v1/orders",
                canonical_query(query),
                read_content_type(lowered["content-type"]),
            )

        verify()
        message = b"x" * 200
        if mode == "hmac":
            mac = hmac.digest(secret.encode(), message, "sha256")

            def bare(mac: bytes = mac) -> None:
                hmac.compare_digest(hmac.digest(secret.encode(), message, "sha256"), mac)
        elif mode == "ed25519":
            signature, public = ed.sign(message), ed.public_key()

            def bare(signature: bytes = signature, public: Any = public) -> None:
                public.verify(signature, message)
        else:
            signature, public = rs.sign(message, pss, hashes.SHA256()), rs.public_key()

            def bare(signature: bytes = signature, public: Any = public) -> None:
                public.verify(signature, message, pss, hashes.SHA256())

        batch = 2000 if mode == "hmac" else 300
        rows.append(
            _row(
                f"signed request verify, {mode}",
                per_call(verify, batch=batch),
                per_call(bare, batch=batch),
                None,
                f"floor: bare {mode} verify",
            )
        )


def cold_import_figures(rows: list[dict[str, Any]]) -> None:
    python = sys.executable
    env = dict(os.environ)  # `python -c` in the project root imports functions/ as the tests do

    def run(code: str) -> float:
        samples = []
        for _ in range(9):
            start = time.perf_counter()
            subprocess.run([python, "-c", code], env=env, check=True, cwd=ROOT)
            samples.append(time.perf_counter() - start)
        return statistics.median(samples)

    run("pass")
    bare = run("pass")
    baseline = run("import boto3; boto3.client('dynamodb', region_name='us-east-1')")
    imported = run("import functions.authorizer.handler")
    with_client = run(
        "import functions.authorizer.handler; from keysentry import aws; aws.client('dynamodb')"
    )
    heavy = subprocess.run(
        [
            python,
            "-c",
            "import sys, functions.authorizer.handler; print(','.join(sorted(m for m in ('pydantic','cryptography','aws_xray_sdk','yaml','boto3','s3transfer') if m in sys.modules)))",
        ],
        env=env,
        capture_output=True,
        text=True,
        check=True,
        cwd=ROOT,
    ).stdout.strip()
    rows.append(
        _row(
            "cold import: authorizer handler",
            imported - bare,
            baseline - bare,
            1.2,
            f"floor: import boto3 + 1 DynamoDB client; heavy modules: {heavy or 'none'}",
        )
    )
    rows.append(
        _row(
            "cold import: handler + its DynamoDB client",
            with_client - bare,
            baseline - bare,
            None,
            "info: what the first request adds",
        )
    )


def rotation_figures(rows: list[dict[str, Any]]) -> None:
    from types import SimpleNamespace

    from keysentry import aws, keyformat, model
    from keysentry.rotation import RotationJob
    from keysentry.service import KeyService
    from keysentry.settings import Settings
    from keysentry.store import to_item
    from keysentry_dev import local

    for size in (1_000, 10_000):
        aws.reset()
        from moto import mock_aws

        with mock_aws():
            stack = local.provision()
            os.environ.update(stack.function_environment())
            now = 1_790_000_000
            service = KeyService.from_settings(Settings.from_env(), clock=lambda: now)
            peppers = service.peppers.get()
            ddb = aws.client("dynamodb")
            items = []
            for i in range(size):
                due = i < 10
                record = model.new_record(
                    kid=keyformat.new_kid(),
                    owner_id=f"o{i % 100}",
                    env="live",
                    digest=peppers.digest(str(i)),
                    pepper_version=peppers.current,
                    now=now - (30 * model.DAY if due else 0),
                    actor="bench",
                    rotation_days=30 if due else 90,
                )
                if due:
                    from dataclasses import replace

                    record = replace(record, reminded="1d")
                items.append({"PutRequest": {"Item": to_item(record)}})
            for start in range(0, len(items), 25):
                ddb.batch_write_item(RequestItems={stack.refs["KeysTable"]: items[start : start + 25]})
            read = {"items": 0, "scans": 0}

            def count(parsed: Any, model: Any, **_: Any) -> None:
                read["items"] += len(parsed.get("Items", [])) + (1 if parsed.get("Item") else 0)
                read["scans"] += model.name == "Scan"

            ddb.meta.events.register("after-call.dynamodb", count)
            rotated: list[str] = []

            def record_rotation(record: Any, **_: Any) -> Any:  # writes are measured by the tests; reads here
                rotated.append(record.kid)
                return SimpleNamespace(record=SimpleNamespace(kid="successor"))

            service.rotate_record = record_rotation  # type: ignore[method-assign]
            start = time.perf_counter()
            RotationJob(service).run()
            elapsed = time.perf_counter() - start
            rows.append(
                {
                    "figure": f"rotation run, {size:,} keys, 10 due",
                    "value_us": round(elapsed * 1e6),
                    "floor_us": None,
                    "ratio": None,
                    "budget": "items read ~ keys due, no Scan",
                    "met": read["items"] <= 25 and read["scans"] == 0 and len(rotated) == 10,
                    "note": f"items read {read['items']}, scans {read['scans']}, rotated {len(rotated)} (moto query time grows with the table; DynamoDB's does not)",
                }
            )


def alerts_figures(rows: list[dict[str, Any]]) -> None:
    from keysentry.alerts import AlertPublisher, StreamAlerts
    from keysentry.model import new_record
    from keysentry.store import to_item

    class Counting:
        def __init__(self) -> None:
            self.calls = 0

        def publish_batch(self, **kwargs: Any) -> dict[str, Any]:
            self.calls += 1
            return {"Failed": []}

        def put_events(self, **kwargs: Any) -> dict[str, Any]:
            self.calls += 1
            return {"FailedEntryCount": 0, "Entries": [{} for _ in kwargs["Entries"]]}

    sns, events = Counting(), Counting()
    alerts = StreamAlerts(
        AlertPublisher("arn:aws:sns:us-east-1:1:t", "bus", sns=sns, events=events), None, None
    )
    for i in range(100):
        record = new_record(
            kid=f"{i:012d}", owner_id="o", env="live", digest="d", pepper_version="1", now=1, actor="a"
        )
        alerts.collect(f"event-{i}", None, to_item(record), str(i))
    alerts.finish()
    rows.append(
        {
            "figure": "alerts: publish calls per 100 events",
            "value_us": None,
            "floor_us": None,
            "ratio": None,
            "budget": "1 call per 10 events per target (10 + 10)",
            "met": sns.calls == 10 and events.calls == 10,
            "note": f"SNS PublishBatch {sns.calls}, EventBridge PutEvents {events.calls}",
        }
    )


def _row(figure: str, value_s: float, floor_s: float, budget: float | None, note: str) -> dict[str, Any]:
    ratio = value_s / floor_s if floor_s else None
    return {
        "figure": figure,
        "value_us": round(value_s * 1e6, 2),
        "floor_us": round(floor_s * 1e6, 2),
        "ratio": round(ratio, 2) if ratio is not None else None,
        "budget": f"<= {budget}x" if budget else "report",
        "met": (ratio <= budget) if (budget and ratio is not None) else None,
        "note": note,
    }


def main() -> int:
    from keysentry import aws
    from keysentry_dev import local
    from moto import mock_aws

    rows: list[dict[str, Any]] = []
    with mock_aws():
        aws.reset()
        stack = local.provision()
        os.environ.update(stack.function_environment())
        authorizer_figures(rows)
    signing_figures(rows)
    cold_import_figures(rows)
    rotation_figures(rows)
    alerts_figures(rows)

    machine = f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}, {platform.system()}"
    print(f"\nkeysentry benchmarks ({machine}); medians, microseconds\n")
    header = f"{'figure':<62} {'value':>11} {'floor':>10} {'ratio':>7}  {'budget':<34} met"
    print(header)
    print("-" * len(header))
    for r in rows:
        value = "-" if r["value_us"] is None else f"{r['value_us']:,.2f}"
        floor = "-" if r["floor_us"] is None else f"{r['floor_us']:,.2f}"
        ratio = "-" if r["ratio"] is None else f"{r['ratio']:.2f}x"
        met = {True: "yes", False: "NO", None: "-"}[r["met"]]
        print(f"{r['figure']:<62} {value:>11} {floor:>10} {ratio:>7}  {r['budget']:<34} {met}")
        print(f"{'':<62} {r['note']}")
    out = ROOT / "bench" / "results.json"
    out.write_text(
        json.dumps(
            {"machine": machine, "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "rows": rows},
            indent=2,
        )
        + "\n"
    )
    print(f"\nwritten: {out.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
