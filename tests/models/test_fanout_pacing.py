"""The shared stream resumes subscriptions' readers a few per turn of the event loop, so that an event for many
subscriptions (or a batch of events for a few hundred) never holds every request behind every delivery; and
every reader still gets every event, in order, once."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

from models import GraphStore, TaskPatch
from models.fanout_routes import WAKES_PER_TURN
from tests.helpers import eventually, task

READERS = 5 * WAKES_PER_TURN


async def _read(events: AsyncIterator[object], received: list[int], number: int, count: int) -> None:
    for _ in range(count):
        await anext(events)
        received[number] += 1


async def _turns_until(done: asyncio.Future[list[None]], deliveries: list[int]) -> list[int]:
    """The deliveries made in each turn of the event loop until `done` (one sample per turn: a sleep(0) is one
    turn, whatever else ran in it)."""
    per_turn: list[int] = []
    seen = 0
    while not done.done():
        await asyncio.sleep(0)
        total = sum(deliveries)
        per_turn.append(total - seen)
        seen = total
    return per_turn


async def test_an_event_for_many_subscriptions_resumes_their_readers_a_few_per_turn(store: GraphStore) -> None:
    changes = 3
    await store.create_tasks([task(id=number, job_id="wall") for number in range(1, changes + 1)])
    received = [0] * READERS
    streams = [store.watch_task_events("wall") for _ in range(READERS)]
    readers = [asyncio.create_task(_read(stream, received, n, changes)) for n, stream in enumerate(streams)]
    try:
        await eventually(lambda: _all_waiting(store), what="every reader waiting for an event")
        everyone = asyncio.ensure_future(asyncio.gather(*readers))
        counting = asyncio.create_task(_turns_until(everyone, received))
        for number in range(1, changes + 1):  # one after another: they may reach the stream in one batch
            await store.update_task(number, TaskPatch(status="RUNNING"))
        await asyncio.wait_for(everyone, 60)
        per_turn = await counting
    finally:
        for reader in readers:
            reader.cancel()
        for stream in streams:
            with contextlib.suppress(Exception):
                await stream.aclose()
    assert received == [changes] * READERS, "every reader got every event once"
    assert max(per_turn) <= WAKES_PER_TURN * changes, per_turn
    assert sum(1 for delivered in per_turn if delivered) >= READERS // WAKES_PER_TURN, per_turn


async def _all_waiting(store: GraphStore) -> bool:
    open_now, _ = store.live.counts()
    return open_now == READERS and store.live.position is not None
