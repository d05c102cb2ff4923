"""The authorizer, warm: a cache hit next to the bare floor, a cache miss next to a bare GetItem,
malformed and made-up keys."""

from __future__ import annotations

import hashlib
import hmac
import os
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from bench.common import ARN, ROUTES, Context, per_call, rest_event, row


@dataclass
class Bench:
    service: Any
    issued: Any
    authorizer: Any
    event: dict[str, Any]
    calls: list[str]  # the DynamoDB operations made, in order
    answer: Callable[[], Any]  # what the handler does before logging: read, decide, respond


def _setup() -> Bench:
    from keysentry import aws
    from keysentry.authorizer import Authorizer, read_request, respond
    from keysentry.routes import RouteTable
    from keysentry.service import KeyService
    from keysentry.settings import Settings

    service = KeyService.from_settings(Settings.from_env())
    issued = service.create("bench", actor="bench", scopes=["prices:read"], allow_cidrs=["203.0.113.0/24"])
    authorizer = Authorizer(service.store, service.peppers, RouteTable.from_json(ROUTES), cache_ttl=3600)
    calls: list[str] = []
    aws.client("dynamodb").meta.events.register("before-call", lambda model, **_: calls.append(model.name))
    event = rest_event(issued.token)

    def answer() -> Any:
        request = read_request(event)
        assert request is not None
        return respond(authorizer, request, authorizer.decide(request))

    return Bench(service, issued, authorizer, event, calls, answer)


def _floor(bench: Bench) -> Callable[[], Any]:
    """Hash the token, look the record up in a dict, build the same response by hand."""
    event, kid = bench.event, bench.issued.record.kid
    table = {
        kid: {
            "owner": "bench",
            "scopes": "prices:read",
            "digest": hashlib.sha256(bench.issued.token.encode()).hexdigest(),
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

    return floor


def _handler_call(bench: Bench) -> float:
    """The whole handler on a cache hit, its log and EMF lines sent to /dev/null."""
    from functions.authorizer import handler

    handler._authorizer = bench.authorizer
    context = Context()
    devnull = open(os.devnull, "w")  # noqa: SIM115 - the handler's log and EMF lines, not our output
    stream = handler.logger.registered_handler
    real_stdout, real_stream = sys.stdout, stream.stream  # type: ignore[attr-defined]
    sys.stdout = devnull
    stream.setStream(devnull)  # type: ignore[attr-defined]
    try:
        return per_call(lambda: handler.lambda_handler(bench.event, context), batch=300)
    finally:
        sys.stdout = real_stdout
        stream.setStream(real_stream)  # type: ignore[attr-defined]
        devnull.close()


def _hit_rows(bench: Bench) -> list[dict[str, Any]]:
    assert bench.answer()["policyDocument"]["Statement"][0]["Effect"] == "Allow"
    hit_s = per_call(bench.answer, batch=2000)
    floor_s = per_call(_floor(bench), batch=2000)
    full_s = _handler_call(bench)
    return [
        row(
            "authorizer warm, cache hit (decide + respond)",
            hit_s,
            floor_s,
            3.0,
            "floor: sha256 + dict + response",
        ),
        row(
            "authorizer warm, cache hit (whole handler, Powertools log + EMF)",
            full_s,
            floor_s,
            None,
            "info: logging and metrics included",
        ),
    ]


def _miss_row(bench: Bench) -> dict[str, Any]:
    """One strongly consistent GetItem, next to a bare GetItem on the same (moto) endpoint."""
    from keysentry import aws

    def miss() -> Any:
        bench.authorizer.cache.clear()
        return bench.answer()

    miss()
    bench.calls.clear()
    miss()
    assert bench.calls == ["GetItem"], bench.calls
    key = {"pk": {"S": bench.issued.record.kid}, "sk": {"S": "KEY"}}
    table, ddb = bench.service.store.table, aws.client("dynamodb")

    def bare() -> Any:
        return ddb.get_item(TableName=table, Key=key, ConsistentRead=True)

    miss_s = per_call(miss, batch=100)
    bare_s = per_call(bare, batch=100)
    return row(
        "authorizer warm, cache miss (1 GetItem)",
        miss_s,
        bare_s,
        1.15,
        "floor: bare boto3 GetItem, same endpoint",
    )


def _malformed_row(bench: Bench) -> dict[str, Any]:
    """A mis-checksummed token: zero AWS calls."""
    from keysentry.authorizer import read_request

    token = bench.issued.token
    bad = rest_event(token[:-1] + ("x" if token[-1] != "x" else "y"))
    bench.calls.clear()

    def malformed() -> Any:
        request = read_request(bad)
        assert request is not None
        return bench.authorizer.decide(request)

    malformed_s = per_call(malformed, batch=2000)
    return {
        "figure": "malformed token",
        "value_us": round(malformed_s * 1e6, 2),
        "floor_us": None,
        "ratio": None,
        "budget": "0 AWS calls",
        "met": bench.calls == [],
        "note": f"AWS calls made: {len(bench.calls)}",
    }


def _made_up_events(valid: bool) -> list[dict[str, Any]]:
    """1,000 fresh tokens: with a valid checksum (a new kid each), or with a broken one."""
    from keysentry import keyformat

    events = []
    for _ in range(1000):
        body = f"ks_live_{keyformat.new_kid()}{keyformat.random_base62(keyformat.SECRET_LEN)}"
        check = keyformat.checksum(body)
        if not valid:
            check = check[:-1] + ("0" if check[-1] != "0" else "1")
        events.append(rest_event(body + check))
    return events


def _made_up_row(bench: Bench) -> dict[str, Any]:
    """CRC32 is public, so every new kid passes the offline checks and costs one strongly
    consistent GetItem (the negative cache only helps a repeated kid): 1,000 fresh tokens per
    batch, next to 1,000 malformed ones through the same path."""
    from keysentry.authorizer import read_request

    def thousand(events: list[dict[str, Any]]) -> float:
        start = time.perf_counter()
        for doc in events:
            request = read_request(doc)
            assert request is not None
            assert bench.authorizer.decide(request).reason in ("unknown_key", "malformed_key")
        return time.perf_counter() - start

    made_up_s, malformed_s, made_up_calls, malformed_calls = [], [], [], []
    for _ in range(5):
        fresh, broken = _made_up_events(True), _made_up_events(False)
        bench.calls.clear()
        made_up_s.append(thousand(fresh))
        made_up_calls.append(bench.calls.count("GetItem"))
        bench.calls.clear()
        malformed_s.append(thousand(broken))
        malformed_calls.append(len(bench.calls))
    return {
        **row(
            "1,000 made-up keys, valid checksum (vs 1,000 malformed)",
            statistics.median(made_up_s),
            statistics.median(malformed_s),
            None,
            f"GetItem per 1,000: {max(made_up_calls)} made-up, {max(malformed_calls)} malformed "
            "(moto; DynamoDB: ~3-6 ms and 1 read request unit each)",
        ),
        "budget": "report: 1 GetItem per made-up kid",
        "met": min(made_up_calls) == 1000 and max(malformed_calls) == 0,
    }


def authorizer_figures(rows: list[dict[str, Any]]) -> None:
    bench = _setup()
    rows.extend(_hit_rows(bench))
    rows.append(_miss_row(bench))
    rows.append(_malformed_row(bench))
    rows.append(_made_up_row(bench))
