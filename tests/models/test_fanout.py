"""Live updates for a fleet, on a real MongoDB: a thousand subscriptions share one change stream and a pool of
their own while REST answers; tabs that close and resume at once miss nothing and repeat nothing; a reader that
never reads is ended with SUBSCRIBER_TOO_SLOW and resumes; the bounds on open subscriptions; /metrics."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import random
import socket
from collections import defaultdict
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from functools import partial
from typing import Any

import httpx
import pytest
from bson.int64 import Int64
from prometheus_client import REGISTRY
from pymongo.read_concern import ReadConcern
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed
from websockets.typing import Subprotocol

from gateway.app import create_app
from gateway.backend import Backend
from gateway.settings import load_settings
from models import GraphStore
from models.fanout import LiveLimits
from tests.conftest import TEST_DB
from tests.helpers import (
    AUTH,
    TOKEN,
    change_streams_open,
    eventually,
    gateway_app,
    live_subscriptions,
    served,
    subscribed,
)

READER = "fanout-read-token"
QUERY = (
    "subscription($jobId: String, $after: String) { taskEvents(jobId: $jobId, after: $after) { kind taskId cursor } }"
)


@asynccontextmanager
async def connection(port: int, token: str = TOKEN, **options: Any) -> AsyncIterator[ClientConnection]:
    url = f"ws://127.0.0.1:{port}/graphql"
    async with connect(url, subprotocols=[Subprotocol("graphql-transport-ws")], **options) as ws:
        await ws.send(json.dumps({"type": "connection_init", "payload": {"X-Auth-Token": token}}))
        assert json.loads(await asyncio.wait_for(ws.recv(), 30))["type"] == "connection_ack"
        yield ws


async def subscribe(
    ws: ClientConnection, op: str, job: str | None, after: str | None = None, query: str = QUERY
) -> None:
    variables = {"jobId": job, "after": after}
    await ws.send(json.dumps({"id": op, "type": "subscribe", "payload": {"query": query, "variables": variables}}))


async def live_connections(raw_db: Any) -> int:
    """Connections MongoDB holds open for the gateways' live events (their own client's appname)."""
    admin = raw_db.client.get_database("admin", read_concern=ReadConcern("local"))
    pipeline = [
        {"$currentOp": {"allUsers": True, "idleConnections": True}},
        {"$match": {"appName": "tracking-gateway-live"}},
    ]
    return len(await (await admin.aggregate(pipeline)).to_list(None))


class Inbox:
    """Every message of a connection, by operation id, read in the background."""

    def __init__(self, ws: ClientConnection) -> None:
        self.ws = ws
        self.events: dict[str, list[dict[str, Any]]] = defaultdict(list)
        self.errors: dict[str, list[dict[str, Any]]] = defaultdict(list)
        self.completed: set[str] = set()
        self.reading = asyncio.create_task(self._read())

    async def _read(self) -> None:
        with contextlib.suppress(ConnectionClosed):
            await self._read_messages()

    async def _read_messages(self) -> None:
        async for raw in self.ws:
            message = json.loads(raw)
            op = message.get("id")
            if message["type"] == "next" and "errors" not in message["payload"]:
                self.events[op].append(message["payload"]["data"]["taskEvents"])
            elif message["type"] in ("next", "error"):
                payload = message["payload"]
                self.errors[op].extend(payload["errors"] if isinstance(payload, dict) else payload)
            elif message["type"] == "complete":
                self.completed.add(op)

    async def stop(self) -> None:
        self.reading.cancel()
        await asyncio.gather(self.reading, return_exceptions=True)


def code_of(errors: list[dict[str, Any]]) -> str | None:
    return errors[0]["extensions"]["code"] if errors else None


@pytest.fixture
async def own_store(mongo_uri: str, store: GraphStore) -> AsyncIterator[Any]:
    """Open a store of its own (a gateway process with other live bounds) on the test database."""
    opened: list[GraphStore] = []

    async def open_store(**limits: int) -> GraphStore:
        opened.append(await GraphStore.open(mongo_uri, TEST_DB, live=LiveLimits(**limits)))
        return opened[-1]

    yield open_store
    for each in opened:
        await each.close()


async def test_a_thousand_subscriptions_share_one_stream_and_pool_while_rest_answers(store, tmp_path, raw_db):
    """1,000 subscriptions from a read-only token on 250 WebSocket connections: MongoDB sees as many connections
    and change-stream cursors for them as for 10, REST and /readyz answer throughout, and each subscription gets
    exactly the events of its job (or all, unfiltered) in order."""
    app, settings = gateway_app(store, tmp_path, read_tokens=READER)
    jobs = [f"fleet-{n}" for n in range(50)]
    await raw_db.tasks.insert_one({"_id": Int64(1), "job-id": "unwatched", "nexts": [], "previous": []})
    async with served(app, settings) as port, AsyncExitStack() as stack:
        sockets = [await stack.enter_async_context(connection(port, READER)) for _ in range(250)]
        inboxes = [Inbox(ws) for ws in sockets]
        wanted: dict[tuple[int, str], str | None] = {}
        async with subscribed(10):
            for n in range(10):
                wanted[(n, "0")] = jobs[n % 50]
                await subscribe(sockets[n], "0", jobs[n % 50])
        connections_for_10 = await live_connections(raw_db)
        cursors_for_10 = await change_streams_open(raw_db)
        assert cursors_for_10 == 1, "one shared change stream"

        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", headers=AUTH, timeout=60) as rest:
            answered = 0

            async def answering() -> None:
                # A starved pool shows as a 503 (the request's MongoDB wait is bounded by its settings), not as a
                # slow answer: how long an answer takes here is the machine's load, which the test cannot own.
                nonlocal answered
                while True:
                    assert (await rest.get("/tracking/task/1")).status_code == 200
                    assert (await rest.get("/readyz")).status_code == 200
                    answered += 1
                    await asyncio.sleep(0.05)

            probing = asyncio.create_task(answering())
            async with subscribed(990):
                for n in range(10, 1000):
                    job = None if n % 20 == 0 else jobs[n % 50]
                    wanted[(n % 250, str(n // 250))] = job
                    await subscribe(sockets[n % 250], str(n // 250), job)
            assert await live_connections(raw_db) == connections_for_10
            assert await change_streams_open(raw_db) == cursors_for_10

            changes: list[tuple[str, int, str]] = []
            for n, job in enumerate(jobs):
                created = await rest.post("/tracking/task", json={"tasks": [{"id": 100 + n, "job-id": job}]})
                assert created.status_code == 200
                changes.append(("CREATED", 100 + n, job))
            for n, job in enumerate(jobs):
                await raw_db.tasks.update_one({"_id": Int64(100 + n)}, {"$set": {"status": "DONE"}})
                changes.append(("UPDATED", 100 + n, job))

            def expected(job: str | None) -> list[tuple[str, str]]:
                return [(kind, str(task)) for kind, task, of in changes if job is None or of == job]

            async def delivered() -> bool:
                return all(len(inboxes[conn].events[op]) >= len(expected(job)) for (conn, op), job in wanted.items())

            await eventually(delivered, timeout=60, what="every subscription's events")
            assert not probing.done(), probing.exception()  # a refused probe ends the task with its assertion
            probing.cancel()
            await asyncio.gather(probing, return_exceptions=True)
            assert answered > 0
            assert await live_connections(raw_db) == connections_for_10
            assert await change_streams_open(raw_db) == cursors_for_10
        await asyncio.sleep(0.5)  # anything extra would have come by now
        for (conn, op), job in wanted.items():
            got = [(event["kind"], event["taskId"]) for event in inboxes[conn].events[op]]
            assert got == expected(job), (conn, op, job)
            assert not inboxes[conn].errors[op]
        for inbox in inboxes:
            await inbox.stop()


TAB_TASKS = ((1, "tabs"), (2, "tabs"), (3, "elsewhere"))


async def test_tabs_that_close_and_resume_at_once_miss_nothing_and_repeat_nothing(live, store, raw_db):
    """100 tabs follow a job from one cursor while it changes, each closes after a different number of events,
    then all resume at once with their last cursor while the job keeps changing (catch-ups queue for their
    slots, the shared stream goes on): each tab's events, before and after, are exactly the job's, in order."""
    await raw_db.tasks.insert_many(
        [
            {"_id": Int64(n), "job-id": job, "nexts": [], "previous": []}
            for n, job in ((1, "tabs"), (2, "tabs"), (3, "x"))
        ]
    )
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{live}", headers=AUTH, timeout=30) as rest:
        taken = await rest.post("/graphql", json={"query": '{ eventCursor(jobId: "tabs") }'})
        start = taken.json()["data"]["eventCursor"]
    writes = 0

    async def write(count: int) -> None:
        nonlocal writes
        for _ in range(count):
            writes += 1
            await raw_db.tasks.update_one({"_id": Int64(1 + writes % 2)}, {"$set": {"status": f"S{writes}"}})
            await raw_db.tasks.update_one({"_id": Int64(3)}, {"$set": {"status": f"S{writes}"}})  # another job's

    rng = random.Random(30)
    stops = [rng.randrange(0, 40) for _ in range(100)]
    received: list[list[dict[str, Any]]] = [[] for _ in stops]
    async with AsyncExitStack() as stack:
        sockets = [await stack.enter_async_context(connection(live)) for _ in range(25)]
        inboxes = [Inbox(ws) for ws in sockets]
        for tab in range(100):
            await subscribe(sockets[tab % 25], f"a{tab}", "tabs", start)
        await write(40)

        async def read_then_close(tab: int) -> None:
            inbox = inboxes[tab % 25]
            await eventually(lambda: _has(inbox, f"a{tab}", stops[tab]), timeout=60, what=f"tab {tab}'s events")
            await sockets[tab % 25].send(json.dumps({"id": f"a{tab}", "type": "complete"}))
            received[tab] = inbox.events[f"a{tab}"][: stops[tab]]

        await asyncio.gather(*(read_then_close(tab) for tab in range(100)))
        writing = asyncio.create_task(write(40))
        for tab in range(100):  # all at once, with their last cursor (the first one's when they read none)
            last = received[tab][-1]["cursor"] if received[tab] else start
            await subscribe(sockets[tab % 25], f"b{tab}", "tabs", last)
        await writing
        await write(10)
        total = 90

        async def resumed() -> bool:
            return all(len(received[tab]) + len(inboxes[tab % 25].events[f"b{tab}"]) >= total for tab in range(100))

        await eventually(resumed, timeout=60, what="every tab caught up")
        await asyncio.sleep(0.5)
        for inbox in inboxes:
            await inbox.stop()
    everything = [*received[0], *inboxes[0].events["b0"]]
    assert [int(event["taskId"]) for event in everything] == [1 + n % 2 for n in range(1, total + 1)]
    for tab in range(100):
        seen = [*received[tab], *inboxes[tab % 25].events[f"b{tab}"]]
        assert seen == everything, f"tab {tab} (closed after {stops[tab]})"
        assert not inboxes[tab % 25].errors[f"b{tab}"]


async def _has(inbox: Inbox, op: str, count: int) -> bool:
    return len(inbox.events[op]) >= count


def _tiny_receive_buffer() -> socket.socket:
    """A client socket whose kernel takes little before it stops the sender: a reader that does not read fills it
    after a few large events."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    return sock


CHANGES = 40
LARGE_QUERY = QUERY.replace("kind taskId cursor", "kind taskId cursor task { description }")


async def test_a_reader_that_never_reads_is_ended_as_too_slow_and_holds_nobody_back(own_store, tmp_path, raw_db):
    """Two subscriptions resume from one cursor, one on a socket whose reader never reads: once its buffer is
    full it is ended with SUBSCRIBER_TOO_SLOW, delivered after what was queued when it reads again; the other
    gets every change as it comes; resuming from the last event received misses nothing."""
    gateway = await own_store(buffer=4)
    app, settings = gateway_app(gateway, tmp_path)
    await raw_db.tasks.insert_one({"_id": Int64(1), "job-id": "slow", "nexts": [], "previous": []})
    dropped_before, too_slow_before = _sample("tracking_subscription_events_dropped_total"), _too_slow()
    async with served(app, settings) as port:
        taken = None
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", headers=AUTH, timeout=30) as rest:
            taken = (await rest.post("/graphql", json={"query": '{ eventCursor(jobId: "slow") }'})).json()
        start = taken["data"]["eventCursor"]
        sock = _tiny_receive_buffer()
        sock.connect(("127.0.0.1", port))
        async with connection(port, sock=sock, max_queue=1) as stuck, connection(port) as reading:
            await subscribe(stuck, "1", "slow", start, LARGE_QUERY)
            await subscribe(reading, "1", "slow", start, LARGE_QUERY)
            inbox = Inbox(reading)
            for n in range(CHANGES):
                # Incompressible: WebSocket messages are deflated, and a repeated text would fill no buffer.
                large = os.urandom(256 * 1024).hex()
                await raw_db.tasks.update_one({"_id": Int64(1)}, {"$set": {"description": large}})
                # The reader that reads gets each change at once: the stuck one holds nothing back.
                await eventually(partial(_has, inbox, "1", n + 1), what="the reading subscriber's event")
            await inbox.stop()

            async def ended() -> bool:  # the reading one stays
                return [subscriber.taken for subscriber in gateway.live.subscribers()] == [CHANGES]

            await eventually(ended, timeout=30, what="the stuck subscription ended")
            # /metrics: one subscription ended as too slow, and the events it did not get (at least the one that
            # did not fit its buffer) counted as dropped.
            assert _too_slow() == too_slow_before + 1
            assert _sample("tracking_subscription_events_dropped_total") >= dropped_before + 1
            got: list[dict[str, Any]] = []
            error = None
            while error is None:  # now it reads: what was queued, then the error
                message = json.loads(await asyncio.wait_for(stuck.recv(), 30))
                if message["type"] == "next" and "errors" not in message["payload"]:
                    got.append(message["payload"]["data"]["taskEvents"])
                else:
                    error = message["payload"]["errors"] if message["type"] == "next" else message["payload"]
            assert code_of(error) == "SUBSCRIBER_TOO_SLOW", error
            assert "TRACKING_SUBSCRIPTION_BUFFER" in error[0]["message"]
            assert 0 < len(got) < CHANGES
            await subscribe(stuck, "2", "slow", got[-1]["cursor"], LARGE_QUERY)
            rest_of_them: list[dict[str, Any]] = []
            while len(got) + len(rest_of_them) < CHANGES:
                message = json.loads(await asyncio.wait_for(stuck.recv(), 30))
                if message.get("id") == "2":
                    assert message["type"] == "next" and "errors" not in message["payload"], message
                    rest_of_them.append(message["payload"]["data"]["taskEvents"])
        cursors = [event["cursor"] for event in [*got, *rest_of_them]]
        assert cursors == [event["cursor"] for event in inbox.events["1"]]


def _sample(name: str, **labels: str) -> float:
    """A series of this process's /metrics (the gateways the tests serve here)."""
    return REGISTRY.get_sample_value(name, labels) or 0.0


def _too_slow() -> float:
    return _sample("tracking_subscriptions_ended_total", reason="too_slow")


async def test_subscriptions_past_a_connection_s_bound_are_refused_the_others_untouched(store, tmp_path, raw_db):
    app, settings = gateway_app(store, tmp_path, subscriptions_per_connection=2)
    async with served(app, settings) as port, connection(port) as ws, connection(port) as other:
        inbox, other_inbox = Inbox(ws), Inbox(other)
        async with subscribed(3):
            await subscribe(ws, "1", "b")
            await subscribe(ws, "2", None)
            await subscribe(other, "1", "b")
        await subscribe(ws, "3", "b")
        await eventually(lambda: _has_error(inbox, "3"), what="the third subscription refused")
        assert code_of(inbox.errors["3"]) == "TOO_MANY_SUBSCRIPTIONS"
        assert "TRACKING_SUBSCRIPTIONS_PER_CONNECTION" in inbox.errors["3"][0]["message"]
        await raw_db.tasks.insert_one({"_id": Int64(1), "job-id": "b", "nexts": [], "previous": []})
        await eventually(lambda: _all_have(inbox, ["1", "2"], 1), what="the first two still served")
        await eventually(lambda: _has(other_inbox, "1", 1), what="another connection served")
        await complete(ws, "1")  # room for another
        async with subscribed(1):
            await subscribe(ws, "4", "b")
        await raw_db.tasks.update_one({"_id": Int64(1)}, {"$set": {"status": "AGAIN"}})
        await eventually(lambda: _has(inbox, "4", 1), what="the new subscription served")
        await inbox.stop()
        await other_inbox.stop()


async def complete(ws: ClientConnection, op: str) -> None:
    """Complete subscription `op`, returning once the gateway has let it go."""
    before = live_subscriptions()
    await ws.send(json.dumps({"id": op, "type": "complete"}))

    async def gone() -> bool:
        return live_subscriptions() < before

    await eventually(gone, what=f"subscription {op} completed")


async def _has_error(inbox: Inbox, op: str) -> bool:
    return bool(inbox.errors[op])


async def _all_have(inbox: Inbox, ops: list[str], count: int) -> bool:
    return all(len(inbox.events[op]) >= count for op in ops)


async def test_subscriptions_past_the_gateway_s_bound_are_refused_and_metrics_show_them(own_store, tmp_path, raw_db):
    gateway = await own_store(max_subscriptions=2)
    app, settings = gateway_app(gateway, tmp_path)
    async with served(app, settings) as port, connection(port) as ws:
        inbox = Inbox(ws)
        async with subscribed(2):
            await subscribe(ws, "1", "g")
            await subscribe(ws, "2", "g")
        await subscribe(ws, "3", "g")
        await eventually(lambda: _has_error(inbox, "3"), what="the third subscription refused")
        assert code_of(inbox.errors["3"]) == "TOO_MANY_SUBSCRIPTIONS"
        assert "TRACKING_SUBSCRIPTIONS_MAX" in inbox.errors["3"][0]["message"]
        await raw_db.tasks.insert_one({"_id": Int64(1), "job-id": "g", "nexts": [], "previous": []})
        await eventually(lambda: _all_have(inbox, ["1", "2"], 1), what="the others still served")
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as http:
            metrics = (await http.get("/metrics")).text
        for series in (
            'tracking_subscriptions_open{phase="live"}',
            'tracking_subscriptions_open{phase="catching_up"}',
            "tracking_subscription_queue_depth",
            'tracking_subscription_change_streams{kind="shared"}',
            "tracking_subscription_events_delivered_total",
            "tracking_subscription_events_dropped_total",
            'tracking_subscriptions_refused_total{bound="gateway"}',
        ):
            assert series in metrics, series
        await complete(ws, "1")
        async with subscribed(1):
            await subscribe(ws, "4", "g")
        assert not inbox.errors["4"]
        await inbox.stop()


@pytest.mark.slow
async def test_many_subscriptions_ride_out_a_mongod_restart_and_miss_nothing(tmp_path):
    """300 subscriptions on 30 connections, then the embedded mongod killed and restarted by the supervisor: the
    shared stream resumes after its last position; each subscription gets exactly its events, those made while
    MongoDB was back up included, and tabs that subscribed with a cursor during the outage too."""
    settings = load_settings(api_tokens=TOKEN, data_dir=tmp_path / "var", mongodb_timeout_ms=5000)
    backend = await Backend.open(settings)
    app = create_app(settings, backend)
    jobs = [f"r{n}" for n in range(5)]
    try:
        async with served(app, settings) as port, AsyncExitStack() as stack:
            backend.supervise(max_restarts=1)
            async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", headers=AUTH, timeout=30) as rest:
                cursor = (await rest.post("/graphql", json={"query": "{ eventCursor }"})).json()["data"]["eventCursor"]
                sockets = [await stack.enter_async_context(connection(port)) for _ in range(30)]
                inboxes = [Inbox(ws) for ws in sockets]
                wanted = {n: None if n % 10 == 0 else jobs[n % 5] for n in range(300)}
                async with subscribed(300):
                    for n, job in wanted.items():
                        await subscribe(sockets[n % 30], str(n), job)
                for n, job in enumerate(jobs):
                    await rest.post("/tracking/task", json={"tasks": [{"id": n + 1, "job-id": job}]})
                assert backend.embedded is not None
                backend.embedded.process.kill()
                await asyncio.to_thread(backend.embedded.process.wait)
                for n in range(10):  # during the outage, from the cursor taken before anything
                    await subscribe(sockets[n], f"late{n}", jobs[n % 5], cursor)

                async def back() -> bool:  # written once each: a write retried after a timeout may be two
                    return (await rest.get("/readyz")).status_code == 200

                await eventually(back, timeout=90, what="MongoDB back")
                for n in range(5):
                    answer = await rest.put(f"/tracking/task/{n + 1}", json={"status": "AFTER"})
                    assert answer.status_code == 200, answer.text
            changes = [("CREATED", n + 1, job) for n, job in enumerate(jobs)]
            changes += [("UPDATED", n + 1, job) for n, job in enumerate(jobs)]

            def expected(job: str | None) -> list[tuple[str, str]]:
                return [(kind, str(task)) for kind, task, of in changes if job is None or of == job]

            everyone = [*((n % 30, str(n), job) for n, job in wanted.items())]
            everyone += [(n, f"late{n}", jobs[n % 5]) for n in range(10)]

            async def delivered() -> bool:
                return all(len(inboxes[conn].events[op]) >= len(expected(job)) for conn, op, job in everyone)

            await eventually(delivered, timeout=90, what="every subscription's events")
            await asyncio.sleep(0.5)
            for conn, op, job in everyone:
                got = [(event["kind"], event["taskId"]) for event in inboxes[conn].events[op]]
                assert got == expected(job), (op, job, inboxes[conn].errors[op])
            for inbox in inboxes:
                await inbox.stop()
    finally:
        await backend.close()
