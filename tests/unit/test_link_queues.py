"""The in-process queues of link additions (models/locks.py JobQueues, QueueHold): additions on the same jobs
take turns, on other jobs run at once, and queues are always taken in one global order, so two additions
holding parts of each other's jobs never wait on each other forever."""

from __future__ import annotations

import asyncio

import pytest

from models.locks import LINK_LOCK_PREFIX, JobQueues, QueuesBusy, link_lock_id


def test_a_job_has_its_own_lock_document_and_tasks_without_a_job_share_one() -> None:
    assert link_lock_id("j1") == f"{LINK_LOCK_PREFIX}:j1" != link_lock_id("j2")
    assert link_lock_id(None) == LINK_LOCK_PREFIX


async def test_free_queues_are_taken_at_once_and_busy_ones_are_not_taken_at_all() -> None:
    queues = JobQueues()
    assert await queues.take_if_free(["a", None])
    assert not await queues.take_if_free(["b", "a"])  # "a" in use: none taken, "b" neither
    assert await queues.take_if_free(["b"])
    queues.give_back(["a", None])
    queues.give_back(["b"])
    assert await queues.take_if_free(["a", "b", None])  # all given back, none left in use


async def test_a_hold_covering_a_busy_job_names_every_job_it_wants() -> None:
    queues = JobQueues()
    other = queues.hold()
    await other.cover(["b"])
    hold = queues.hold()
    await hold.cover(["a"])
    with pytest.raises(QueuesBusy) as busy:
        await hold.cover(["b", "c"])
    assert busy.value.jobs == {"a", "b", "c"}
    assert hold.jobs == {"a"}  # what it held before, still held


async def test_waiting_in_turn_gives_back_first_so_crossed_holds_do_not_deadlock() -> None:
    queues = JobQueues()
    first, second = queues.hold(), queues.hold()
    await first.cover(["a"])
    await second.cover(["b"])
    # Each now wants the other's job too: both wait in turn (giving back first), neither forever.
    waits = [asyncio.ensure_future(first.wait_for({"a", "b"})), asyncio.ensure_future(second.wait_for({"a", "b"}))]
    done, _ = await asyncio.wait(waits, timeout=5, return_when=asyncio.FIRST_COMPLETED)
    assert len(done) == 1
    winner, loser = (first, second) if waits[0] in done else (second, first)
    assert winner.jobs == {"a", "b"}
    assert not waits[1 if winner is first else 0].done()  # the other waits its turn
    winner.release()
    await asyncio.wait_for(asyncio.gather(*waits), timeout=5)
    assert loser.jobs == {"a", "b"}
    loser.release()
    assert await queues.take_if_free(["a", "b"])


async def test_a_cancelled_wait_leaves_no_queue_taken() -> None:
    queues = JobQueues()
    holder = queues.hold()
    await holder.cover(["b"])
    waiting = asyncio.ensure_future(queues.take_in_turn(["a", "b"]))
    await asyncio.sleep(0)
    waiting.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiting
    holder.release()
    assert await queues.take_if_free(["a", "b"])
