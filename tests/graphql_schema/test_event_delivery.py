"""What a delivered event leaves behind on the server: a subscription served over graphql-transport-ws waits for
its next event holding nearly nothing new (graphql_schema.event_delivery), so that a fleet's deliveries do not
give the garbage collector's middle generation each subscription's whole generator stack to walk again."""

from __future__ import annotations

import gc
import json
from collections import Counter
from collections.abc import Awaitable, Callable
from contextlib import AsyncExitStack

import httpx

from models import GraphStore
from tests.graphql_schema.test_subscription_memory import CONNECTIONS, PER_CONNECTION, open_subscriptions
from tests.helpers import AUTH, eventually, gateway_app, served

QUERY = 'subscription { taskEvents(jobId: "kept") { kind taskId cursor task { status } } }'


def _survivors_by_type(before: list[object]) -> Counter[str]:
    gc.collect()
    known = {id(thing) for thing in before}
    return Counter(type(thing).__qualname__ for thing in gc.get_objects() if id(thing) not in known)


async def test_a_delivered_event_leaves_a_waiting_subscription_nearly_nothing_new(store: GraphStore, tmp_path):
    app, settings = gateway_app(store, tmp_path)
    async with (
        served(app, settings) as port,
        httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", headers=AUTH, timeout=30) as rest,
        AsyncExitStack() as stack,
    ):
        sockets, inboxes = await open_subscriptions(stack, port, QUERY)

        def each_has(count: int) -> Callable[[], Awaitable[bool]]:
            async def delivered() -> bool:
                return all(len(inbox.events[str(op)]) == count for inbox in inboxes for op in range(PER_CONNECTION))

            return delivered

        async def all_waiting() -> bool:
            return all(subscriber.waiting for subscriber in store.live.subscribers())

        for number in range(3):  # the first deliveries make what stays (caches, the parsed selection)
            answer = await rest.post("/tracking/task", json={"tasks": [{"id": 8000 + number, "job-id": "kept"}]})
            assert answer.status_code == 200, answer.text
            await eventually(each_has(number + 1), what="every subscription's event")
            await eventually(all_waiting, what="every subscription waiting again")
        gc.collect()
        before = gc.get_objects()  # held: no id of these can be reused by what the next delivery makes
        answer = await rest.post("/tracking/task", json={"tasks": [{"id": 8100, "job-id": "kept"}]})
        assert answer.status_code == 200, answer.text
        await eventually(each_has(4), what="every subscription's fourth event")
        await eventually(all_waiting, what="every subscription waiting again")
        new = _survivors_by_type(before)
        del before
        subscriptions = CONNECTIONS * PER_CONNECTION
        # Each waits on its event source (one awaitable) and nothing else it made for the last event: no result,
        # no awaitable of the protocol handler's, Strawberry's or graphql-core's layers (five per subscription
        # before). The few more are the test's own: its connections' readers, the change stream's getMore.
        assert new["async_generator_asend"] <= subscriptions + 2 * CONNECTIONS + 2, new
        assert new["ExecutionResult"] <= 1, new  # the event's one shared answer, none per subscription
        for ws in sockets:
            for op in range(PER_CONNECTION):
                await ws.send(json.dumps({"id": str(op), "type": "complete"}))
        for inbox in inboxes:
            await inbox.stop()
