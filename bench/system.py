"""Cold import, the rotation schedule's reads and the alerts' publish calls."""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import time
from typing import Any

from bench.common import ROOT, row


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
        row(
            "cold import: authorizer handler",
            imported - bare,
            baseline - bare,
            1.2,
            f"floor: import boto3 + 1 DynamoDB client; heavy modules: {heavy or 'none'}",
        )
    )
    rows.append(
        row(
            "cold import: handler + its DynamoDB client",
            with_client - bare,
            baseline - bare,
            None,
            "info: what the first request adds",
        )
    )


def _seed(service: Any, table: str, size: int, now: int) -> None:
    """``size`` live keys, 10 of them due for rotation (and already reminded)."""
    from dataclasses import replace

    from keysentry import aws, keyformat, model
    from keysentry.store import to_item

    peppers = service.peppers.get()
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
            record = replace(record, reminded="1d")
        items.append({"PutRequest": {"Item": to_item(record)}})
    ddb = aws.client("dynamodb")
    for start in range(0, len(items), 25):
        ddb.batch_write_item(RequestItems={table: items[start : start + 25]})


def _rotation_run(size: int) -> dict[str, Any]:
    from types import SimpleNamespace

    from keysentry import aws
    from keysentry.rotation import RotationJob
    from keysentry.service import KeyService
    from keysentry.settings import Settings
    from keysentry_dev import local
    from moto import mock_aws

    aws.reset()
    with mock_aws():
        stack = local.provision()
        os.environ.update(stack.function_environment())
        now = 1_790_000_000
        service = KeyService.from_settings(Settings.from_env(), clock=lambda: now)
        _seed(service, stack.refs["KeysTable"], size, now)
        read = {"items": 0, "scans": 0}

        def count(parsed: Any, model: Any, **_: Any) -> None:
            read["items"] += len(parsed.get("Items", [])) + (1 if parsed.get("Item") else 0)
            read["scans"] += model.name == "Scan"

        aws.client("dynamodb").meta.events.register("after-call.dynamodb", count)
        rotated: list[str] = []

        def record_rotation(record: Any, **_: Any) -> Any:  # writes are measured by the tests; reads here
            rotated.append(record.kid)
            return SimpleNamespace(record=SimpleNamespace(kid="successor"))

        service.rotate_record = record_rotation  # type: ignore[method-assign]
        start = time.perf_counter()
        RotationJob(service).run()
        elapsed = time.perf_counter() - start
    return {
        "figure": f"rotation run, {size:,} keys, 10 due",
        "value_us": round(elapsed * 1e6),
        "floor_us": None,
        "ratio": None,
        "budget": "items read ~ keys due, no Scan",
        "met": read["items"] <= 25 and read["scans"] == 0 and len(rotated) == 10,
        "note": f"items read {read['items']}, scans {read['scans']}, rotated {len(rotated)} (moto query time grows with the table; DynamoDB's does not)",
    }


def rotation_figures(rows: list[dict[str, Any]]) -> None:
    for size in (1_000, 10_000):
        rows.append(_rotation_run(size))


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
