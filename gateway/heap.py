"""The serving process's cyclic garbage collector: what lives long is kept out of its walks, and what it keeps
from them is given back.

Start-up freezes what it made (`freeze_startup_heap`). A gateway serving a fleet of live subscriptions then
holds a few hundred tracked objects per open subscription (Strawberry's operation, its task, generators and
extension hooks, their contexts, the fan-out's record: over two million for ten thousand tabs). CPython
promotes them to the oldest generation, and each full collection walks all of them while the event loop waits
(hundreds of milliseconds: no request is answered meanwhile). Full collections come whenever a quarter as
many objects again were promoted since the last one, and a fleet's deliveries promote objects all the time:
each delivery replaces the awaiting state of the subscription it reaches, which has often lived through a few
young collections by then.

So `HeapUpkeep` freezes (gc.freeze: into a generation the collector never walks) what survives each collection
of the middle or oldest generation, at the moment it is known to be alive: a full collection then walks only
what was promoted since the last one. A frozen object is still freed as soon as nothing refers to it; only
garbage in reference cycles stays, and a closed subscription leaves some (a task and its coroutine, an
exception and its traceback). So the whole heap, frozen part included, is collected (`reclaim`) when the
heap grew by a quarter more than the open subscriptions did since the last time (CPython's own rule, on the
blocks its allocator holds rather than on the frozen objects, whose count is a walk of them all; without
counting a fleet subscribing as garbage), when the subscriptions that ended since then reach a quarter
of those open (at least RECLAIM_AFTER_ENDED), or every RECLAIM_EVERY_S at the latest. What is kept is the
garbage of at most a quarter of the subscriptions, and of other work about a quarter of the heap, for an hour
at most; and the walk of the whole fleet, the cost freezing avoids, comes once per quarter of it that came and
went instead of every few seconds.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import sys
import time
from collections.abc import Callable

log = logging.getLogger(__name__)

CHECK_EVERY_S = 10.0
"""How often the upkeep looks whether a reclaim is due."""
RECLAIM_GROWTH = 0.25
"""The growth of the heap since the last reclaim past which the next one is due."""
RECLAIM_AFTER_ENDED = 200
"""The fewest subscriptions ended since the last reclaim that make the next one due (more when a quarter of
those open is more): a few tabs closing must not cost a walk of the whole fleet each."""
RECLAIM_EVERY_S = 3600.0
"""The longest the frozen heap goes without a whole collection."""
MIDDLE_AFTER_YOUNG = 3
"""Young collections between two of the middle generation while the upkeep runs (CPython's is 10). Under a
fleet, a middle collection walks the awaiting state of every delivery since the last one, and holds the event
loop that long: at a third of CPython's interval each walks a third as much, thrice as often. The price: what
lives through three young collections instead of ten is frozen, so more of a request's reference cycles wait
for the reclaim (bench/README.md, "The middle generation's interval")."""


YOUNG_EVERY_S = 0.05
"""The longest the youngest generation goes uncollected while subscriptions are open. CPython counts the
youngest generation's allocations net of deallocations, and under a fleet each delivery frees the awaiting state
it replaces about as fast as it makes the new one: the count hardly rises, its collections come seldom, and each
walks everything that survived since the last one, the event loop waiting, longer as the fleet grows. On a
clock each walks what a twentieth of a second left, and the middle generation's collections (every
MIDDLE_AFTER_YOUNG of them) stay as short. Not without subscriptions: then CPython's own trigger comes as often
as anything is made, and a clock would only freeze sooner what a slow request holds (its reference cycles
wait for the reclaim)."""


def freeze_startup_heap() -> None:
    """Move everything start-up made (the imported libraries, the app, the schema: over 100,000 objects) out of
    the cyclic garbage collector's sight (gc.freeze): they live as long as the process, yet every full collection
    walked them all. An answer that builds tens of thousands of objects (a whole job over GraphQL) triggers
    several full collections, which cost more than building it did (bench/README.md, "GraphQL job").

    The youngest generation's threshold is CPython's own (the middle one is `HeapUpkeep`'s). A larger youngest
    threshold once spared a large create most of its collections, before `HeapUpkeep` froze what survives each
    middle collection; with the upkeep, a create costs the same at either and a whole job's answer less at
    CPython's, and under a fleet of subscriptions each young collection walks (and holds the event loop for) far
    fewer objects, which is what a GET's p99 feels (bench/README.md, "The youngest generation's threshold")."""
    gc.collect()
    gc.freeze()


def reclaim() -> int:
    """Collect the whole heap, frozen part included, then freeze what survived; the objects collected."""
    gc.unfreeze()
    collected = gc.collect()
    gc.freeze()
    return collected


class HeapUpkeep:
    """Freezes what survives collections of the older generations (`install`), and says when to reclaim
    (`due`). `subscriptions` gives the subscriptions open and ended since the process started; `heap_size` the
    heap's size: by default the memory blocks of Python's small-object allocator in use (sys.getallocatedblocks,
    every object of the heap, frozen or not: a walk of the allocator's arenas, well under a millisecond), not
    the objects frozen (gc.get_freeze_count, a walk of every frozen object: tens of milliseconds, the event loop
    waiting, under a fleet of subscriptions)."""

    def __init__(
        self,
        subscriptions: Callable[[], tuple[int, int]],
        *,
        heap_size: Callable[[], int] = sys.getallocatedblocks,
        reclaim_after_ended: int = RECLAIM_AFTER_ENDED,
        reclaim_every_s: float = RECLAIM_EVERY_S,
    ) -> None:
        self._subscriptions = subscriptions
        self._heap_size = heap_size
        self._reclaim_after_ended = reclaim_after_ended
        self._reclaim_every_s = reclaim_every_s
        self._mark()

    def _mark(self) -> None:
        self._heap_at_reclaim = self._heap_size()
        self._open_at_reclaim, self._ended_at_reclaim = self._subscriptions()
        self._reclaimed_at = time.monotonic()

    _thresholds: tuple[int, int, int] | None = None

    def install(self) -> None:
        """Freeze after each middle or full collection, and collect the middle generation every
        MIDDLE_AFTER_YOUNG young collections."""
        self._thresholds = gc.get_threshold()
        youngest, _, oldest = self._thresholds
        gc.set_threshold(youngest, MIDDLE_AFTER_YOUNG, oldest)
        gc.callbacks.append(self._after_collection)

    def uninstall(self) -> None:
        """Undo `install`: the thresholds it found, no freezing."""
        with contextlib.suppress(ValueError):
            gc.callbacks.remove(self._after_collection)
        if self._thresholds is not None:
            gc.set_threshold(*self._thresholds)
            self._thresholds = None

    def _after_collection(self, phase: str, info: dict[str, int]) -> None:
        # Right after a collection of the middle or oldest generation, what is left in them is alive.
        if phase == "stop" and info["generation"] >= 1:
            gc.freeze()

    def collect_young(self) -> None:
        """While subscriptions are open (YOUNG_EVERY_S), collect the youngest generation now, and the middle one
        instead when MIDDLE_AFTER_YOUNG young collections have passed since its last (the freeze follows it)."""
        if self._subscriptions()[0]:
            gc.collect(1 if gc.get_count()[1] >= MIDDLE_AFTER_YOUNG else 0)

    def due(self) -> bool:
        """Whether the frozen heap should be collected whole now."""
        open_now, ended = self._subscriptions()
        # A fleet subscribing grows the heap with live objects: only growth beyond the subscriptions' own counts
        # (a fleet that doubled may double it), else every tab of a morning's fleet arriving would cost walks
        # of the whole heap as it grows.
        fleet_growth = max(1.0, (open_now + 1) / (self._open_at_reclaim + 1))
        if self._heap_size() > self._heap_at_reclaim * (1 + RECLAIM_GROWTH) * fleet_growth:
            return True
        if ended - self._ended_at_reclaim >= max(self._reclaim_after_ended, open_now // 4):
            return True
        return time.monotonic() - self._reclaimed_at >= self._reclaim_every_s

    def reclaim(self) -> None:
        started = time.perf_counter()
        collected = reclaim()
        self._mark()
        log.info("heap reclaimed: %d objects collected in %.0f ms", collected, (time.perf_counter() - started) * 1e3)


async def keep_heap_frozen(
    upkeep: HeapUpkeep, every_s: float = CHECK_EVERY_S, young_every_s: float = YOUNG_EVERY_S
) -> None:
    """Run `upkeep` until cancelled: freezing after collections, the youngest generation collected at least
    every `young_every_s` while subscriptions are open, reclaiming when due (looked at every `every_s`)."""
    upkeep.install()
    try:
        looked_at = time.monotonic()
        while True:
            await asyncio.sleep(young_every_s)
            upkeep.collect_young()
            if time.monotonic() - looked_at >= every_s:
                looked_at = time.monotonic()
                if upkeep.due():
                    upkeep.reclaim()
    finally:
        upkeep.uninstall()
