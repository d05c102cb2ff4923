"""PepperSource: a bounded age, a last good copy when Secrets Manager fails, one place to configure."""

from __future__ import annotations

import json
from typing import Any

import pytest
from keysentry.errors import ConfigurationError
from keysentry.peppers import DEFAULT_MAX_AGE_S, PepperSource, max_age_from_env


class Throttled(Exception):
    pass


class FakeSecrets:
    class exceptions:
        ResourceNotFoundException = LookupError

    def __init__(self) -> None:
        self.doc = {"current": "1", "1": "a" * 64}
        self.reads = 0
        self.failing = False

    def get_secret_value(self, SecretId: str) -> dict[str, Any]:
        self.reads += 1
        if self.failing:
            raise Throttled()
        return {"SecretString": json.dumps(self.doc)}


class Clock:
    now = 0.0

    def __call__(self) -> float:
        return self.now


def test_a_warm_copy_is_read_again_once_older_than_its_max_age() -> None:
    secrets, clock = FakeSecrets(), Clock()
    source = PepperSource("s", secrets, max_age=300, monotonic=clock)
    assert source.get().current == "1" and secrets.reads == 1
    secrets.doc = {"current": "2", "1": "a" * 64, "2": "b" * 64}
    clock.now = 299.9
    assert source.get().current == "1" and secrets.reads == 1
    clock.now = 300
    assert source.get().current == "2" and secrets.reads == 2


def test_a_failed_refresh_keeps_the_last_good_copy_and_retries_within_a_minute() -> None:
    secrets, clock = FakeSecrets(), Clock()
    source = PepperSource("s", secrets, max_age=300, monotonic=clock)
    source.get()
    secrets.failing, clock.now = True, 300
    assert source.get().current == "1" and secrets.reads == 2
    clock.now = 330
    assert source.get().current == "1" and secrets.reads == 2, "not a read per request"
    secrets.failing, clock.now = False, 360
    secrets.doc = {"current": "2", "1": "a" * 64, "2": "b" * 64}
    assert source.get().current == "2" and secrets.reads == 3


def test_the_first_read_fails_closed() -> None:
    secrets = FakeSecrets()
    secrets.failing = True
    with pytest.raises(Throttled):
        PepperSource("s", secrets, max_age=300).get()


def test_the_max_age_comes_from_one_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("PEPPER_MAX_AGE_SECONDS", raising=False)
    assert max_age_from_env() == DEFAULT_MAX_AGE_S == 300
    monkeypatch.setenv("PEPPER_MAX_AGE_SECONDS", "60")
    assert PepperSource("s").max_age == 60
    for bad in ("0", "3601", "five"):
        monkeypatch.setenv("PEPPER_MAX_AGE_SECONDS", bad)
        with pytest.raises(ConfigurationError):
            max_age_from_env()
