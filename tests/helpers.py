"""Small builders and checks shared by the tests."""

from __future__ import annotations

import asyncio
import functools
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import uvicorn
from asgi_lifespan import LifespanManager
from fastapi import FastAPI
from prometheus_client import REGISTRY
from pymongo.read_concern import ReadConcern
from websockets.asyncio.client import ClientConnection, connect
from websockets.typing import Subprotocol

from gateway.app import create_app
from gateway.backend import Backend
from gateway.embedded import free_port
from gateway.server import server_config
from gateway.settings import Settings, load_settings
from models import GraphStore, HistoryWriter, TaskCreate
from models.fanout import LIVE_HUBS
from models.subscriber import Phase, Subscriber
from ui import UI_DIR

TOKEN = "test-token"
"""The token the tests' gateways accept."""
AUTH = {"X-Auth-Token": TOKEN}


@functools.cache
def live_view_documents() -> dict[str, str]:
    """The GraphQL documents the live view sends, by their name in ui/queries.js, exactly as the page sends them:
    node imports the module (its template literals written out), so the tests send what the page does."""
    module = (UI_DIR / "queries.js").as_uri()
    script = f"import * as queries from {json.dumps(module)}; process.stdout.write(JSON.stringify(queries));"
    run = subprocess.run(
        ["node", "--input-type=module", "-e", script], capture_output=True, text=True, timeout=60, check=False
    )
    assert run.returncode == 0, f"node could not import ui/queries.js: {run.stderr}"
    exported: dict[str, Any] = json.loads(run.stdout)
    return {name: value for name, value in exported.items() if isinstance(value, str)}


def gateway_app(store: GraphStore, data_dir: Path, **settings: Any) -> tuple[FastAPI, Settings]:
    """The gateway app on `store`, accepting TOKEN, its data dir at `data_dir`, and the settings it was made with;
    `settings` are load_settings's keyword arguments and override those."""
    loaded = load_settings(**{"api_tokens": TOKEN, "data_dir": data_dir, **settings})
    return create_app(loaded, Backend(store=store)), loaded


def task(**fields: Any) -> TaskCreate:
    """A TaskCreate from API field names (underscores stand for hyphens: job_id -> job-id)."""
    return TaskCreate.model_validate({name.replace("_", "-"): value for name, value in fields.items()})


async def graphql(http: httpx.AsyncClient, query: str, variables: dict[str, Any] | None = None) -> dict[str, Any]:
    """The body of a GraphQL operation POSTed to /graphql, which must be answered 200 (errors may be in it)."""
    response = await http.post("/graphql", json={"query": query, "variables": variables or {}})
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


async def graphql_data(http: httpx.AsyncClient, query: str, variables: dict[str, Any] | None = None) -> Any:
    """The `data` of a GraphQL operation that must succeed (200, no errors)."""
    body = await graphql(http, query, variables)
    assert "errors" not in body, body["errors"]
    return body["data"]


async def stored_links(raw_db) -> dict[int, tuple[list[int], list[int]]]:
    return {
        doc["_id"]: (doc.get("nexts", []), doc.get("previous", []))
        async for doc in raw_db.tasks.find({}, {"nexts": 1, "previous": 1})
    }


async def assert_link_invariant(raw_db) -> set[tuple[int, int]]:
    """The link invariant: b in a.nexts exactly when a in b.previous, and every linked id exists. Returns the edges."""
    links = await stored_links(raw_db)
    edges = {(a, b) for a, (nexts, _) in links.items() for b in nexts}
    mirrored = {(a, b) for b, (_, previous) in links.items() for a in previous}
    assert edges == mirrored, f"nexts/previous disagree: {edges ^ mirrored}"
    dangling = {i for edge in edges for i in edge} - links.keys()
    assert not dangling, f"links to missing tasks {dangling}"
    for a, (nexts, previous) in links.items():
        assert len(nexts) == len(set(nexts)), f"task {a} repeats a next id"
        assert len(previous) == len(set(previous)), f"task {a} repeats a previous id"
    return edges


def reachable(edges: set[tuple[int, int]], start: int, goal: int) -> bool:
    """Whether `goal` is downstream of `start` in `edges` (the plain model the stored graph is checked against)."""
    seen, frontier = {start}, [start]
    while frontier:
        node = frontier.pop()
        if node == goal:
            return True
        for a, b in edges:
            if a == node and b not in seen:
                seen.add(b)
                frontier.append(b)
    return False


@asynccontextmanager
async def served(app: FastAPI, settings: Settings, **uvicorn_options: Any) -> AsyncIterator[int]:
    """`app` behind the gateway's own uvicorn configuration on a free loopback port, in this event loop (the
    store's client lives here); yields the port. `uvicorn_options` override attributes of that configuration
    (e.g. `ws_ping_interval`)."""
    port = free_port()
    config = server_config(app, settings)
    config.port, config.log_level = port, "warning"
    for name, value in uvicorn_options.items():
        assert hasattr(config, name), name
        setattr(config, name, value)
    server = uvicorn.Server(config)
    serving = asyncio.create_task(server.serve())
    while not server.started:
        assert not serving.done(), "uvicorn did not start"
        await asyncio.sleep(0.05)
    try:
        yield port
    finally:
        server.should_exit = True
        await serving


POLL_FIRST_S = 0.005
POLL_MAX_S = 0.1
"""`eventually` polls soon after a first miss, then less and less often: most conditions hold within a few
milliseconds (an event delivered, a change stream opened), a few take seconds (a process starting)."""


async def eventually(check: Callable[[], Awaitable[bool]], timeout: float = 30, what: str = "condition") -> None:
    """Wait for `check` to hold, polling; fail naming `what` after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    interval = POLL_FIRST_S
    while not await check():
        assert time.monotonic() < deadline, f"{what} did not hold within {timeout}s"
        await asyncio.sleep(interval)
        interval = min(interval * 2, POLL_MAX_S)


LIFESPAN_BOUND_S = 120.0


@asynccontextmanager
async def lifespan_client(app: FastAPI, headers: dict[str, str] | None = None) -> AsyncIterator[httpx.AsyncClient]:
    """An HTTP client on `app` in this process, with the app's lifespan run around it (as a server runs it). The
    start and the stop take what they take (asgi-lifespan's 5 s each ran out on a loaded machine while the app
    closed MongoDB); each is bounded by the gateway's own deadlines, and LIFESPAN_BOUND_S only catches a hang."""
    async with LifespanManager(app, startup_timeout=LIFESPAN_BOUND_S, shutdown_timeout=LIFESPAN_BOUND_S) as manager:
        transport = httpx.ASGITransport(app=manager.app)
        async with httpx.AsyncClient(
            transport=transport, base_url="http://gw", headers=headers or {}, timeout=60
        ) as client:
            yield client


async def open_transactions(raw_db: Any) -> list[dict[str, Any]]:
    """The transactions MongoDB holds open, idle ones included ($currentOp reads locally)."""
    admin = raw_db.client.get_database("admin", read_concern=ReadConcern("local"))
    pipeline = [
        {"$currentOp": {"idleSessions": True, "idleConnections": True, "allUsers": True}},
        {"$match": {"transaction": {"$exists": True}}},
    ]
    return await (await admin.aggregate(pipeline)).to_list(None)


async def change_streams_open(raw_db: Any) -> int:
    """How many change streams are open on the test database's tasks (a gateway's shared stream, a catch-up, a
    history writer's)."""
    change_stream = "cursor.originatingCommand.pipeline.0.$changeStream"
    pipeline = [
        {"$currentOp": {"idleCursors": True, "allUsers": True}},
        {"$match": {"ns": f"{raw_db.name}.tasks", change_stream: {"$exists": True}}},
    ]
    admin = raw_db.client.get_database("admin", read_concern=ReadConcern("local"))  # $currentOp reads locally
    return len(await (await admin.aggregate(pipeline)).to_list(None))


def live_subscriptions() -> float:
    """Subscriptions fed by a shared change stream in this process (the gateways the tests serve here)."""
    return REGISTRY.get_sample_value("tracking_subscriptions_open", {"phase": "live"}) or 0.0


def _subscribers() -> list[Subscriber]:
    """Every gateway's (shared change stream's) open subscriptions in this process."""
    return [subscriber for hub in list(LIVE_HUBS) for subscriber in hub.subscribers()]


async def no_open_subscriptions() -> bool:
    return not _subscribers()


@asynccontextmanager
async def subscribed(count: int = 1) -> AsyncIterator[None]:
    """Around subscribing: returns once `count` more subscriptions are live (fed by their gateway's shared change
    stream), so that changes made next are theirs to see. Counted are those live now that were not live before:
    a live one of an earlier test that ends meanwhile (the tests share a store, so often its gateway) takes
    nothing off the count. The bound is generous: each subscription resuming after a cursor runs its own catch-up
    read and hand-over (models.subscriber), which a loaded machine slows down; the wait ends as soon as they are
    live."""
    live_before = {s for s in _subscribers() if s.phase is Phase.LIVE}  # held, not by id: ids are reused
    yield

    async def live() -> bool:
        return sum(s.phase is Phase.LIVE and s not in live_before for s in _subscribers()) >= count

    await eventually(live, timeout=120, what=f"{count} more live subscriptions")


@asynccontextmanager
async def subscription(
    port: int, variables: dict[str, Any], token: str, selection: str, until_live: bool = False
) -> AsyncIterator[ClientConnection]:
    """A graphql-transport-ws subscription to taskEvents selecting `selection`; with `until_live`, once the
    gateway feeds it from its shared change stream."""
    query = (
        f"subscription($jobId: String, $after: String) {{ taskEvents(jobId: $jobId, after: $after) {{ {selection} }} }}"
    )
    async with connect(f"ws://127.0.0.1:{port}/graphql", subprotocols=[Subprotocol("graphql-transport-ws")]) as ws:
        await ws.send(json.dumps({"type": "connection_init", "payload": {"X-Auth-Token": token}}))
        assert json.loads(await asyncio.wait_for(ws.recv(), 10))["type"] == "connection_ack"
        payload = {"query": query, "variables": variables}
        if not until_live:
            await ws.send(json.dumps({"id": "1", "type": "subscribe", "payload": payload}))
        else:
            async with subscribed():
                await ws.send(json.dumps({"id": "1", "type": "subscribe", "payload": payload}))
        yield ws


START_MESSAGE = {"graphql-transport-ws": "subscribe", "graphql-ws": "start"}
"""The message that starts an operation, by WebSocket subprotocol."""


@asynccontextmanager
async def acknowledged(port: int, protocol: str) -> AsyncIterator[ClientConnection]:
    """A WebSocket to /graphql speaking `protocol`, its connection_init (with AUTH) acknowledged."""
    async with connect(f"ws://127.0.0.1:{port}/graphql", subprotocols=[Subprotocol(protocol)]) as ws:
        await ws.send(json.dumps({"type": "connection_init", "payload": AUTH}))
        assert json.loads(await asyncio.wait_for(ws.recv(), 10))["type"] == "connection_ack"
        yield ws


def operations_counted(name: str, outcome: str) -> float:
    """`tracking_graphql_operations_total` of operation `name` with `outcome`, in this process."""
    labels = {"operation": name, "outcome": outcome}
    return REGISTRY.get_sample_value("tracking_graphql_operations_total", labels) or 0.0


async def next_message(ws: ClientConnection, timeout: float = 10) -> dict[str, Any]:
    return dict(json.loads(await asyncio.wait_for(ws.recv(), timeout)))


async def next_event(ws: ClientConnection, timeout: float = 10) -> dict[str, Any]:
    message = await next_message(ws, timeout)
    assert message["type"] == "next" and "errors" not in message["payload"], message
    return dict(message["payload"]["data"]["taskEvents"])


@asynccontextmanager
async def writing_history(raw_db: Any, *writers: HistoryWriter) -> AsyncIterator[list[asyncio.Task[None]]]:
    """The writers running, one of them leading with its change stream open (a first writer's history starts
    when its stream opens)."""
    tasks = [asyncio.create_task(writer.run()) for writer in writers]

    async def leading() -> bool:
        lease = await raw_db.task_history_lease.find_one({"_id": "writer"})
        return lease is not None and lease.get("resumeToken") is not None

    try:
        await eventually(leading, what="a writer leading")
        yield tasks
    finally:
        for running in tasks:
            running.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


class LoggedProcess(subprocess.Popen[str]):
    """A process whose standard error (where the gateway logs) goes to a file, read by `output`, and whose
    standard output is discarded. A pipe that nobody reads while the process runs would block it once it had
    written 64 KiB: a gateway logging MongoDB or a collector gone would then hang instead of exiting, and the
    test would blame the gateway."""

    def __init__(self, command: list[str], env: dict[str, str]) -> None:
        self.log = tempfile.TemporaryFile("w+")  # noqa: SIM115 - closed in `output`, once the process ended
        self.written = ""
        super().__init__(command, env=env, stdout=subprocess.DEVNULL, stderr=self.log, text=True)

    def output(self, timeout: float = 60) -> str:
        """What the process wrote to its standard error, once it has exited (waited for at most `timeout`
        seconds)."""
        self.wait(timeout)
        if not self.log.closed:
            self.log.seek(0)
            self.written = self.log.read()
            self.log.close()
        return self.written


def gateway_process(mongo_uri: str, db: str, port: int, data_dir: Path) -> subprocess.Popen[bytes]:
    """A gateway in a process of its own (`python -m gateway`) on `db`, with the test token and only these
    TRACKING_* settings: for tests that kill, stop or run several gateways."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("TRACKING_")}
    env |= {
        "TRACKING_MONGODB_URI": mongo_uri,
        "TRACKING_MONGODB_DB": db,
        "TRACKING_PORT": str(port),
        "TRACKING_API_TOKENS": TOKEN,
        "TRACKING_DATA_DIR": str(data_dir),
    }
    return subprocess.Popen([sys.executable, "-m", "gateway"], env=env, stderr=subprocess.DEVNULL)


async def gateway_ready(port: int, process: subprocess.Popen[str] | subprocess.Popen[bytes] | None = None) -> bool:
    """Whether the gateway on `port` answers /readyz with 200 (False while it is not listening yet); fails at
    once when its `process`, if given, has exited."""
    assert process is None or process.poll() is None, f"the gateway exited with {process.returncode}"
    try:
        async with httpx.AsyncClient() as http:
            return (await http.get(f"http://127.0.0.1:{port}/readyz")).status_code == 200
    except httpx.TransportError:
        return False
