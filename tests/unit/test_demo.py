"""`make demo` narrates a key's whole life on moto; it must keep working."""

from __future__ import annotations

import pytest
from keysentry_dev.demo import run_demo


def test_the_demo_runs_the_lifecycle_end_to_end(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    assert run_demo() == 0
    out = capsys.readouterr().out
    for line in [
        "-> allow (ok)",
        "-> deny (ip_not_allowed)",
        "-> deny (scope_missing)",
        "-> deny (status_revoked)",
        "-> unauthorized (malformed_key)",
        "resume refused: cannot resume key",
        "a second pickup gets nothing",
        "the old key during grace -> allow",
        "the old key after grace -> deny (status_expired)",
        "the successor -> allow",
        "] revoked ",
        "v7 expire    rotating -> expired",
        "the same delivery again (at-least-once): 0 writes, 0 new anomalies",
        "requests per hour, UTC",
        "] usage_spike        suspended=True ",
        "] new_source_network suspended=False",
        "is now suspended",
        "plan=free   first request -> allow (ok)",
        "the next request -> deny (quota_exceeded)",
        "] quota_exhausted 1000 requests of 1000 per day on plan free",
        "quota:         1000 of 1000 this day",
        "is on pro (1,000,000 a month); the next request -> allow (ok)",
    ]:
        assert line in out, line
