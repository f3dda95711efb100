"""When the gateway's heap upkeep (gateway.heap) collects the frozen heap whole: once the heap grew by a quarter
more than the open subscriptions did since the last time, once the subscriptions ended since then
reach a quarter of those open (and a floor), or after its longest interval."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import itertools

from gateway.heap import MIDDLE_AFTER_YOUNG, HeapUpkeep, keep_heap_frozen


class Counts:
    def __init__(self) -> None:
        self.open, self.ended, self.heap = 0, 0, 1000

    def __call__(self) -> tuple[int, int]:
        return self.open, self.ended

    def heap_size(self) -> int:
        return self.heap


def upkeep_of(counts: Counts, reclaim_every_s: float = 3600) -> HeapUpkeep:
    return HeapUpkeep(counts, heap_size=counts.heap_size, reclaim_after_ended=50, reclaim_every_s=reclaim_every_s)


def test_a_few_tabs_closing_do_not_make_a_whole_collection() -> None:
    counts = Counts()
    counts.open = 100
    upkeep = upkeep_of(counts)
    counts.ended = 49
    assert not upkeep.due()
    counts.ended = 50
    assert upkeep.due()


def test_a_quarter_of_a_large_fleet_ending_makes_one() -> None:
    counts = Counts()
    counts.open, counts.ended = 10_000, 7  # ended before the upkeep began: not counted
    upkeep = upkeep_of(counts)
    counts.ended = 7 + 2_499
    assert not upkeep.due()
    counts.ended = 7 + 2_500
    assert upkeep.due()


def test_the_longest_interval_makes_one_whatever_ended() -> None:
    assert upkeep_of(Counts(), reclaim_every_s=0).due()
    assert not upkeep_of(Counts()).due()


def test_a_heap_grown_by_a_quarter_makes_one() -> None:
    counts = Counts()
    upkeep = upkeep_of(counts)
    counts.heap = 1250
    assert not upkeep.due()
    counts.heap = 1251
    assert upkeep.due()


def test_a_fleet_subscribing_grows_the_heap_without_making_one() -> None:
    counts = Counts()
    counts.open = 99
    upkeep = upkeep_of(counts)
    counts.open, counts.heap = 199, 2400  # twice the fleet: up to 2 x 1.25 x the heap is its own
    assert not upkeep.due()
    counts.heap = 2501
    assert upkeep.due()


def test_while_installed_the_middle_generation_is_collected_more_often_then_as_before() -> None:
    before = gc.get_threshold()
    upkeep = upkeep_of(Counts())
    upkeep.install()
    try:
        assert gc.get_threshold() == (before[0], MIDDLE_AFTER_YOUNG, before[2])
    finally:
        upkeep.uninstall()
    assert gc.get_threshold() == before


async def test_the_youngest_generation_is_collected_on_a_clock_and_the_middle_one_every_few() -> None:
    """With subscriptions open and nothing to set them off (the automatic collections off, as if every allocation
    were matched by a deallocation, which CPython counts against it), the upkeep still collects the youngest
    generation every `young_every_s`, and the middle one instead after MIDDLE_AFTER_YOUNG young collections."""
    generations: list[int] = []
    three_middle = asyncio.Event()

    def note(phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            generations.append(info["generation"])
            if generations.count(1) == 3:
                three_middle.set()

    enabled = gc.isenabled()
    gc.disable()
    gc.callbacks.append(note)
    counts = Counts()
    counts.open = 1
    upkeep = asyncio.create_task(keep_heap_frozen(upkeep_of(counts), every_s=3600, young_every_s=0.001))
    try:
        async with asyncio.timeout(60):
            await three_middle.wait()
    finally:
        upkeep.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await upkeep
        gc.callbacks.remove(note)
        if enabled:
            gc.enable()
    assert set(generations) == {0, 1}, generations
    middles = [index for index, generation in enumerate(generations) if generation == 1]
    assert all(later - earlier == MIDDLE_AFTER_YOUNG + 1 for earlier, later in itertools.pairwise(middles)), generations


def test_without_subscriptions_the_clock_collects_nothing() -> None:
    """CPython's own trigger then comes as often as anything is made: a clock would only freeze sooner what a slow
    request holds."""
    generations: list[int] = []

    def note(phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            generations.append(info["generation"])

    counts = Counts()
    upkeep = upkeep_of(counts)
    gc.callbacks.append(note)
    try:
        upkeep.collect_young()
        assert generations == []
        counts.open = 1
        upkeep.collect_young()
        assert len(generations) == 1
    finally:
        gc.callbacks.remove(note)
