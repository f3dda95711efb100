"""A GraphQL query for a whole 10,000-task job of 20 levels (tasks, edges, status counts), against one find with
the same projection, its edges and counts built and encoded by hand with orjson; and how many MongoDB reads it
takes."""

from __future__ import annotations

from collections import Counter

import aiohttp
import orjson

from bench.data import JOB_LEVELS, JOB_TASKS, Database
from bench.measure import Bound, Row, Run, Target, median_of, timed
from bench.profiler import count_task_reads

TARGET = Target((Bound("ratio", "<=", 1.5), Bound("reads", "<=", JOB_LEVELS + 3, "reads")))


JOB_QUERY = '{ job(id: "job-10k") { tasks { id status name } edges { from to } statusCounts { status count } } }'


async def job_query(session: aiohttp.ClientSession, gateway: str) -> object:
    """One GraphQL query of the whole 10,000-task job (JOB_QUERY); its answer."""
    async with session.post(f"{gateway}/graphql", json={"query": JOB_QUERY}) as response:
        body = orjson.loads(await response.read())
    assert len(body["data"]["job"]["tasks"]) == JOB_TASKS, body.get("errors")
    return body


async def graphql_job_row(session: aiohttp.ClientSession, gateway: str, db: Database) -> Row:
    async def ours() -> object:
        return await job_query(session, gateway)

    async def raw() -> object:
        projection = {"status": 1, "name": 1, "nexts": 1}
        docs = await db.tasks.find({"job-id": "job-10k"}, projection).sort("_id").to_list(None)
        members = {doc["_id"] for doc in docs}
        counts = Counter(doc.get("status") for doc in docs)
        return orjson.dumps(
            {
                "tasks": [
                    {"id": str(doc["_id"]), "status": doc.get("status"), "name": doc.get("name")} for doc in docs
                ],
                "edges": [
                    {"from": str(doc["_id"]), "to": str(n)} for doc in docs for n in doc["nexts"] if n in members
                ],
                "statusCounts": [{"status": s, "count": c} for s, c in counts.items()],
            }
        )

    gateway_s = await median_of(lambda: timed(ours))
    raw_s = await median_of(lambda: timed(raw))
    trips = await count_task_reads(db, ours)
    ratio = gateway_s / raw_s
    return Row(
        "GraphQL 10k-task job, 20 levels, edges+counts (time)",
        gateway_s * 1000,
        raw_s * 1000,
        "ms",
        ratio,
        TARGET,
        f"{trips} MongoDB reads",
        reads=trips,
    )


async def measure(run: Run) -> list[Row]:
    return [await graphql_job_row(run.session, run.gateway, run.db)]
