"""GET /{jobId}/task/roots of a 10,000-task job, against the same find encoded by hand."""

from __future__ import annotations

import aiohttp
import orjson

from bench.data import JOB_TASKS, Database
from bench.measure import Row, Run, api_json, at_most, median_of, timed

TARGET = at_most(2)


async def job_roots(session: aiohttp.ClientSession, gateway: str) -> None:
    """One GET of the 10,000-task job's roots (every task of the layered job's first level and below)."""
    async with session.get(f"{gateway}/tracking/job-10k/task/roots") as response:
        body = await response.read()
    assert response.status == 200, f"GET roots: {response.status}"
    assert len(orjson.loads(body)["tasks"]) == JOB_TASKS


async def roots_row(session: aiohttp.ClientSession, gateway: str, db: Database) -> Row:
    async def raw() -> object:
        docs = await db.tasks.find({"job-id": "job-10k"}).sort("_id").to_list(None)
        return orjson.dumps({"tasks": [api_json(doc) for doc in docs]})

    gateway_s = await median_of(lambda: timed(lambda: job_roots(session, gateway)))
    raw_s = await median_of(lambda: timed(raw))
    ratio = gateway_s / raw_s
    return Row("GET /{jobId}/task/roots, 10k tasks (time)", gateway_s * 1000, raw_s * 1000, "ms", ratio, TARGET)


async def measure(run: Run) -> list[Row]:
    return [await roots_row(run.session, run.gateway, run.db)]
