"""``keysentry demo``: a key's life on the embedded default cloud (moto), narrated.

Everything runs in this process against template.yaml's resources created in moto. Plaintext
keys are shown shortened: a real operator sees them once, in full, at creation.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from typing import Any

from keysentry.model import DAY

from keysentry_dev import require_local_extra


class DemoClock:
    def __init__(self) -> None:
        self.now = int(time.time())

    def __call__(self) -> int:
        return self.now

    def advance(self, days: float) -> None:
        self.now += int(days * DAY)


def _say(text: str) -> None:
    print(f"\n== {text}", flush=True)


def _short(token: str) -> str:
    return token[:20] + "…" + token[-4:]


def _iso(ts: int | None) -> str:
    import datetime as dt

    return "-" if ts is None else dt.datetime.fromtimestamp(ts, dt.UTC).strftime("%Y-%m-%d")


def _request(token: str, method: str, path: str, ip: str) -> Any:
    from keysentry.authorizer import read_request

    return read_request(
        {
            "type": "REQUEST",
            "methodArn": f"arn:aws:execute-api:us-east-1:123456789012:demo/prod/{method}{path}",
            "httpMethod": method,
            "path": path,
            "headers": {"X-Api-Key": token},
            "requestContext": {"identity": {"sourceIp": ip}},
        }
    )


def _stream_events(table: str) -> list[dict[str, Any]]:
    from keysentry import aws
    from keysentry.alerts import lifecycle_event

    ddb, streams = aws.client("dynamodb"), aws.client("dynamodbstreams")
    arn = ddb.describe_table(TableName=table)["Table"]["LatestStreamArn"]
    shard = streams.describe_stream(StreamArn=arn)["StreamDescription"]["Shards"][0]["ShardId"]
    iterator = streams.get_shard_iterator(StreamArn=arn, ShardId=shard, ShardIteratorType="TRIM_HORIZON")
    records = streams.get_records(ShardIterator=iterator["ShardIterator"], Limit=1000)["Records"]
    events = []
    for record in records:
        image = record["dynamodb"]
        event = lifecycle_event(record["eventID"], image.get("OldImage"), image.get("NewImage"))
        if event is not None:
            events.append(event)
    return events


def run_demo(steps: list[Callable[[dict[str, Any]], None]] | None = None) -> int:
    require_local_extra("keysentry demo")
    from moto import mock_aws

    for name, value in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
    }.items():
        os.environ.setdefault(name, value)
    os.environ.pop("AWS_ENDPOINT_URL", None)

    os.environ["AWS_ACCOUNT_ID_ENDPOINT_MODE"] = "disabled"  # moto serves the regional endpoints
    with mock_aws():
        from keysentry import aws
        from keysentry.authorizer import Authorizer
        from keysentry.rotation import RotationJob
        from keysentry.routes import RouteTable
        from keysentry.service import KeyService
        from keysentry.settings import Settings

        from keysentry_dev import local

        aws.reset()
        stack = local.provision()
        os.environ.update(stack.function_environment())
        clock = DemoClock()
        service = KeyService.from_settings(Settings.from_env(), clock=clock)
        ctx: dict[str, Any] = {"service": service, "clock": clock, "stack": stack}

        _say("Provisioned template.yaml's tables, secret, KMS key, topic, bus and queue in moto")
        for logical, ref in sorted(stack.refs.items()):
            print(f"   {logical:<22} {ref}")

        _say("Issue keys for two consumers, one job each")
        prices = service.create(
            "acme-data",
            actor="demo",
            name="price feed",
            scopes=["prices:read"],
            allow_cidrs=["203.0.113.0/24"],
        )
        orders = service.create(
            "globex",
            actor="demo",
            name="order entry",
            scopes=["orders:write", "prices:read"],
            rotation_days=30,
        )
        for issued in (prices, orders):
            r = issued.record
            print(
                f"   {r.kid}  owner={r.owner_id:<10} scopes={','.join(r.scopes):<26} key={_short(issued.token)}"
            )
        print("   (the full key is shown once; only HMAC-SHA256(pepper, key) is stored)")

        _say("An operator lists acme-data's keys")
        records, _ = service.list_keys("acme-data")
        for r in records:
            print(f"   {r.kid}  {r.status}  {r.name}  allow={','.join(r.allow_cidrs)}")

        _say("acme-data reports a leak: disable it first (suspend), then decide")
        r = service.suspend(prices.record.kid, actor="ops@acme", reason="key pasted in a public gist")
        print(f"   {r.kid} is {r.status}")
        r = service.resume(prices.record.kid, actor="ops@acme", reason="gist was private; false alarm")
        print(f"   {r.kid} is {r.status} again")

        _say("globex's key is compromised for real: revoke (terminal)")
        r = service.revoke(orders.record.kid, actor="security@globex", reason="laptop stolen")
        print(f"   {r.kid} is {r.status}")
        try:
            service.resume(orders.record.kid, actor="someone", reason="undo?")
        except Exception as error:  # the demo shows the refusal
            print(f"   resume refused: {error}")

        _say("The gateway asks the authorizer (REST REQUEST events)")
        authorizer = Authorizer(
            service.store,
            service.peppers,
            RouteTable.from_json('{"GET /v1/prices/*": "prices:read", "POST /v1/orders": "orders:write"}'),
            cache_ttl=0,
            clock=clock,
        )
        for label, token, method, path, ip in (
            (
                "acme, GET /v1/prices/BTC from 203.0.113.10",
                prices.token,
                "GET",
                "/v1/prices/BTC",
                "203.0.113.10",
            ),
            (
                "acme, GET /v1/prices/BTC from 198.51.100.7",
                prices.token,
                "GET",
                "/v1/prices/BTC",
                "198.51.100.7",
            ),
            ("acme, POST /v1/orders (not its scope)", prices.token, "POST", "/v1/orders", "203.0.113.10"),
            ("globex (revoked), GET /v1/prices/BTC", orders.token, "GET", "/v1/prices/BTC", "203.0.113.10"),
            ("a mistyped key", prices.token[:-1] + "x", "GET", "/v1/prices/BTC", "203.0.113.10"),
        ):
            decision = authorizer.decide(_request(token, method, path, ip))
            print(f"   {label:<46} -> {decision.outcome.value} ({decision.reason})")

        _say("Time passes: the hourly rotation job, with the clock moved forward")
        job = RotationJob(service)
        for day in (83, 89, 90):
            clock.now = prices.record.created_at + day * DAY
            summary = job.run()
            done = summary.reminded + summary.rotated + summary.expired
            print(f"   day {day:>2}: {', '.join(done) or 'nothing due'}")
        predecessor = service.get(prices.record.kid)
        successor_kid = predecessor.successor or ""
        print(
            f"   {predecessor.kid} is {predecessor.status} until {_iso(predecessor.grace_until)}; successor {successor_kid}"
        )
        from keysentry.service import Issued

        picked = service.pick_up_successor(prices.record.kid)
        if isinstance(picked, Issued):
            print(f"   acme picks up its successor once (KMS-encrypted until now): {_short(picked.token)}")
        again = service.pick_up_successor(prices.record.kid)
        print(
            f"   a second pickup gets {'nothing: the copy was erased as it was read' if again is None else again}"
        )
        old = authorizer.decide(_request(prices.token, "GET", "/v1/prices/BTC", "203.0.113.10"))
        print(f"   the old key during grace -> {old.outcome.value}")
        clock.now = prices.record.created_at + 97 * DAY
        summary = job.run()
        print(f"   day 97: expired {', '.join(summary.expired)}")
        old = authorizer.decide(_request(prices.token, "GET", "/v1/prices/BTC", "203.0.113.10"))
        print(f"   the old key after grace -> {old.outcome.value} ({old.reason})")
        if isinstance(picked, Issued):
            new = authorizer.decide(_request(picked.token, "GET", "/v1/prices/BTC", "203.0.113.10"))
            print(f"   the successor -> {new.outcome.value}")

        _say("Every change is an alert: the keys table's stream, as the alerts function sees it")
        for event in _stream_events(stack.refs["KeysTable"]):
            print(f"   [{event['severity']:<8}] {event['type']:<17} {event['kid']} {event['reason']}")

        from keysentry_dev.demo_plans import show_quota
        from keysentry_dev.demo_usage import show_usage

        for step in [show_usage, show_quota, *(steps or [])]:
            step(ctx)

        for kid in (prices.record.kid, orders.record.kid):
            _say(f"The audit trail of {kid}")
            for e in service.audit(kid):
                why = f": {e.reason}" if e.reason else ""
                print(
                    f"   v{e.version} {e.action:<8} {e.from_status or '-':>9} -> {e.to_status:<9} by {e.actor}{why}"
                )
    print("\ndone.")
    return 0
