"""The delay from a REST status change to its taskEvents event over WebSocket, against a driver change stream."""

from __future__ import annotations

import asyncio
import statistics
import time
from datetime import UTC, datetime

import aiohttp

from bench.data import Database, task_doc
from bench.measure import REPORT, Row, Run
from bench.processes import TOKEN

EVENTS = 60


async def event_delay_row(session: aiohttp.ClientSession, gateway: str, db: Database) -> Row:
    """Median delay from a REST status change to its taskEvents event over WebSocket, against the same update
    seen by a change stream opened directly with the driver."""
    await db.tasks.insert_one(task_doc(10**12, "events", datetime.now(UTC)))
    subscribe = {
        "id": "1",
        "type": "subscribe",
        "payload": {"query": 'subscription { taskEvents(jobId: "events") { cursor task { status } } }'},
    }
    delays: list[float] = []
    async with session.ws_connect(f"{gateway}/graphql", protocols=["graphql-transport-ws"]) as ws:
        await ws.send_json({"type": "connection_init", "payload": {"X-Auth-Token": TOKEN}})
        await ws.receive_json()
        await ws.send_json(subscribe)
        await asyncio.sleep(1)
        for number in range(EVENTS):
            started = time.perf_counter()
            async with session.put(f"{gateway}/tracking/task/{10**12}", json={"status": f"S{number}"}) as response:
                assert response.status == 200
            while (await ws.receive_json())["payload"]["data"]["taskEvents"]["task"]["status"] != f"S{number}":
                pass
            delays.append(time.perf_counter() - started)
    raw_delays: list[float] = []
    async with await db.tasks.watch([{"$match": {"documentKey._id": 10**12}}]) as stream:
        for number in range(EVENTS):
            started = time.perf_counter()
            await db.tasks.update_one({"_id": 10**12}, {"$set": {"status": f"R{number}"}})
            await stream.next()
            raw_delays.append(time.perf_counter() - started)
    ours, raw = statistics.median(delays[5:]), statistics.median(raw_delays[5:])
    return Row(
        "REST change -> taskEvents event (median delay)",
        ours * 1000,
        raw * 1000,
        "ms",
        ours / raw,
        REPORT,
        f"p95 {sorted(delays)[int(len(delays) * 0.95)] * 1000:.0f} ms; raw: update + driver change stream",
    )


async def measure(run: Run) -> list[Row]:
    return [await event_delay_row(run.session, run.gateway, run.db)]
