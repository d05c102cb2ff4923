"""Usage aggregation: a batch of access log and decision lines to one counter set per key and hour."""

from __future__ import annotations

import json
from typing import Any

from hypothesis import given
from hypothesis import strategies as st
from keysentry import usage
from keysentry.usage import ACCESS_LOG_FIELDS, ACCESS_LOG_FORMAT, MAX_NETWORKS, OTHER, Batch, network_of

HOUR_MS = 3_600_000
T = 1_800_000_000_000  # ms: 2027-01-15T08:00:00Z, an hour's start


def access(**fields: Any) -> str:
    line = {
        "requestId": "r1",
        "requestTime": str(T + 5_000),
        "apiId": "a1b2c3d4e5",
        "stage": "prod",
        "keyId": "aAdhmsOBIl3H",
        "httpMethod": "GET",
        "route": "/v1/prices/{symbol}",
        "path": "/v1/prices/BTC",
        "status": "200",
        "sourceIp": "203.0.113.10",
        "responseLength": "120",
        "latency": "15",
        "authorizerError": "-",
    }
    line.update(fields)
    return json.dumps(line)


def decision(**fields: Any) -> str:
    line = {"level": "INFO", "message": "decision", "outcome": "deny", "reason": "ip_not_allowed"}
    line["key_id"] = "aAdhmsOBIl3H"
    line.update(fields)
    return json.dumps(line)


def test_a_batch_is_one_counter_set_per_key_and_hour_not_per_request() -> None:
    batch = Batch()
    for i in range(3):
        batch.add_access_line(access(requestId=f"r{i}", status="200" if i else "404"), T)
    batch.add_access_line(access(requestTime=str(T + HOUR_MS + 1)), T)  # the next hour
    batch.add_access_line(access(keyId="bBdhmsOBIl3H", httpMethod="POST", route="/v1/orders"), T)
    assert sorted(batch.keys) == [
        ("aAdhmsOBIl3H", T // 1000),
        ("aAdhmsOBIl3H", T // 1000 + 3600),
        ("bBdhmsOBIl3H", T // 1000),
    ]
    hour = batch.keys[("aAdhmsOBIl3H", T // 1000)]
    assert (hour.requests, hour.bytes, hour.latency_ms) == (3, 360, 45)
    assert hour.by_status == {"2xx": 2, "4xx": 1}
    assert hour.by_route == {"GET /v1/prices/{symbol}": 3}
    assert hour.networks == {"203.0.113.0/24": 3}
    assert batch.keys[("bBdhmsOBIl3H", T // 1000)].by_route == {"POST /v1/orders": 1}


def test_lines_without_a_key_count_under_their_api() -> None:
    batch = Batch()
    batch.add_access_line(access(keyId="-", status="401"), T)
    batch.add_access_line(access(keyId="", status="403", apiId="-"), T)
    assert batch.keys == {}
    assert batch.keyless[("a1b2c3d4e5", T // 1000)].by_status == {"4xx": 1}
    assert batch.keyless[(OTHER, T // 1000)].requests == 1


def test_a_malformed_line_is_counted_and_skipped_never_fatal() -> None:
    batch = Batch()
    for bad in ("", "not json", "[1, 2]", '{"no": "request id"}', decision()[:-3]):
        batch.add_access_line(bad, T)
    batch.add_decision_line("{broken", T)
    batch.add_access_line(access(status="-", responseLength="-", latency="x", sourceIp="-"), T)
    assert batch.unreadable == 6
    hour = batch.keys[("aAdhmsOBIl3H", T // 1000)]
    assert (hour.requests, hour.bytes, hour.latency_ms) == (1, 0, 0)
    assert hour.by_status == {OTHER: 1} and hour.networks == {}


def test_a_path_that_breaks_out_of_its_quotes_cannot_count_under_a_key_it_names() -> None:
    """The gateway writes the caller's path into the line. Were a quote in it left unescaped, a caller
    refused without a key could append fields of its own: a key id (the last of two is what a JSON
    reader keeps), an address, a status. A line that names a field twice is not the format's."""
    path = '/v1/x", "keyId": "VICTIMKEY123", "x": "'  # as written unescaped into "path": "..."
    line = access(keyId="-", status="403").replace('"/v1/prices/BTC"', f'"{path}"')
    assert json.loads(line)["keyId"] == "VICTIMKEY123"
    batch = Batch()
    batch.add_line(line, T)
    batch.add_access_line(line, T)
    assert batch.keys == {} and batch.unreadable == 2


def test_refusals_come_from_the_authorizers_decision_lines() -> None:
    batch = Batch()
    batch.add_decision_line(decision(), T)
    batch.add_decision_line(decision(outcome="unauthorized", reason="wrong_digest"), T)
    batch.add_decision_line(decision(outcome="allow", reason="ok"), T)  # not a refusal
    batch.add_decision_line(json.dumps({"message": "cold start"}), T)  # not a decision
    batch.add_decision_line(decision(key_id=None, outcome="unauthorized", reason="malformed_key"), T)
    assert batch.keys[("aAdhmsOBIl3H", T // 1000)].refusals == {"ip_not_allowed": 1, "wrong_digest": 1}
    assert len(batch.keys) == 1 and batch.unreadable == 0


def test_source_networks_are_bounded_per_key_and_hour() -> None:
    batch = Batch()
    for i in range(MAX_NETWORKS + 5):
        batch.add_access_line(access(requestId=f"r{i}", sourceIp=f"198.{i // 256}.{i % 256}.7"), T)
    batch.add_access_line(access(sourceIp="198.0.0.99"), T)  # a network already kept
    networks = batch.keys[("aAdhmsOBIl3H", T // 1000)].networks
    assert len(networks) == MAX_NETWORKS + 1
    assert networks[OTHER] == 5 and networks["198.0.0.0/24"] == 2


def test_networks_are_slash_24_and_slash_48() -> None:
    assert network_of("203.0.113.77") == "203.0.113.0/24"
    assert network_of("::ffff:203.0.113.77") == "203.0.113.0/24"
    assert network_of("2001:db8:1234:5678::1") == "2001:db8:1234::/48"
    assert network_of("-") is None and network_of("") is None


def test_the_access_log_format_is_json_with_every_field_the_aggregation_reads() -> None:
    assert json.loads(ACCESS_LOG_FORMAT) == ACCESS_LOG_FIELDS
    assert all(value.startswith("$context.") for value in ACCESS_LOG_FIELDS.values())
    assert {"requestId", "keyId", "status", "sourceIp", "responseLength", "latency"} <= set(ACCESS_LOG_FIELDS)


_octets = st.one_of(
    st.integers(0, 300).map(str), st.sampled_from(["00", "01", "007", "", "-1", "1e2", "\u0661"])
)


@given(
    ip=st.one_of(
        st.tuples(_octets, _octets, _octets, _octets).map(".".join),
        st.ip_addresses().map(str),
        st.text(alphabet="0123456789.:abcdef \n", max_size=20),
    )
)
def test_the_quick_ipv4_path_reads_addresses_as_ipaddress_does(ip: str) -> None:
    assert network_of(ip) == usage._network_of(ip)  # the path through ipaddress, for every input
