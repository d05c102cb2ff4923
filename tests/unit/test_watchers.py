"""Several watchers of a metered batch: each watches, whatever another does; the batch fails if one did."""

from __future__ import annotations

import pytest
from keysentry.metering import Recorded, Watchers
from keysentry.usage import Batch


class Failing:
    def reads(self, batch: Batch) -> list[tuple[str, str]]:
        return [("k#A", "d#2026-09-21"), ("k#A", "profile")]

    def watch(self, recorded: Recorded) -> int:
        raise RuntimeError("could not publish")


class Counting:
    def __init__(self) -> None:
        self.watched: list[Recorded] = []

    def reads(self, batch: Batch) -> list[tuple[str, str]]:
        return [("k#A", "d#2026-09-21"), ("k#A", "d#2026-09-20")]

    def watch(self, recorded: Recorded) -> int:
        self.watched.append(recorded)
        return 1


def recorded() -> Recorded:
    return Recorded({}, {}, {}, {}, replayed=False)


def test_each_watcher_watches_even_when_one_before_it_fails_and_the_batch_then_fails() -> None:
    after = Counting()
    watchers = Watchers(Failing(), after)
    with pytest.raises(RuntimeError, match="could not publish"):
        watchers.watch(recorded())
    assert len(after.watched) == 1


def test_the_watchers_reads_are_read_once_together() -> None:
    first, second = Counting(), Counting()
    watchers = Watchers(Failing(), first, second)
    assert watchers.reads(Batch()) == [("k#A", "d#2026-09-20"), ("k#A", "d#2026-09-21"), ("k#A", "profile")]
    assert Watchers(first, second).watch(recorded()) == 2
