"""Tabs that open and close for hours leave nothing behind: after many rounds of subscriptions opened over
WebSockets, each fed events, then closed (by completing them and by dropping their connections), every object
they made is freed, and the number of objects the garbage collector tracks stays where it was."""

from __future__ import annotations

import gc
import json
from collections import Counter
from collections.abc import Callable
from contextlib import AsyncExitStack
from typing import Any

import httpx

from gateway.heap import HeapUpkeep, reclaim
from graphql_schema.event_payloads import SharedResults
from graphql_schema.events import TaskEventType
from models import GraphStore
from models.events import TaskEvent
from models.subscriber import Subscriber
from tests.graphql_schema.test_event_payloads import send
from tests.helpers import AUTH, eventually, gateway_app, served, subscribed
from tests.models.test_fanout import Inbox, connection

CONNECTIONS, PER_CONNECTION, WARM_UP, ROUNDS = 4, 10, 2, 6
QUERY = 'subscription { taskEvents(jobId: "mem") { kind taskId cursor task { status } } }'
WATCHED = (Subscriber, TaskEvent, TaskEventType, SharedResults)
LOOP_SCHEDULE = ("TimerHandle", "Context", "hamt", "hamt_bitmap_node")
"""The event loop's timers and their contexts: a cancelled timer (a closed connection's ping) waits in the
loop's schedule until its time, however loaded the machine."""


def tracked_by_type() -> Counter[str]:
    gc.collect()
    return Counter(type(thing).__qualname__ for thing in gc.get_objects())


async def open_subscriptions(stack: AsyncExitStack, port: int, query: str) -> tuple[list[Any], list[Inbox]]:
    """CONNECTIONS connections (closed with `stack`), each with PER_CONNECTION subscriptions of `query` (ids "0",
    "1", ...) and an inbox reading it; once all are live."""
    sockets = [await stack.enter_async_context(connection(port)) for _ in range(CONNECTIONS)]
    inboxes = [Inbox(ws) for ws in sockets]
    async with subscribed(CONNECTIONS * PER_CONNECTION):
        for ws in sockets:
            for op in range(PER_CONNECTION):
                await send(ws, str(op), query, {})
    return sockets, inboxes


async def one_round(
    store: GraphStore, port: int, rest: httpx.AsyncClient, number: int, while_open: Callable[[], None] = lambda: None
) -> None:
    """CONNECTIONS x PER_CONNECTION subscriptions, one event each, `while_open` called, then half completed and
    half dropped with their connection."""
    async with AsyncExitStack() as stack:
        sockets, inboxes = await open_subscriptions(stack, port, QUERY)
        answer = await rest.post("/tracking/task", json={"tasks": [{"id": 7000 + number, "job-id": "mem"}]})
        assert answer.status_code == 200, answer.text

        async def delivered() -> bool:
            return all(len(inbox.events[str(op)]) == 1 for inbox in inboxes for op in range(PER_CONNECTION))

        await eventually(delivered, what="every subscription's event")
        while_open()
        for ws in sockets[: CONNECTIONS // 2]:
            for op in range(PER_CONNECTION):
                await ws.send(json.dumps({"id": str(op), "type": "complete"}))
        for inbox in inboxes:
            await inbox.stop()

    async def all_closed() -> bool:
        return not store.live.subscribers()

    await eventually(all_closed, what="every subscription closed")


async def test_subscriptions_opened_and_closed_for_many_rounds_leave_no_object_behind(store: GraphStore, tmp_path):
    app, settings = gateway_app(store, tmp_path)
    async with (
        served(app, settings) as port,
        httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", headers=AUTH, timeout=30) as rest,
    ):
        for number in range(WARM_UP):  # what the first rounds make to stay (caches, the parsed query) stays
            await one_round(store, port, rest, number)
        tracked_by_type()  # (its first use makes a few objects of its own that stay)
        for number in range(WARM_UP, WARM_UP + ROUNDS):
            await one_round(store, port, rest, number)
        before = tracked_by_type()
        for number in range(WARM_UP + ROUNDS, WARM_UP + 2 * ROUNDS):
            await one_round(store, port, rest, number)
        after = tracked_by_type()
    for kind in WATCHED:  # none of the rounds' (none before them either, unless another test's)
        assert after[kind.__qualname__] <= before[kind.__qualname__], (kind, after[kind.__qualname__])
    grown = {name: after[name] - before[name] for name in after if after[name] > before[name]}
    grown.pop("LogRecord", None)  # kept by pytest's log capture, not by the gateway
    for scheduled in LOOP_SCHEDULE:
        grown.pop(scheduled, None)
    # Not one object per two subscriptions stays (a subscription is over a hundred): what differs is of the
    # moment (a weak reference, a tuple).
    subscriptions = ROUNDS * CONNECTIONS * PER_CONNECTION
    assert sum(grown.values()) < subscriptions / 2, sorted(grown.items(), key=lambda item: -item[1])[:20]


async def test_a_frozen_fleet_s_garbage_is_given_back_once_enough_subscriptions_ended(store: GraphStore, tmp_path):
    """The heap upkeep freezes what survives a collection of the middle generation while subscriptions are open
    (the collector no longer walks them); once they have ended, what they left in reference cycles stays frozen
    (thousands of objects for these 40), and the upkeep's reclaim, due once that many ended, frees it: the
    frozen heap is back where it was, no subscription's object left."""
    app, settings = gateway_app(store, tmp_path)
    async with (
        served(app, settings) as port,
        httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", headers=AUTH, timeout=30) as rest,
    ):
        for number in range(WARM_UP):
            await one_round(store, port, rest, number)
        existing = tracked_by_type()
        reclaim()
        upkeep = HeapUpkeep(store.live.counts, reclaim_after_ended=CONNECTIONS * PER_CONNECTION)
        upkeep.install()
        try:
            frozen_before = gc.get_freeze_count()
            due_while_open: list[bool] = []

            def freeze_while_open() -> None:
                gc.collect(1)  # the subscriptions' objects survive it, and are frozen
                due_while_open.append(upkeep.due())

            await one_round(store, port, rest, WARM_UP, freeze_while_open)
            assert due_while_open == [False]
            gc.collect()  # walks none of the frozen objects: what the closed subscriptions left in cycles stays
            kept = gc.get_freeze_count() - frozen_before
            assert upkeep.due()
            upkeep.reclaim()
            frozen_after = gc.get_freeze_count()
        finally:
            upkeep.uninstall()
            gc.unfreeze()
        left = tracked_by_type()  # frozen objects included, now unfrozen
    for kind in WATCHED:
        assert left[kind.__qualname__] <= existing[kind.__qualname__], (kind, left[kind.__qualname__])
    assert kept > CONNECTIONS * PER_CONNECTION  # the garbage a frozen fleet keeps until reclaimed
    assert frozen_after - frozen_before < kept / 10, (kept, frozen_after - frozen_before)
