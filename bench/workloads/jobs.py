"""The GraphQL jobs listing with summaries in a database of over a million tasks, against the same two
aggregations through the driver."""

from __future__ import annotations

import aiohttp
import orjson

from bench.data import Database
from bench.measure import Bound, Row, Run, Target, median_of, timed
from models import JobFilter
from models.jobs import JOBS_INDEX, jobs_pipeline, summaries_pipeline

TARGET = Target((Bound("gateway", "<", 1000, "ms"),), remark="ratio report")


JOBS_QUERY = """{ jobs(first: 20, filter: {idPrefix: "fleet-"}) {
  edges { cursor node { id taskCount statusCounts { status count }
    summary { lastUpdate durationMs doneCount progress } } }
  pageInfo { hasNextPage endCursor } } }"""


async def jobs_page(session: aiohttp.ClientSession, gateway: str) -> object:
    """The first page of the fleet jobs with their summaries (JOBS_QUERY); its answer."""
    async with session.post(f"{gateway}/graphql", json={"query": JOBS_QUERY}) as response:
        body = orjson.loads(await response.read())
    assert len(body["data"]["jobs"]["edges"]) == 20, body.get("errors")
    return body


async def jobs_row(session: aiohttp.ClientSession, gateway: str, db: Database) -> Row:
    """The first page of the 9,000 fleet jobs (100 tasks each) with summaries, in a database of over a million
    tasks, against the same two aggregations run through the driver and encoded. (The newest jobs overall are
    the bench's own huge ones, whose summaries read 100,000 tasks: see bigjob.)"""

    async def ours() -> object:
        return await jobs_page(session, gateway)

    async def raw() -> object:
        pipeline = jobs_pipeline(20, None, JobFilter(id_prefix="fleet-"), None)
        page = await (await db.tasks.aggregate(pipeline, hint=JOBS_INDEX)).to_list(None)
        ids = [row["_id"] for row in page[:20]]
        rows = await (await db.tasks.aggregate(summaries_pipeline(ids))).to_list(None)
        return orjson.dumps({"jobs": page, "summaries": rows}, default=str)

    gateway_s = await median_of(lambda: timed(ours))
    raw_s = await median_of(lambda: timed(raw))
    tasks = await db.tasks.estimated_document_count()
    return Row(
        f"GraphQL jobs(first: 20) + summaries, {tasks // 1000}k tasks (time)",
        gateway_s * 1000,
        raw_s * 1000,
        "ms",
        gateway_s / raw_s,
        TARGET,
        "raw: same aggregations, driver",
    )


async def measure(run: Run) -> list[Row]:
    return [await jobs_row(run.session, run.gateway, run.db)]
