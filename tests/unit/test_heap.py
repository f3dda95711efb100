"""When the gateway's heap upkeep (gateway.heap) collects the frozen heap whole: once the subscriptions ended
since the last time reach a quarter of those open (and a floor), or after its longest interval."""

from __future__ import annotations

from gateway.heap import HeapUpkeep


class Counts:
    def __init__(self) -> None:
        self.open, self.ended = 0, 0

    def __call__(self) -> tuple[int, int]:
        return self.open, self.ended


def test_a_few_tabs_closing_do_not_make_a_whole_collection() -> None:
    counts = Counts()
    counts.open = 100
    upkeep = HeapUpkeep(counts, reclaim_after_ended=50, reclaim_every_s=3600)
    counts.ended = 49
    assert not upkeep.due()
    counts.ended = 50
    assert upkeep.due()


def test_a_quarter_of_a_large_fleet_ending_makes_one() -> None:
    counts = Counts()
    counts.open, counts.ended = 10_000, 7  # ended before the upkeep began: not counted
    upkeep = HeapUpkeep(counts, reclaim_after_ended=50, reclaim_every_s=3600)
    counts.ended = 7 + 2_499
    assert not upkeep.due()
    counts.ended = 7 + 2_500
    assert upkeep.due()


def test_the_longest_interval_makes_one_whatever_ended() -> None:
    assert HeapUpkeep(Counts(), reclaim_after_ended=50, reclaim_every_s=0).due()
    assert not HeapUpkeep(Counts(), reclaim_after_ended=50, reclaim_every_s=3600).due()
