"""GraphQL that does bounded work: a whole 20,000-task job with every task's history (time, MongoDB reads, the
gateway's memory before, during and after, over repeats), a hostile query, thirty aliases of a whole job's
transitive walks and histories, refused by the cost budget (time to refusal), and a hostile history, thirty
aliases of `taskHistory` on a task of 5,000 changes, answered from one bounded page while a REST GET is sent
(time, entries read, the GET's time).

`python -m bench graphql_bounded` runs these rows alone (the workload seeds its own job: the million tasks are
not loaded), on a job of BENCH_BOUNDED_TASKS tasks (20,000 unless set: a loaded machine may take 2,000);
`python -m bench.workloads.graphql_bounded 200` runs them on a mongod and gateway of their own."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import aiohttp
import orjson
from bson.int64 import Int64
from pymongo import AsyncMongoClient

from bench.data import DB, Database
from bench.measure import REPORT, Bound, Row, Run, Target, median_of, timed
from bench.processes import TOKEN, rss_mb, rss_while, start, wait_until_up
from bench.profiler import count_task_reads
from bench.report import print_table
from gateway.embedded import EmbeddedMongo, free_port

JOB = "history-20k"
FIRST_ID = 3_000_000_000
"""Far above the ids the other workloads create."""
HISTORY_TARGET = Target((Bound("gateway", "<=", 3000, "ms"), Bound("reads", "<=", 3, "reads")))
REFUSAL_TARGET = Target((Bound("gateway", "<=", 50, "ms"),))
MEMORY_REPEATS = 20
"""Whole-job history answers in a row, the gateway's RSS read after each: what it keeps must stop growing."""
SETTLED = MEMORY_REPEATS // 2
"""The repeats after which RSS has stopped growing: CPython's allocator fills the arenas the first answers pinned
(graphql-bounded-history decision page, "Memory after large answers")."""
GROWTH_TARGET = Target((Bound("gateway", "<=", 5, "MB"),))
"""RSS after the last repeat over RSS after the first SETTLED: no answer's worth."""
SETTLE_S = 1.0
"""Waited after an answer before reading RSS: the response sent, the request's objects dropped."""
LONG_TASK = FIRST_ID - 1
"""The task of the hostile history: a task a tool changes without end."""
LONG_HISTORY = 5_000
HOSTILE_HISTORY_QUERY = (
    "{ " + " ".join(f'a{i}: taskHistory(id: "{LONG_TASK}") {{ cursor at kind status }}' for i in range(30)) + " }"
)
HOSTILE_HISTORY_TARGET = Target((Bound("gateway", "<=", 500, "ms"), Bound("reads", "<=", 2, "reads")))
"""One page of 51 entries, in at most two reads (the find that stops, the lookup of the newest)."""
SIZE_VARIABLE = "BENCH_BOUNDED_TASKS"
HISTORY_QUERY = f'{{ job(id: "{JOB}") {{ tasks {{ id history {{ at kind }} }} }} }}'
HOSTILE_ALIAS = "tasks { id etag blockedBy(transitive: true) { id } history { at kind } }"
HOSTILE_QUERY = f'{{ job(id: "{JOB}") {{ ' + " ".join(f"a{index}: {HOSTILE_ALIAS}" for index in range(30)) + " } }"


def job_size() -> int:
    """The whole job's task count: BENCH_BOUNDED_TASKS, 20,000 when not set."""
    return int(os.environ.get(SIZE_VARIABLE, "20000"))


async def seed(db: Database, size: int) -> None:
    """A job of `size` linked tasks, each with two recorded changes (as the history writer stores them), and a
    task of LONG_HISTORY changes."""
    now = datetime.now(UTC)
    await db.tasks.insert_one(
        {"_id": Int64(LONG_TASK), "job-id": "long-history", "status": "RUNNING", "nexts": [], "previous": []}
    )
    await db.task_history.insert_many(
        {
            "_id": f"bench-long-{change:06d}",
            "task": Int64(LONG_TASK),
            "job": "long-history",
            "kind": "UPDATED",
            "fields": ["status"],
            "status": f"S{change}",
            "at": now + timedelta(milliseconds=change),
        }
        for change in range(LONG_HISTORY)
    )
    ids = range(FIRST_ID, FIRST_ID + size)
    await db.tasks.insert_many(
        {
            "_id": Int64(i),
            "job-id": JOB,
            "status": ("READY", "RUNNING", "DONE")[i % 3],
            "name": f"step {i}",
            "root": i == FIRST_ID,
            "nexts": [Int64(n) for n in (i + 1, i + 7) if n in ids],
            "previous": [Int64(p) for p in (i - 1, i - 7) if p in ids],
        }
        for i in ids
    )
    await db.task_history.insert_many(
        {
            "_id": f"bench-{i}-{change}",
            "task": Int64(i),
            "job": JOB,
            "kind": ("CREATED", "UPDATED")[change],
            "fields": [] if change == 0 else ["status"],
            "at": now + timedelta(milliseconds=change),
        }
        for i in ids
        for change in (0, 1)
    )


async def _post(session: aiohttp.ClientSession, gateway: str, query: str) -> dict[str, object]:
    async with session.post(f"{gateway}/graphql", json={"query": query}) as response:
        answer = orjson.loads(await response.read())
    assert isinstance(answer, dict)
    return answer


async def history_rows(session: aiohttp.ClientSession, gateway: str, db: Database, pid: int, size: int) -> list[Row]:
    async def whole_job() -> object:
        answer = await _post(session, gateway, HISTORY_QUERY)
        data = answer.get("data")
        assert isinstance(data, dict) and len(data["job"]["tasks"]) == size, answer.get("errors")
        return answer

    async def hostile() -> object:
        answer = await _post(session, gateway, HOSTILE_QUERY)
        assert "data" not in answer and "COST_LIMIT_EXCEEDED" in str(answer["errors"]), answer
        return answer

    before = rss_mb(pid)
    answer_s = await median_of(lambda: timed(whole_job), rounds=3)
    reads = await count_task_reads(db, whole_job, ("tasks", "task_history"))
    during, after = [], []
    for _ in range(MEMORY_REPEATS):
        peak, _answer = await rss_while(pid, whole_job())
        during.append(peak)
        await asyncio.sleep(SETTLE_S)
        after.append(rss_mb(pid))
    refusal_s = await median_of(lambda: timed(hostile))
    history_row = await hostile_history_row(session, gateway, db)
    repeats = ", ".join(f"{value:.0f}" for value in after)
    return [
        Row(
            f"GraphQL {size}-task job, every task's history (time)",
            answer_s * 1000,
            float("nan"),
            "ms",
            float("nan"),
            HISTORY_TARGET,
            f"{reads} MongoDB reads",
            reads=reads,
        ),
        Row(
            f"gateway RSS after the {size}-task history answers",
            after[-1],
            before,
            "MB",
            after[-1] / before,
            REPORT,
            f"reference: RSS before them; peak while answering {max(during):.0f} MB; after each of "
            f"{MEMORY_REPEATS} answers in a row: {repeats} MB",
        ),
        Row(
            f"gateway RSS growth over the last {MEMORY_REPEATS - SETTLED} of {MEMORY_REPEATS} {size}-task history "
            "answers",
            after[-1] - after[SETTLED - 1],
            after[SETTLED - 1],
            "MB",
            after[-1] / after[SETTLED - 1],
            GROWTH_TARGET,
            f"RSS after the last answer minus after answer {SETTLED} (reference: after answer {SETTLED}); the first "
            f"answers grow it to where it stays",
        ),
        Row(
            "GraphQL 30 aliases of a whole job's walks (refusal)",
            refusal_s * 1000,
            float("nan"),
            "ms",
            float("nan"),
            REFUSAL_TARGET,
            "COST_LIMIT_EXCEEDED",
        ),
        history_row,
    ]


async def hostile_history_row(session: aiohttp.ClientSession, gateway: str, db: Database) -> Row:
    """Thirty aliases of taskHistory on a task of LONG_HISTORY changes: time, reads of the history, and a REST
    GET sent with it."""

    async def hostile() -> object:
        answer = await _post(session, gateway, HOSTILE_HISTORY_QUERY)
        data = answer.get("data")
        assert isinstance(data, dict) and all(len(changes) == 50 for changes in data.values()), answer.get("errors")
        return answer

    async def with_rest() -> float:
        async def rest() -> float:
            started = time.perf_counter()
            async with session.get(f"{gateway}/tracking/task/{LONG_TASK}") as response:
                await response.read()
                assert response.status == 200, response.status
            return time.perf_counter() - started

        return (await asyncio.gather(hostile(), rest()))[1]

    answer_s = await median_of(lambda: timed(hostile))
    rest_s = await median_of(with_rest)
    reads = await count_task_reads(db, hostile, ("task_history",))
    return Row(
        f"GraphQL 30 aliases of taskHistory, a task of {LONG_HISTORY} changes",
        answer_s * 1000,
        float("nan"),
        "ms",
        float("nan"),
        HOSTILE_HISTORY_TARGET,
        f"{reads} reads of task_history; a REST GET sent with it: {rest_s * 1000:.0f} ms",
        reads=reads,
    )


async def measure(run: Run, size: int | None = None) -> list[Row]:
    size = size if size is not None else job_size()
    await seed(run.db, size)
    return await history_rows(run.session, run.gateway, run.db, run.cpu.gateways[0], size)


async def small_scale(size: int) -> None:
    """These rows alone, on a job of `size` tasks, with a mongod and a gateway of their own."""
    with tempfile.TemporaryDirectory(prefix="tracking-bench-bounded-") as workdir:
        mongo = EmbeddedMongo(Path(workdir), cache_size_gb=0.25)
        uri = await mongo.start()
        client: AsyncMongoClient[dict[str, object]] = AsyncMongoClient(uri, tz_aware=True)
        port = free_port()
        gateway = start("gateway", port, uri, Path(workdir) / "gw")
        try:
            url = f"http://127.0.0.1:{port}"
            await wait_until_up(f"{url}/readyz", gateway)
            await seed(client[DB], size)
            async with aiohttp.ClientSession(headers={"X-Auth-Token": TOKEN}) as session:
                print_table(await history_rows(session, url, client[DB], gateway.pid, size))
        finally:
            gateway.send_signal(signal.SIGTERM)
            gateway.wait(30)
            await client.close()
            await mongo.stop()


if __name__ == "__main__":
    asyncio.run(small_scale(int(sys.argv[1]) if len(sys.argv) > 1 else 200))
