"""The serving process's cyclic garbage collector: what lives long is kept out of its walks, and what it keeps
from them is given back.

Start-up freezes what it made (`freeze_startup_heap`). A gateway serving a fleet of live subscriptions then
holds hundreds of tracked objects per open subscription (Strawberry's operation, its task and generators, their
contexts, the fan-out's record: a few million for ten thousand tabs). CPython promotes them to the oldest
generation, and every full collection walks all of them while the event loop waits: hundreds of milliseconds,
during which no request is answered. Full collections come whenever a quarter as many objects again were
promoted since the last one, and a fleet's deliveries promote objects all the time (each delivery replaces
each waiting subscription's awaiting state, which has often lived through a few young collections by then).

`keep_heap_frozen` therefore freezes the heap (gc.freeze: the objects alive move to a generation the
collector never walks) every FREEZE_EVERY_S: a full collection then walks only what became long-lived since.
A frozen object is still freed as soon as nothing refers to it; only garbage in reference cycles stays, and a
closed subscription leaves some (a task and its coroutine, an exception and its traceback). So the heap is
unfrozen and collected whole (`reclaim`) once the subscriptions that ended since the last time reach a quarter
of those open (at least RECLAIM_AFTER_ENDED), or RECLAIM_EVERY_S at the latest: what is kept is bounded by a
quarter of the fleet's objects (plus what other work left in cycles meanwhile), and the full walk, the cost
freezing avoids, comes once per quarter of the fleet that came and went instead of every few seconds.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import time
from collections.abc import Callable

log = logging.getLogger(__name__)

GC_YOUNGEST_THRESHOLD = 10_000
"""Allocations between two collections of the youngest generation (CPython's default: 700)."""
FREEZE_EVERY_S = 30.0
"""How often what is alive is frozen: objects that became long-lived meanwhile are walked until then."""
RECLAIM_AFTER_ENDED = 200
"""Subscriptions ended since the last reclaim below which the frozen heap is not collected whole (unless
RECLAIM_EVERY_S passed): a few tabs closing must not cost a walk of the whole fleet each."""
RECLAIM_EVERY_S = 3600.0
"""The longest the frozen heap goes without a whole collection (cycles left by other work than subscriptions)."""


def freeze_startup_heap() -> None:
    """Move everything start-up made (the imported libraries, the app, the schema: over 100,000 objects) out of
    the cyclic garbage collector's sight (gc.freeze): they live as long as the process, yet every full collection
    walked them all. An answer that builds tens of thousands of objects (a whole job over GraphQL) triggers
    several full collections, which cost more than building it did (bench/README.md, "GraphQL job").

    And collect the youngest generation every GC_YOUNGEST_THRESHOLD allocations rather than 700: a request that
    builds tens of thousands of objects it keeps until its answer (a 10,000-task create: its validated body, plan,
    documents and answer) otherwise has them walked by dozens of collections, each promoting them towards the
    full collections; a third of a create's Python time went there (bench/README.md, "Bulk create"). A young
    collection then walks at most 10,000 objects (about a millisecond); cyclic garbage lives a little longer."""
    gc.collect()
    gc.freeze()
    _, older, oldest = gc.get_threshold()
    gc.set_threshold(GC_YOUNGEST_THRESHOLD, older, oldest)


def reclaim() -> int:
    """Collect the whole heap, frozen part included, then freeze what survived; the objects collected."""
    gc.unfreeze()
    collected = gc.collect()
    gc.freeze()
    return collected


class HeapUpkeep:
    """When to freeze and when to reclaim, from the subscriptions open and ended (`subscriptions`: a function
    giving both, counted since the process started)."""

    def __init__(
        self,
        subscriptions: Callable[[], tuple[int, int]],
        *,
        reclaim_after_ended: int = RECLAIM_AFTER_ENDED,
        reclaim_every_s: float = RECLAIM_EVERY_S,
    ) -> None:
        self._subscriptions = subscriptions
        self._reclaim_after_ended = reclaim_after_ended
        self._reclaim_every_s = reclaim_every_s
        self._ended_at_reclaim = subscriptions()[1]
        self._reclaimed_at = time.monotonic()

    def due(self) -> bool:
        """Whether enough subscriptions ended (or time passed) since the last reclaim for another."""
        open_now, ended = self._subscriptions()
        ended_since = ended - self._ended_at_reclaim
        if ended_since >= max(self._reclaim_after_ended, open_now // 4):
            return True
        return time.monotonic() - self._reclaimed_at >= self._reclaim_every_s

    def step(self) -> None:
        """Reclaim if due, else freeze what is alive."""
        if not self.due():
            gc.freeze()
            return
        started = time.perf_counter()
        collected = reclaim()
        self._ended_at_reclaim = self._subscriptions()[1]
        self._reclaimed_at = time.monotonic()
        log.info("heap reclaimed: %d objects collected in %.0f ms", collected, (time.perf_counter() - started) * 1e3)


async def keep_heap_frozen(upkeep: HeapUpkeep, every_s: float = FREEZE_EVERY_S) -> None:
    """Run `upkeep` every `every_s` until cancelled."""
    while True:
        await asyncio.sleep(every_s)
        upkeep.step()
