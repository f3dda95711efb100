"""Resuming readers a few per turn of the event loop (models.fanout_routes.resume_readers), as a protocol rule
over interleavings hypothesis picks: live subscriptions of two jobs and unfiltered ones, readers that take at
their own pace (busy for a few turns after an event), that close while others are being resumed, and a shared
stream stopped midway through resuming. Whatever the order, each reader gets the events routed to it in order,
each once, and never waits while an event is queued for it; a reader that fell behind by more than its buffer
gets a prefix of them and then SUBSCRIBER_TOO_SLOW; one that closes gets a prefix and leaves."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

from hypothesis import given, settings
from hypothesis import strategies as st

from models.errors import GraphError
from models.events import TaskEvent, TaskEventKind
from models.fanout_routes import WAKES_PER_TURN, Routes, resume_readers
from models.subscriber import Subscriber, too_slow

AT = datetime(2026, 1, 1, tzinfo=UTC)
JOBS = ["a", "b", None]  # None: a subscription to every job


def event(index: int, job: str) -> TaskEvent:
    return TaskEvent(TaskEventKind.UPDATED, index, None, f"82{2 * index:016X}", AT, [], job, None)


async def read(
    subscriber: Subscriber, pace: int, closes_after: int | None, received: list[TaskEvent], waiting: list[bool]
) -> str:
    """The fan-out's reading loop (models.fanout.LiveEvents.subscribe), busy `pace` turns after each event;
    closes after `closes_after` events. How it ended: "closed" or the ending error's message. `waiting[0]`
    says whether it waits for an event now."""
    while closes_after is None or len(received) < closes_after:
        try:
            taken = subscriber.take()
        except GraphError as ending:
            return str(ending)
        if taken is None:
            waiter = subscriber.waiter()
            if waiter is not None:
                waiting[0] = True
                await waiter
                waiting[0] = False
            continue
        received.append(taken)
        for _ in range(pace):
            await asyncio.sleep(0)
    subscriber.end(GraphError("closed"))  # as the fan-out's finally does on close
    return "closed"


@st.composite
def scenarios(draw: st.DrawFn) -> tuple[list[tuple[str | None, int, int | None]], list[str], list[int], int | None]:
    readers = draw(
        st.lists(
            st.tuples(st.sampled_from(JOBS), st.integers(0, 3), st.none() | st.integers(0, 6)),
            min_size=1,
            max_size=3 * WAKES_PER_TURN,
        )
    )
    jobs = draw(st.lists(st.sampled_from(["a", "b"]), min_size=1, max_size=12))
    gaps = draw(st.lists(st.integers(0, 3), min_size=len(jobs), max_size=len(jobs)))  # turns between items
    stopped_at = draw(st.none() | st.integers(0, len(jobs) - 1))  # the item whose resuming is cancelled
    return readers, jobs, gaps, stopped_at


@settings(max_examples=300, deadline=None)
@given(scenarios(), st.integers(1, 4))
async def test_each_reader_gets_its_events_in_order_once_and_never_waits_with_one_queued(
    scenario: tuple[list[tuple[str | None, int, int | None]], list[str], list[int], int | None], buffer: int
) -> None:
    readers, jobs, gaps, stopped_at = scenario
    routes = Routes()
    subscribers = [Subscriber(job, buffer, after=None, mark=None) for job, _, _ in readers]
    for subscriber in subscribers:
        routes.add(subscriber)
    received: list[list[TaskEvent]] = [[] for _ in readers]
    waiting = [[False] for _ in readers]
    reading = [
        asyncio.create_task(read(subscriber, pace, closes_after, got, waits))
        for subscriber, (_, pace, closes_after), got, waits in zip(subscribers, readers, received, waiting, strict=True)
    ]
    events = [event(index + 1, job) for index, job in enumerate(jobs)]
    for index, (item, gap) in enumerate(zip(events, gaps, strict=True)):
        concerned = routes.concerned([item.job_id or ""])
        for subscriber in concerned:  # models.fanout.LiveEvents._dispatch
            subscriber.offer(item, frozenset([item.job_id or ""]))
        resuming = asyncio.create_task(resume_readers(concerned))
        if index == stopped_at:
            await asyncio.sleep(0)  # a first group resumed, then the shared stream is stopped
            resuming.cancel()
        await asyncio.gather(resuming, return_exceptions=True)
        for _ in range(gap):
            await asyncio.sleep(0)
    for _ in range(10 * len(events) * (1 + max(pace for _, pace, _ in readers))):
        await asyncio.sleep(0)  # every reader's turn to take what it was given, however busy
    for subscriber, waits in zip(subscribers, waiting, strict=True):
        assert not (waits[0] and subscriber.queue), "a reader waits with an event queued for it"
    for subscriber in subscribers:
        subscriber.end(GraphError("over"))  # what is queued is still taken first
    endings = await asyncio.wait_for(asyncio.gather(*reading), 10)
    for (job, _, closes_after), got, ending in zip(readers, received, endings, strict=True):
        routed = [item for item in events if job is None or item.job_id == job]
        assert got == routed[: len(got)], "in order, each once, none of another job"
        if ending == "closed":
            assert len(got) == closes_after
        elif ending == "over":
            assert got == routed, "every event routed to it"
        else:
            assert ending == str(too_slow(buffer)), ending  # fell behind by more than its buffer: a prefix
