"""Reading usage through the API and the CLI: the usage table is filled by the real usage function
from known access log and decision lines, and each report must give back exactly those counts."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import pytest
from keysentry import cli

from tests.conftest import T0
from tests.integration.api_helpers import call
from tests.integration.usage_helpers import (
    AUTHORIZER_GROUP,
    access_line,
    decision_line,
    subscription_event,
    usage_function,
)

HOUR = 3600
NOW_HOUR = T0 - T0 % HOUR  # the test clock's current hour: 2026-09-21T14:00:00Z


def iso(ts: int) -> str:
    import datetime as dt

    return dt.datetime.fromtimestamp(ts, dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass
class Fed:
    busy: str  # acme-data's key with 6 requests and 2 refusals, over three hours
    quiet: str  # acme-data's key with 1 request
    other: str  # another owner's key with 10 requests


@pytest.fixture
def fed(stack: Any, service: Any, lambda_context: Any, monkeypatch: pytest.MonkeyPatch) -> Fed:
    """Known lines through the usage function: its subscription events, as CloudWatch Logs sends them."""
    handler = usage_function(monkeypatch)
    busy, quiet = (service.create("acme-data", actor="ops", name=n).record.kid for n in ("feed", "backup"))
    other = service.create("globex", actor="ops", name="orders").record.kid
    at = [(NOW_HOUR - 5 * HOUR + 60) * 1000, (NOW_HOUR - 2 * HOUR + 60) * 1000, (NOW_HOUR + 60) * 1000]
    lines = [(at[0], access_line(busy, at[0], n=i)) for i in range(3)]
    lines += [
        (at[1], access_line(busy, at[1], status=404, route="/v1/orders", method="POST", ip="2001:db8::1"))
    ]
    lines += [(at[1], access_line(busy, at[1], status=500, n=1)), (at[2], access_line(busy, at[2]))]
    lines += [(at[1], access_line(quiet, at[1] - HOUR * 1000))]
    lines += [(at[2], access_line(other, at[2], n=i)) for i in range(10)]
    handler.lambda_handler(subscription_event(lines), lambda_context)
    refusals = [(at[1], decision_line(busy, "ip_not_allowed")) for _ in range(2)]
    handler.lambda_handler(subscription_event(refusals, group=AUTHORIZER_GROUP), lambda_context)
    return Fed(busy, quiet, other)


def nonzero(report: dict[str, Any]) -> dict[str, int]:
    return {p["start"]: p["requests"] for p in report["series"] if p["requests"]}


# ---------------------------------------------------------------- the API


@pytest.mark.usefixtures("api_service")
def test_a_keys_report_gives_back_the_lines_fed_hour_by_hour_with_its_gaps(
    fed: Fed, lambda_context: Any
) -> None:
    status, report = call("api_key_usage", lambda_context, kid=fed.busy)
    assert status == 200, report
    assert (report["from"], report["to"], report["granularity"]) == (
        iso(NOW_HOUR - 23 * HOUR),
        iso(NOW_HOUR + HOUR),
        "hour",
    )
    assert report["requests"] == 6 and report["bytes"] == 6 * 120 and report["latency_ms_mean"] == 25.0
    assert [p["start"] for p in report["series"]] == [iso(NOW_HOUR - h * HOUR) for h in range(23, -1, -1)]
    assert nonzero(report) == {iso(NOW_HOUR - 5 * HOUR): 3, iso(NOW_HOUR - 2 * HOUR): 2, iso(NOW_HOUR): 1}
    assert sum(p["requests"] for p in report["series"]) == report["requests"]
    assert report["by_status"] == {"2xx": 4, "4xx": 1, "5xx": 1}
    assert report["by_route"] == [
        {"route": "GET /v1/prices/{symbol}", "requests": 5},
        {"route": "POST /v1/orders", "requests": 1},
    ]
    assert report["networks"] == [
        {"network": "203.0.113.0/24", "requests": 5},
        {"network": "2001:db8::/48", "requests": 1},
    ]
    assert report["refusals"] == {"ip_not_allowed": 2} and report["refused"] == 2
    assert report["status"] == "active" and "last_used_at" in report  # what existing clients read


@pytest.mark.usefixtures("api_service")
def test_the_same_window_by_day_and_by_hour_agree(fed: Fed, lambda_context: Any) -> None:
    day = NOW_HOUR - NOW_HOUR % 86400
    window = {"from": str(day), "to": iso(day + 86400)}  # epoch seconds and ISO 8601 alike
    _, hourly = call("api_key_usage", lambda_context, kid=fed.busy, query={**window, "granularity": "hour"})
    _, daily = call("api_key_usage", lambda_context, kid=fed.busy, query={**window, "granularity": "day"})
    assert daily["series"] == [{"start": iso(day), "requests": 6, "bytes": 720, "refused": 2}]
    assert len(hourly["series"]) == 15 and hourly["to"] == iso(NOW_HOUR + HOUR)  # never past this hour
    for field in ("requests", "bytes", "by_status", "by_route", "networks", "refusals", "from"):
        assert hourly[field] == daily[field], field
    _, month = call("api_key_usage", lambda_context, kid=fed.busy, query={"granularity": "day"})
    assert len(month["series"]) == 30 and nonzero(month) == {iso(day): 6}


@pytest.mark.usefixtures("api_service")
@pytest.mark.parametrize(
    "query, message",
    [
        ({"from": "2026-09-21T12:00:00Z", "to": "2026-09-21T12:00:00Z"}, "from must be before to"),
        ({"from": "2026-07-01T00:00:00Z"}, "at most 840 hours: ask for granularity=day"),
        ({"from": "2026-08-01T00:00:00Z", "to": "2026-08-02T00:00:00Z"}, "kept 35 days"),
        ({"from": "2025-06-01", "granularity": "day"}, "at most 400 days"),
        ({"from": "2025-08-01", "to": "2025-08-02", "granularity": "day"}, "kept 400 days"),
        ({"from": "2026-09-21T12:00:00"}, "from needs its time zone"),
        ({"to": "1790000000000"}, "to is too large for epoch seconds (milliseconds?"),
        ({"from": "yesterday"}, "from must be epoch seconds or an ISO 8601 time"),
        ({"from": "2026-09-22T00:00:00Z"}, "from must be before now"),
    ],
)
def test_a_window_that_cannot_be_read_is_refused_with_its_reason(
    fed: Fed, lambda_context: Any, query: dict[str, str], message: str
) -> None:
    status, body = call("api_key_usage", lambda_context, kid=fed.busy, query=query)
    assert status == 400 and message in body["message"], body


@pytest.mark.usefixtures("api_service")
def test_unknown_keys_granularities_and_parameters_are_refused(fed: Fed, lambda_context: Any) -> None:
    assert call("api_key_usage", lambda_context, kid="AAAAAAAAAAAA")[0] == 404
    status, body = call("api_key_usage", lambda_context, kid=fed.busy, query={"granularity": "week"})
    assert status == 422 and body["errors"][0]["loc"] == ["query", "granularity"]
    status, body = call("api_key_usage", lambda_context, kid=fed.busy, query={"from": "9" * 41})
    assert status == 422 and body["errors"][0]["loc"] == ["query", "from"]
    assert call("api_owner_usage", lambda_context, query={"owner": "bad owner"})[0] == 400
    assert call("api_owner_usage", lambda_context, query={})[0] == 422


@pytest.mark.usefixtures("api_service")
def test_self_usage_is_the_calling_keys_own(fed: Fed, lambda_context: Any) -> None:
    status, mine = call("api_self_usage", lambda_context, kid=fed.quiet, query={"kid": fed.busy})
    assert status == 200 and mine["kid"] == fed.quiet and mine["requests"] == 1
    assert nonzero(mine) == {iso(NOW_HOUR - 3 * HOUR): 1}
    assert call("api_self_usage", lambda_context, authorizer={"principalId": fed.busy})[0] == 401
    status, body = call(
        "api_self_usage", lambda_context, kid=fed.quiet, query={"from": "2026-01-01", "to": "2026-01-02"}
    )
    assert status == 400 and "kept 35 days" in body["message"]


@pytest.mark.usefixtures("api_service")
def test_an_owners_report_lists_only_their_keys_busiest_first(fed: Fed, lambda_context: Any) -> None:
    status, report = call("api_owner_usage", lambda_context, query={"owner": "acme-data"})
    assert status == 200, report
    assert [(k["kid"], k["requests"], k["refused"]) for k in report["keys"]] == [
        (fed.busy, 6, 2),
        (fed.quiet, 1, 0),
    ]
    assert report["requests"] == 7 and report["truncated"] is False
    _, globex = call("api_owner_usage", lambda_context, query={"owner": "globex", "granularity": "day"})
    assert [(k["kid"], k["requests"]) for k in globex["keys"]] == [(fed.other, 10)]


# ---------------------------------------------------------------- the CLI


def run(capfd: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    capfd.readouterr()  # what the usage function logged while the table was filled
    code = cli.main(list(argv))
    out, err = capfd.readouterr()
    return code, out, err


@pytest.fixture
def cli_service(service: Any, monkeypatch: pytest.MonkeyPatch) -> Any:
    """The command line on the test's service, and so on its clock."""
    monkeypatch.setattr(cli, "_service", lambda args: service)
    return service


@pytest.mark.usefixtures("cli_service")
def test_the_cli_json_report_has_the_counts_and_their_types(
    fed: Fed, capfd: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = run(capfd, "keys", "usage", fed.busy, "--hours", "6", "--json")
    report = json.loads(out)
    assert code == 0 and report["kid"] == fed.busy and report["requests"] == 6
    assert (report["from"], report["to"]) == (iso(NOW_HOUR - 5 * HOUR), iso(NOW_HOUR + HOUR))
    assert isinstance(report["requests"], int) and isinstance(report["by_status"], dict)
    assert isinstance(report["by_route"], list) and isinstance(report["networks"], list)
    assert [p["requests"] for p in report["series"]] == [3, 0, 0, 2, 0, 1]
    assert all(isinstance(p["start"], str) and isinstance(p["requests"], int) for p in report["series"])
    _, out, _ = run(capfd, "keys", "usage", fed.busy, "--days", "2", "--json")
    assert [p["requests"] for p in json.loads(out)["series"]] == [0, 6]


@pytest.mark.usefixtures("cli_service")
def test_the_cli_prints_a_table_and_a_chart(fed: Fed, capfd: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capfd, "keys", "usage", fed.busy, "--hours", "24")
    assert code == 0 and max(len(line) for line in out.splitlines()) <= 80
    lines = out.splitlines()
    assert lines[0] == f"key {fed.busy}, {iso(NOW_HOUR - 23 * HOUR)} to {iso(NOW_HOUR + HOUR)}, by hour"
    assert "requests:      6" in lines and "status:        2xx 4   4xx 1   5xx 1" in lines
    assert "refused:       2   (ip_not_allowed 2)" in lines
    assert lines[-3:] == [
        "requests per hour, UTC (highest: 3)",
        "  " + "".join(mark * 3 for mark in "▁" * 18 + "█▁▁▆▁▄"),  # 24 hours, 3 columns each
        "  2026-09-20 15:00" + " " * 40 + "2026-09-21 14:00",
    ]


@pytest.mark.usefixtures("cli_service")
def test_the_cli_owner_report_and_its_mistakes(fed: Fed, capfd: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capfd, "usage", "--owner", "acme-data", "--days", "7")
    rows = out.splitlines()
    assert code == 0 and rows[3].startswith(fed.busy) and rows[4].startswith(fed.quiet)
    assert rows[-1].split() == ["total", "7"]
    assert run(capfd, "keys", "usage", "AAAAAAAAAAAA")[0] == 3
    code, out, err = run(capfd, "keys", "usage", fed.busy, "--hours", "5000")  # in the CLI's own terms
    assert code == 2 and "--hours is at most 840" in err and "--days" in err and out == ""
    assert "granularity" not in err
    code, out, err = run(capfd, "usage", "--owner", "acme-data", "--days", "500")
    assert code == 2 and "--days is at most 400" in err and "granularity" not in err and out == ""
    for option in ("--days", "--hours"):  # zero periods is a mistake, not the default window
        code, out, err = run(capfd, "keys", "usage", fed.busy, option, "0")
        assert code == 2 and f"{option} must be at least 1" in err and out == ""
    with pytest.raises(SystemExit):
        cli.main(["keys", "usage", fed.busy, "--hours", "2", "--days", "2"])
    assert "not allowed with argument" in capfd.readouterr().err
