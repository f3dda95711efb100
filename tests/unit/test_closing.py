"""models.closing: stopping a background task within a shutdown's bound, whatever the task does when
cancelled, without ever swallowing the cancellation of the caller."""

from __future__ import annotations

import asyncio
import time

import pytest

from models.closing import RECANCEL_WAIT_S, Bound, stop_task


async def closes_slowly(started: asyncio.Event, closing: asyncio.Event | None = None) -> None:
    """What a task reading a change stream does when cancelled: close it, waiting for a server to select."""
    try:
        started.set()
        await asyncio.Event().wait()
    finally:
        if closing is not None:
            closing.set()
        await asyncio.sleep(3600)


async def running(coroutine_of) -> asyncio.Task[None]:
    started = asyncio.Event()
    task = asyncio.create_task(coroutine_of(started), name="reader")
    await started.wait()
    return task


async def test_a_task_slow_to_close_is_cancelled_again_once_the_bound_is_past() -> None:
    task = await running(closes_slowly)
    started = time.monotonic()
    await stop_task(task, Bound(0.5))
    assert task.cancelled()
    assert 0.5 <= time.monotonic() - started < 0.5 + RECANCEL_WAIT_S


async def test_a_task_that_ends_when_cancelled_is_not_waited_for() -> None:
    async def ends(started: asyncio.Event) -> None:
        started.set()
        await asyncio.Event().wait()

    task = await running(ends)
    started = time.monotonic()
    await stop_task(task, Bound(30))
    assert task.cancelled()
    assert time.monotonic() - started < 1


async def test_a_task_that_ignores_cancellation_is_left_after_the_bound(caplog) -> None:
    release = asyncio.Event()

    async def stubborn(started: asyncio.Event) -> None:
        started.set()
        while not release.is_set():
            try:
                await release.wait()
            except asyncio.CancelledError:
                continue

    task = await running(stubborn)
    await stop_task(task, Bound(0))
    assert not task.done()
    assert "reader ignores cancellation" in caplog.text
    release.set()
    await asyncio.wait({task}, timeout=5)
    assert task.done()


async def test_what_the_task_failed_with_is_logged_not_raised(caplog) -> None:
    async def fails_on_cancel(started: asyncio.Event) -> None:
        try:
            started.set()
            await asyncio.Event().wait()
        finally:
            raise RuntimeError("cursor gone")

    await stop_task(await running(fails_on_cancel), Bound(5))
    assert "reader had failed" in caplog.text
    assert "cursor gone" in caplog.text


async def test_the_callers_own_cancellation_goes_through() -> None:
    started, closing = asyncio.Event(), asyncio.Event()
    task = asyncio.create_task(closes_slowly(started, closing))
    await started.wait()
    stopping = asyncio.create_task(stop_task(task, Bound(3600)))
    await closing.wait()  # stop_task has cancelled it and waits for it
    stopping.cancel()
    with pytest.raises(asyncio.CancelledError):
        await stopping
    task.cancel()
    await asyncio.wait({task}, timeout=1)
