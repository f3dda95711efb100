"""POST /tracking/task with 10,000 tasks in one body, against insert_many into a collection with the same
indexes."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import aiohttp
import orjson
from bson.int64 import Int64

from bench.data import Database
from bench.measure import Row, Run, at_least, median_of, timed

TARGET = at_least(0.5)


async def create_row(session: aiohttp.ClientSession, gateway: str, db: Database, ids: dict[str, int]) -> Row:
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

    ours_rate = 10_000 / await median_of(lambda: timed(ours))
    raw_rate = 10_000 / await median_of(lambda: timed(raw))
    ratio = ours_rate / raw_rate
    return Row(
        "POST /tracking/task, 10k tasks per body", ours_rate, raw_rate, "tasks/s", ratio, TARGET,
        "raw: insert_many, same indexes, w: majority",
    )  # fmt: skip


async def collection_like_tasks(db: Database, name: str) -> Any:
    """An empty collection with the indexes the gateway gave `tasks` (and the database's majority writes)."""
    await db.drop_collection(name)
    collection = db[name]
    async for index in await db.tasks.list_indexes():
        if index["name"] != "_id_":
            await collection.create_index(list(index["key"].items()), name=index["name"])
    return collection


async def measure(run: Run) -> list[Row]:
    return [await create_row(run.session, run.gateway, run.db, run.ids)]
