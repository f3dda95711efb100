"""How a subscription ends in the fan-out (models.fanout), on a real MongoDB: whatever ends it, it leaves the
fan-out at once, its catch-up stopped."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import weakref
from collections.abc import AsyncGenerator
from typing import Any

import pytest
from bson.int64 import Int64
from prometheus_client import REGISTRY

from models import GraphStore, StorageUnavailable, catch_ups
from models.catch_ups import CatchUps
from models.changes import Idle
from models.closing import Bound
from models.fanout import LiveEvents
from models.subscriber import Subscriber
from tests.conftest import TEST_DB
from tests.helpers import eventually, no_open_subscriptions

MONGODB_FAILURES_TOTAL = "tracking_mongodb_failures_total"
KINDS = ("timeout", "unavailable")


async def test_a_catch_up_that_fails_unexpectedly_ends_its_subscription(
    store: GraphStore, raw_db: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A bug in the catch-up read must not leave its subscription waiting forever for events that never come,
    registered with the fan-out: it ends with UNAVAILABLE (resume with after), as a failing shared stream does."""
    after = await store.event_cursor("broken")
    await raw_db.tasks.insert_one({"_id": Int64(1), "job-id": "broken", "nexts": [], "previous": []})

    def broken(subscriber: Subscriber, *args: Any) -> None:
        raise RuntimeError("a bug in the catch-up")

    monkeypatch.setattr(Subscriber, "catch_up", broken)
    events = store.watch_task_events("broken", after, resume_within_s=30)
    async with contextlib.aclosing(events):
        with pytest.raises(StorageUnavailable):
            await asyncio.wait_for(anext(events), 30)
    await eventually(no_open_subscriptions, what="the subscription left the fan-out")


async def test_a_shared_stream_that_fails_unexpectedly_ends_its_subscriptions_and_is_reopened(
    store: GraphStore, raw_db: Any, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """A bug in the shared stream ends every subscription with UNAVAILABLE (they resume with after), is logged
    once as the error it is (not as MongoDB unavailable, nor counted as MongoDB's failure), and the next
    subscription opens the stream again."""
    caplog.set_level(logging.WARNING)
    failed_before = mongodb_failures()
    dispatch = LiveEvents._dispatch
    failures = 0

    def failing_once(live: LiveEvents, item: Any) -> Any:
        nonlocal failures
        if not isinstance(item, Idle) and failures == 0:
            failures += 1
            raise RuntimeError("a bug in the shared stream")
        return dispatch(live, item)

    monkeypatch.setattr(LiveEvents, "_dispatch", failing_once)
    events = store.watch_task_events("shared", resume_within_s=30)
    async with contextlib.aclosing(events):
        waiting = asyncio.ensure_future(anext(events))
        await eventually(_subscribed, what="the subscription registered")
        await raw_db.tasks.insert_one({"_id": Int64(1), "job-id": "shared", "nexts": [], "previous": []})
        with pytest.raises(StorageUnavailable):
            await asyncio.wait_for(waiting, 30)
    await eventually(no_open_subscriptions, what="the subscription left the fan-out")
    again = store.watch_task_events("shared", resume_within_s=30)
    async with contextlib.aclosing(again):
        waiting = asyncio.ensure_future(anext(again))
        await eventually(_subscribed, what="the subscription registered")
        await raw_db.tasks.insert_one({"_id": Int64(2), "job-id": "shared", "nexts": [], "previous": []})
        assert (await asyncio.wait_for(waiting, 30)).task_id == 2
    gc.collect()
    await asyncio.sleep(0)
    logged = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(logged) == 1 and "shared change stream failed" in logged[0].getMessage(), [
        r.getMessage() for r in logged
    ]
    assert not [r for r in caplog.records if "MongoDB unavailable" in r.getMessage()]
    assert mongodb_failures() == failed_before


async def test_a_subscription_waiting_for_the_shared_stream_to_open_is_told_at_once_when_its_reader_fails(
    store: GraphStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A bug before the shared stream's first position ends its reader with nothing yet registered to end: a
    subscription waiting for the stream to open is answered UNAVAILABLE then, not after its resume window."""
    reached = asyncio.Event()

    def failing(live: LiveEvents, item: Any) -> Any:
        reached.set()
        raise RuntimeError("a bug before the stream opened")

    monkeypatch.setattr(LiveEvents, "_dispatch", failing)
    events = store.watch_task_events("opening", resume_within_s=OPENING_WINDOW_S)
    async with contextlib.aclosing(events):
        with pytest.raises(StorageUnavailable, match="MongoDB unavailable"):
            await asyncio.wait_for(anext(events), OPENING_WINDOW_S / 2)
    assert reached.is_set()
    await eventually(no_open_subscriptions, what="the subscription left the fan-out")


OPENING_WINDOW_S = 240
"""The test's resume window: waiting it out instead of being told would fail the test at half of it."""


def mongodb_failures() -> float:
    return sum(REGISTRY.get_sample_value(MONGODB_FAILURES_TOTAL, {"kind": kind}) or 0.0 for kind in KINDS)


async def test_a_catch_up_that_fails_unexpectedly_ends_its_subscription_as_unavailable(
    store: GraphStore, raw_db: Any, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """A bug in a subscription's catch-up ends that subscription with UNAVAILABLE (it resumes with after), logged
    once with its traceback, not as MongoDB unavailable nor counted as MongoDB's failure."""
    caplog.set_level(logging.WARNING)
    after = await store.event_cursor("caught")
    await raw_db.tasks.insert_one({"_id": Int64(1), "job-id": "caught", "nexts": [], "previous": []})

    async def failing(*_: Any) -> None:
        raise RuntimeError("a bug in the catch-up")

    monkeypatch.setattr(catch_ups, "_read", failing)
    failed_before = mongodb_failures()
    events = store.watch_task_events("caught", after, resume_within_s=30)
    async with contextlib.aclosing(events):
        with pytest.raises(StorageUnavailable):
            await asyncio.wait_for(anext(events), 30)
    await eventually(no_open_subscriptions, what="the subscription left the fan-out")
    logged = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert [(r.getMessage(), r.exc_info is not None) for r in logged] == [("a subscription's catch-up failed", True)]
    assert not [r for r in caplog.records if "MongoDB unavailable" in r.getMessage()]
    assert mongodb_failures() == failed_before


async def _subscribed() -> bool:
    return not await no_open_subscriptions()


class _Reader:
    """Something a subscription's reader holds while it reads (its connection's state, say)."""


async def _read_until_shut_down(events: AsyncGenerator[Any]) -> weakref.ref[_Reader]:
    held = _Reader()
    async with contextlib.aclosing(events):
        with pytest.raises(StorageUnavailable, match="shutting down"):
            await anext(events)
    return weakref.ref(held)


async def test_subscriptions_ended_by_a_shutdown_are_let_go(mongo_uri: str, store: GraphStore) -> None:
    """Ending every open subscription as the gateway shuts down raised one error object in each of their readers:
    each raise chained the reader's frames onto that object's traceback, and the object, made once for the
    process, kept every reader it ended (and what their frames held) for good."""
    own = await GraphStore.open(mongo_uri, TEST_DB)
    try:
        readers = [asyncio.ensure_future(_read_until_shut_down(own.watch_task_events("down"))) for _ in range(2)]
        await eventually(lambda: _registered(own, 2), what="the subscriptions registered")
        await own.live.close(Bound(5))
        held = await asyncio.wait_for(asyncio.gather(*readers), 30)
    finally:
        await own.close()
    del readers
    gc.collect()
    assert [ref() for ref in held] == [None, None]


async def _registered(store: GraphStore, count: int) -> bool:
    return len(store.live.subscribers()) >= count


async def test_a_reader_cancelled_while_its_catch_up_stops_stays_cancelled(
    store: GraphStore, raw_db: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A subscription closed while it catches up waits for its catch-up to stop (closing a change stream asks
    MongoDB to kill its cursor, which takes a while when MongoDB is slow): a cancellation of the reader's task
    meanwhile (a shutdown) must end that task, not be swallowed as if it were the catch-up's own."""
    after = await store.event_cursor("slow")
    await raw_db.tasks.insert_one({"_id": Int64(1), "job-id": "slow", "nexts": [], "previous": []})
    catch_up = CatchUps.run
    stopping, stopped = asyncio.Event(), asyncio.Event()

    async def slow_to_stop(catch_ups: CatchUps, subscriber: Subscriber, cursor: str) -> None:
        try:
            await catch_up(catch_ups, subscriber, cursor)
        except asyncio.CancelledError:
            stopping.set()
            await stopped.wait()  # as long as the test needs, however loaded the machine
            raise

    monkeypatch.setattr(CatchUps, "run", slow_to_stop)
    monkeypatch.setattr(Subscriber, "hand_over", lambda subscriber, position: False)  # still catching up
    events = store.watch_task_events("slow", after, resume_within_s=30)
    assert (await asyncio.wait_for(anext(events), 30)).task_id == 1
    closing = asyncio.ensure_future(events.aclose())
    await asyncio.wait_for(stopping.wait(), 30)
    closing.cancel()
    await asyncio.wait({closing}, timeout=30)
    stopped.set()
    assert closing.cancelled()
    await eventually(no_open_subscriptions, what="the subscription left the fan-out")
