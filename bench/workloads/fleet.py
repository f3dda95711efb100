"""Live updates for a fleet: 10,000 taskEvents subscriptions over 2,000 WebSocket connections, spread over 1,000
jobs, while 100 changes a second are made through REST. Measures what MongoDB holds for live updates
(connections and change-stream cursors at one subscription and at all of them), the delay from each write's
answer to its event's arrival (p50, p99), the gateway's CPU per delivered event and per change, REST GET p99
while it runs against idle, and the gateway's RSS per open subscription.

`python -m bench fleet` runs it in the benchmark; `python -m bench.workloads.fleet 0.01` runs it alone at a
hundredth of the scale (100 subscriptions on 20 connections over 10 jobs) on an embedded MongoDB of its own,
to check that it works."""

from __future__ import annotations

import asyncio
import contextlib
import random
import sys
import tempfile
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp
from pymongo import AsyncMongoClient
from pymongo.read_concern import ReadConcern

from bench.data import DB, Database, task_doc
from bench.measure import REPORT, Bound, Row, Run, Target, at_most
from bench.processes import TOKEN, start, tree_cpu_s, wait_until_up

SUBSCRIPTIONS, CONNECTIONS, JOBS = 10_000, 2_000, 1_000
CHANGES_PER_S = 100
SECONDS = 30
ID_BASE = 7 * 10**12
QUERY = "subscription($jobId: String) { taskEvents(jobId: $jobId) { cursor task { status } } }"
P99_TARGET = Target((Bound("gateway", "<=", 250, "ms"),))


@dataclass
class Fleet:
    """The connections, and when each change was answered and each of its events arrived."""

    sockets: list[aiohttp.ClientWebSocketResponse] = field(default_factory=list)
    readers: list[asyncio.Task[None]] = field(default_factory=list)
    answered: dict[str, float] = field(default_factory=dict)
    arrivals: list[tuple[str, float]] = field(default_factory=list)

    async def read(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        async for message in ws:
            payload = message.json().get("payload") or {}
            event = (payload.get("data") or {}).get("taskEvents")
            if event is not None:
                self.arrivals.append((event["task"]["status"], time.perf_counter()))

    def delays_ms(self) -> list[float]:
        return sorted(
            max(0.0, arrived - self.answered[status]) * 1000
            for status, arrived in self.arrivals
            if status in self.answered
        )


def percentile(values: list[float], fraction: float) -> float:
    return values[min(len(values) - 1, int(len(values) * fraction))] if values else float("nan")


def rss_kb(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


async def live_connections_and_cursors(db: Database) -> tuple[int, int]:
    """Connections of the gateway's live-update client, and change streams open on the benchmark's tasks."""
    admin = db.client.get_database("admin", read_concern=ReadConcern("local"))
    connections = await (
        await admin.aggregate(
            [
                {"$currentOp": {"allUsers": True, "idleConnections": True}},
                {"$match": {"appName": "tracking-gateway-live"}},
            ]
        )
    ).to_list(None)
    stream = "cursor.originatingCommand.pipeline.0.$changeStream"
    cursors = await (
        await admin.aggregate(
            [
                {"$currentOp": {"idleCursors": True, "allUsers": True}},
                {"$match": {"ns": f"{db.name}.tasks", stream: {"$exists": True}}},
            ]
        )
    ).to_list(None)
    return len(connections), len(cursors)


async def live_subscriptions(session: aiohttp.ClientSession, gateway: str) -> float:
    async with session.get(f"{gateway}/metrics") as response:
        for line in (await response.text()).splitlines():
            if line.startswith('tracking_subscriptions_open{phase="live"}'):
                return float(line.split()[-1])
    return 0.0


async def connect_fleet(gateway: str, sockets_session: aiohttp.ClientSession, fleet: Fleet, connections: int) -> None:
    for _ in range(connections):
        ws = await sockets_session.ws_connect(f"{gateway}/graphql", protocols=["graphql-transport-ws"])
        await ws.send_json({"type": "connection_init", "payload": {"X-Auth-Token": TOKEN}})
        assert (await ws.receive_json())["type"] == "connection_ack"
        fleet.sockets.append(ws)
        fleet.readers.append(asyncio.create_task(fleet.read(ws)))


async def subscribe(fleet: Fleet, numbers: range, jobs: int) -> None:
    """Subscription `number` on connection number % connections, to job number % jobs."""
    for number in numbers:
        payload = {"query": QUERY, "variables": {"jobId": f"fleet-live-{number % jobs}"}}
        await fleet.sockets[number % len(fleet.sockets)].send_json(
            {"id": str(number), "type": "subscribe", "payload": payload}
        )


async def until_live(session: aiohttp.ClientSession, gateway: str, count: int) -> None:
    """Until the gateway's /metrics says `count` subscriptions are live (at most five minutes)."""
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        if await live_subscriptions(session, gateway) >= count:
            return
        await asyncio.sleep(0.2)


async def get_latencies(gateway: str, seconds: float) -> list[float]:
    """Sequential GETs of one task for `seconds`, each latency in ms, sorted. On a connection of their own: the
    writes' session may have all its connections busy, which would time the client's queue, not the gateway."""
    latencies: list[float] = []
    ends = time.perf_counter() + seconds
    async with aiohttp.ClientSession(headers={"X-Auth-Token": TOKEN}) as session:
        while time.perf_counter() < ends:
            started = time.perf_counter()
            async with session.get(f"{gateway}/tracking/task/{ID_BASE}") as response:
                assert response.status == 200
                await response.read()
            latencies.append((time.perf_counter() - started) * 1000)
            await asyncio.sleep(0.01)
    return sorted(latencies)


async def change(session: aiohttp.ClientSession, gateway: str, fleet: Fleet, task_id: int, status: str) -> None:
    async with session.put(f"{gateway}/tracking/task/{task_id}", json={"status": status}) as response:
        assert response.status == 200, await response.text()
    fleet.answered[status] = time.perf_counter()


async def run_fleet(
    session: aiohttp.ClientSession, gateway: str, gateway_pid: int, db: Database, scale: float = 1.0
) -> list[Row]:
    subscriptions = max(1, int(SUBSCRIPTIONS * scale))
    connections, jobs = max(1, int(CONNECTIONS * scale)), max(1, int(JOBS * scale))
    seconds = max(5.0, SECONDS * min(1.0, scale * 10))
    now = datetime.now(UTC)
    await db.tasks.delete_many({"_id": {"$gte": ID_BASE, "$lt": ID_BASE + JOBS}})
    await db.tasks.insert_many([task_doc(ID_BASE + job, f"fleet-live-{job}", now) for job in range(jobs)])
    idle = await get_latencies(gateway, 5)
    fleet = Fleet()
    rss_before = rss_kb(gateway_pid)
    connector = aiohttp.TCPConnector(limit=0)
    async with aiohttp.ClientSession(connector=connector) as sockets_session:
        await connect_fleet(gateway, sockets_session, fleet, connections)
        await subscribe(fleet, range(1), jobs)
        await until_live(session, gateway, 1)
        at_one = await live_connections_and_cursors(db)
        await subscribe(fleet, range(1, subscriptions), jobs)
        await until_live(session, gateway, subscriptions)
        rss_per_subscription = (rss_kb(gateway_pid) - rss_before) / subscriptions
        at_all = await live_connections_and_cursors(db)
        cpu_before = tree_cpu_s([gateway_pid])
        probing = asyncio.create_task(get_latencies(gateway, seconds))
        writes: list[asyncio.Task[None]] = []
        rng = random.Random(30)
        started = time.perf_counter()
        for number in range(int(seconds * CHANGES_PER_S)):
            await asyncio.sleep(max(0.0, started + number / CHANGES_PER_S - time.perf_counter()))
            task_id = ID_BASE + rng.randrange(jobs)
            writes.append(asyncio.create_task(change(session, gateway, fleet, task_id, f"F{number}")))
        await asyncio.gather(*writes)
        busy = await probing
        await asyncio.sleep(2)  # the last events arrive
        cpu = tree_cpu_s([gateway_pid]) - cpu_before
        for reader in fleet.readers:
            reader.cancel()
        await asyncio.gather(*fleet.readers, return_exceptions=True)
        for ws in fleet.sockets:
            with contextlib.suppress(Exception):
                await ws.close()
    delays = fleet.delays_ms()
    changes = len(writes)
    shape = f"{subscriptions} subscriptions, {connections} connections, {jobs} jobs, {CHANGES_PER_S} changes/s"
    return [
        Row(
            "fleet: live-update MongoDB connections",
            at_all[0],
            at_one[0],
            "conns",
            at_all[0] / max(1, at_one[0]),
            at_most(1.0),
            f"{subscriptions} subscriptions against 1",
        ),
        Row(
            "fleet: change-stream cursors",
            at_all[1],
            at_one[1],
            "cursors",
            at_all[1] / max(1, at_one[1]),
            at_most(1.0),
            f"{subscriptions} subscriptions against 1",
        ),
        Row("fleet: delivery p50 (write answered -> event)", percentile(delays, 0.5), 0, "ms", 0, REPORT, shape),
        Row(
            "fleet: delivery p99 (write answered -> event)",
            percentile(delays, 0.99),
            250,
            "ms",
            percentile(delays, 0.99) / 250,
            P99_TARGET,
            f"{len(delays)} deliveries",
        ),
        Row("fleet: gateway CPU per delivered event", cpu / max(1, len(delays)) * 1e6, 0, "us", 0, REPORT),
        Row("fleet: gateway CPU per change", cpu / max(1, changes) * 1e3, 0, "ms", 0, REPORT),
        Row(
            "fleet: REST GET p99 while it runs",
            percentile(busy, 0.99),
            percentile(idle, 0.99),
            "ms",
            percentile(busy, 0.99) / percentile(idle, 0.99),
            at_most(1.5),
            "against idle",
        ),
        Row("fleet: gateway RSS per open subscription", rss_per_subscription, 0, "KB", 0, REPORT),
    ]


async def measure(run: Run) -> list[Row]:
    return await run_fleet(run.session, run.gateway, run.cpu.gateways[0], run.db)


async def _alone(scale: float) -> None:
    from gateway.embedded import EmbeddedMongo, free_port

    with tempfile.TemporaryDirectory(prefix="tracking-fleet-") as workdir:
        mongo = EmbeddedMongo(Path(workdir), cache_size_gb=0.25)
        uri = await mongo.start()
        client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(uri, tz_aware=True)
        port = free_port()
        gateway = start("gateway", port, uri, Path(workdir) / "gw")
        try:
            await wait_until_up(f"http://127.0.0.1:{port}/readyz", gateway)
            async with aiohttp.ClientSession(headers={"X-Auth-Token": TOKEN}) as session:
                rows = await run_fleet(session, f"http://127.0.0.1:{port}", gateway.pid, client[DB], scale)
            for row in rows:
                print(f"{row.workload:50} {row.gateway:10.2f} {row.unit:8} ref {row.reference:8.2f}  {row.note}")
        finally:
            gateway.terminate()
            gateway.wait(30)
            await client.close()
            await mongo.stop()


if __name__ == "__main__":
    asyncio.run(_alone(float(sys.argv[1]) if len(sys.argv) > 1 else 0.01))
