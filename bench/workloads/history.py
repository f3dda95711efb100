"""How fast the history writer records a 10,000-task create, against insert_many of as many entries."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime

import aiohttp
import orjson
from bson.int64 import Int64

from bench.data import Database
from bench.measure import REPORT, Row, Run


async def history_row(session: aiohttp.ClientSession, gateway: str, db: Database) -> Row:
    """How fast the gateway's history writer records a 10,000-task create, against insert_many of the same
    number of entries."""
    before = await db.task_history.estimated_document_count()
    body = orjson.dumps({"tasks": [{"job-id": "history", "status": "READY"} for _ in range(10_000)]})
    started = time.perf_counter()
    async with session.post(f"{gateway}/tracking/task", data=body, headers={"Content-Type": "application/json"}) as r:
        assert r.status == 200
    while await db.task_history.count_documents({"job": "history"}) < 10_000:  # noqa: ASYNC110 - polls MongoDB
        await asyncio.sleep(0.05)
    ours = 10_000 / (time.perf_counter() - started)
    entries = [{"_id": f"raw-{before}-{i}", "task": Int64(i), "job": "raw", "kind": "CREATED", "fields": [],
                "at": datetime.now(UTC)} for i in range(10_000)]  # fmt: skip
    started = time.perf_counter()
    await db.raw_history.insert_many(entries)
    raw = 10_000 / (time.perf_counter() - started)
    return Row(
        "history entries written under a 10k-task create",
        ours,
        raw,
        "entries/s",
        ours / raw,
        REPORT,
        "from the POST to the last entry; raw: insert_many",
    )


async def measure(run: Run) -> list[Row]:
    return [await history_row(run.session, run.gateway, run.db)]
