"""A GraphQL query for a 100,000-task job: its counts and the first page of its tasks."""

from __future__ import annotations

import aiohttp
import orjson

from bench.data import BIG_JOB_TASKS, Database
from bench.measure import Row, Run, Target, api_json, median_of, timed
from models.jobs import summaries_pipeline

BIG_JOB_QUERY = """{ job(id: "job-100k") { taskCount statusCounts { status count }
  taskPage(first: 100) { edges { node { id status } } pageInfo { endCursor } } } }"""


async def big_job_row(session: aiohttp.ClientSession, gateway: str, db: Database) -> Row:
    async def ours() -> object:
        async with session.post(f"{gateway}/graphql", json={"query": BIG_JOB_QUERY}) as response:
            body = orjson.loads(await response.read())
        assert body["data"]["job"]["taskCount"] == BIG_JOB_TASKS, body.get("errors")
        return body

    async def raw() -> object:
        counts = await (await db.tasks.aggregate(summaries_pipeline(["job-100k"]))).to_list(None)
        page = await db.tasks.find({"job-id": "job-100k"}, sort=[("_id", 1)], limit=101).to_list(None)
        return orjson.dumps({"counts": counts, "page": [api_json(doc) for doc in page]}, default=str)

    gateway_s = await median_of(lambda: timed(ours))
    raw_s = await median_of(lambda: timed(raw))
    ratio = gateway_s / raw_s
    return Row(
        "GraphQL 100k-task job: counts + taskPage(100) (time)",
        gateway_s * 1000,
        raw_s * 1000,
        "ms",
        ratio,
        Target(remark="ratio report"),
        "raw: same aggregation + find, driver",
    )


async def measure(run: Run) -> list[Row]:
    return [await big_job_row(run.session, run.gateway, run.db)]
