"""POST /tracking/task with 10,000 tasks in one body, against insert_many into a collection with the same
indexes."""

from __future__ import annotations

import statistics
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

import aiohttp
import orjson
from bson.int64 import Int64

from bench.data import Database
from bench.measure import REPORT, CpuMeter, Row, Run, at_least, median_of, timed

TARGET = at_least(0.6)


async def create_rows(
    session: aiohttp.ClientSession, gateway: str, db: Database, ids: dict[str, int], cpu_meter: CpuMeter
) -> list[Row]:
    body = orjson.dumps({"tasks": [{"job-id": "created", "status": "READY", "name": f"n{i}"} for i in range(10_000)]})
    headers = {"Content-Type": "application/json"}

    async def ours() -> float:
        async with session.post(f"{gateway}/tracking/task", data=body, headers=headers) as response:
            assert response.status == 200, await response.text()
            await response.read()
        return 0.0

    reference = await collection_like_tasks(db, "reference_tasks")
    next_id = [ids["next_free"] + 10_000_000]

    async def raw() -> object:
        first, next_id[0] = next_id[0], next_id[0] + 10_000
        now = datetime.now(UTC)
        docs = [
            {"_id": Int64(first + i), "status": "READY", "creation-timestamp": now, "update-timestamp": now,
             "job-id": "created", "name": f"n{i}", "root": True, "type": "task", "nexts": [], "previous": []}
            for i in range(10_000)
        ]  # fmt: skip
        return await reference.insert_many(docs)

    ours_cpu: list[float] = []
    raw_cpu: list[float] = []

    async def measured(action: Callable[[], Awaitable[object]], meter: Callable[[], float], cpu: list[float]) -> float:
        before = meter()
        seconds = await timed(action)
        cpu.append((meter() - before) * 1000 / 10)  # CPU ms per 1,000 tasks
        return seconds

    ours_rate = 10_000 / await median_of(lambda: measured(ours, cpu_meter.serving, ours_cpu))
    raw_rate = 10_000 / await median_of(lambda: measured(raw, cpu_meter.direct, raw_cpu))
    ours_ms, raw_ms = statistics.median(ours_cpu[1:]), statistics.median(raw_cpu[1:])  # [0]: the warm-up
    return [
        Row("POST /tracking/task, 10k tasks per body", ours_rate, raw_rate, "tasks/s", ours_rate / raw_rate, TARGET,
            "raw: insert_many, same indexes, w: majority"),
        Row("POST /tracking/task, CPU per 1,000 tasks", ours_ms, raw_ms, "CPU ms", ours_ms / raw_ms, REPORT,
            "gateway + mongod vs driver client + mongod"),
    ]  # fmt: skip


async def collection_like_tasks(db: Database, name: str) -> Any:
    """An empty collection with the indexes the gateway gave `tasks` (and the database's majority writes)."""
    await db.drop_collection(name)
    collection = db[name]
    async for index in await db.tasks.list_indexes():
        if index["name"] != "_id_":
            await collection.create_index(list(index["key"].items()), name=index["name"])
    return collection


async def measure(run: Run) -> list[Row]:
    return await create_rows(run.session, run.gateway, run.db, run.ids, run.cpu)
