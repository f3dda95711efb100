"""The hand-over of a resuming subscription from its catch-up read to the shared stream (models.subscriber), as
a protocol rule over every interleaving hypothesis finds: the shared stream dispatching, the catch-up reading
(pausing while the buffer is full and reopening where it stopped), the reader taking events, changes being
committed meanwhile. Whatever the order, the reader gets every event of its job after its cursor, in order, each
once; or, if it fell behind by more than its buffer while live, a prefix of them and then SUBSCRIBER_TOO_SLOW.

Positions are written as MongoDB writes resume tokens (hex, compared as strings): event i at 2i, the point
between event i and i+1 (a postBatchResumeToken) at 2i+1."""

from __future__ import annotations

import itertools
from collections import Counter
from datetime import UTC, datetime

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from models import SubscriberTooSlow
from models.events import TaskEvent, TaskEventKind
from models.subscriber import Phase, Subscriber

AT = datetime(2026, 1, 1, tzinfo=UTC)


def token(position: int) -> str:
    return f"82{position:016X}"


def event(index: int, job: str) -> TaskEvent:
    return TaskEvent(TaskEventKind.UPDATED, index, None, token(2 * index), AT, [], job, None)


@st.composite
def scenarios(draw: st.DrawFn) -> tuple[list[str], int, int, int, list[int]]:
    jobs = draw(st.lists(st.sampled_from(["a", "b"]), min_size=1, max_size=40))
    committed = draw(st.integers(0, len(jobs)))
    after = draw(st.integers(0, 2 * committed + 1))  # an event's cursor (even) or a point between (odd)
    dispatched = draw(st.integers(0, committed))  # how far the shared stream had read when the tab subscribed
    steps = draw(st.lists(st.integers(0, 4), max_size=300))
    return jobs, committed, after, dispatched, steps


@settings(max_examples=400, deadline=None)
@given(scenarios(), st.integers(1, 6))
async def test_a_resumed_subscription_gets_each_event_after_its_cursor_once_in_order(
    scenario: tuple[list[str], int, int, int, list[int]], buffer: int
) -> None:
    jobs, committed, after, dispatched, steps = scenario
    events = [event(index + 1, job) for index, job in enumerate(jobs)]
    wanted = [e for e in events if e.job_id == "a" and e.cursor > token(after)]
    phases: Counter[Phase] = Counter()
    subscriber = Subscriber("a", buffer, after=token(after), mark=token(2 * dispatched + 1), phases=phases)
    received: list[TaskEvent] = []
    catch_up_read = after  # the catch-up's position, as positions (reopened here when it paused)
    paused = False

    async def take() -> bool:
        if not subscriber.queue and subscriber.ending is None:
            return False
        try:
            taken = subscriber.take()
        except SubscriberTooSlow:  # ended now, or already (a reader asks on after an end)
            return False
        assert taken is not None  # something was queued
        received.append(taken)
        return True

    def dispatch() -> bool:
        nonlocal dispatched
        if dispatched >= committed:
            return False
        dispatched += 1
        e = events[dispatched - 1]
        if e.job_id == "a":
            subscriber.offer(e, frozenset({e.job_id}))
        return True

    def catch_up() -> bool:
        """One item of the catch-up stream: the next event, or its position at the end of what is committed."""
        nonlocal catch_up_read, paused
        if not subscriber.catching_up:
            return False
        if paused:
            if subscriber.full():
                return False
            paused = False  # reopened after catch_up_read
        next_index = catch_up_read // 2 + 1
        if next_index <= committed:
            e = events[next_index - 1]
            catch_up_read = 2 * next_index
            if e.job_id == "a":
                subscriber.catch_up(e, frozenset({"a"}))
        else:
            catch_up_read = 2 * committed + 1
        if not subscriber.hand_over(token(catch_up_read)) and subscriber.full():
            paused = True
        return True

    for step in steps:
        if step == 0 and committed < len(events):
            committed += 1
        elif step == 1:
            dispatch()
        elif step == 2:
            catch_up()
        else:
            await take()
    committed = len(events)
    # Everything committed: the parties run until nothing moves.
    while dispatch() or catch_up() or await take():
        pass

    assert all(a.cursor < b.cursor for a, b in itertools.pairwise(received)), "out of order or twice"
    # The counts /metrics shows follow the subscription's phase (an ended one is in none).
    assert +phases == ({} if subscriber.phase is Phase.ENDED else {subscriber.phase: 1})
    if isinstance(subscriber.ending, SubscriberTooSlow):
        assert received == wanted[: len(received)]
    else:
        assert subscriber.phase is Phase.LIVE
        assert received == wanted


def test_a_reader_that_never_reads_is_ended_once_its_buffer_is_full_and_holds_no_more() -> None:
    subscriber = Subscriber(None, 3, after=None, mark=token(1))
    for index in range(1, 10):
        subscriber.offer(event(index, "a"), frozenset({"a"}))
    assert len(subscriber.queue) == 3 and subscriber.phase is Phase.ENDED
    assert isinstance(subscriber.ending, SubscriberTooSlow)
    assert "TRACKING_SUBSCRIPTION_BUFFER" in subscriber.ending.message and "3 events" in subscriber.ending.message


async def test_the_events_queued_before_the_end_are_delivered_then_the_error() -> None:
    subscriber = Subscriber(None, 2, after=None, mark=token(1))
    for index in range(1, 4):
        subscriber.offer(event(index, "a"), frozenset({"a"}))
    assert [taken.task_id for taken in (subscriber.take(), subscriber.take()) if taken is not None] == [1, 2]
    assert subscriber.waiter() is None  # nothing to wait for: it has ended
    with pytest.raises(SubscriberTooSlow):
        subscriber.take()


def test_visibility_is_applied_before_an_event_is_queued() -> None:
    subscriber = Subscriber(None, 5, after=None, mark=token(1), visible=lambda jobs: "secret" not in jobs)
    subscriber.offer(event(1, "secret"), frozenset({"secret"}))
    subscriber.offer(event(2, "open"), frozenset({"open"}))
    assert [e.task_id for e in subscriber.queue] == [2]
