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


def run_demo(steps: list[Callable[[dict[str, Any]], None]] | None = None) -> int:
    from moto import mock_aws

    for name, value in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
    }.items():
        os.environ.setdefault(name, value)
    os.environ.pop("AWS_ENDPOINT_URL", None)

    with mock_aws():
        from keysentry import aws, local
        from keysentry.service import KeyService
        from keysentry.settings import Settings

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

        for step in steps or []:
            step(ctx)

        _say(f"The audit trail of {prices.record.kid}")
        for e in service.audit(prices.record.kid):
            print(
                f"   v{e.version} {e.action:<8} {e.from_status or '-':>9} -> {e.to_status:<9} by {e.actor}: {e.reason}"
            )
        _say(f"The audit trail of {orders.record.kid}")
        for e in service.audit(orders.record.kid):
            print(
                f"   v{e.version} {e.action:<8} {e.from_status or '-':>9} -> {e.to_status:<9} by {e.actor}: {e.reason}"
            )
    print("\ndone.")
    return 0
