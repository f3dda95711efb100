"""POST /tracking/task with 10,000 tasks in one body and an Idempotency-Key, against insert_many into a collection
with the same validator and indexes, in alternate rounds (bench.measure.medians_alternating), one request at a
time on both sides; the ratio is the median of the rounds' paired ratios (each POST against the insert_many
right after it), the note gives their range.

A round's time is the POST, from sending it to its answer. Its CPU (gateway processes and mongod) runs from
sending it until the task history has recorded all 10,000 creations (models/history_writer.py writes them after the
answer, from the change stream): the next round starts only then, so one round's history neither slows the next
POST nor is billed to it, and every round's CPU holds the whole of its own history."""

from __future__ import annotations

import asyncio
import itertools
import statistics
import time
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

import aiohttp
import orjson
from bson.int64 import Int64

from bench.data import Database
from bench.measure import REPORT, CpuMeter, Row, Run, at_least, medians_alternating, timed

TARGET = at_least(0.6)
TASKS = 10_000
ROUNDS = 9
"""Rounds of each side (after a warm-up round of each), alternating: a round's time moves by a fifth or more with
what mongod is doing meanwhile (a checkpoint, journal flushes), and both sides are cheap (under 2 s a round with
the history)."""
HISTORY_WAIT_S = 120.0
"""How long a round waits for the history to record its tasks before the benchmark fails."""
_POLL_S = 0.02


def create_body() -> bytes:
    """The JSON body of one bulk create: TASKS new tasks of job "created"."""
    return orjson.dumps({"tasks": [{"job-id": "created", "status": "READY", "name": f"n{i}"} for i in range(TASKS)]})


async def post_tasks(
    session: aiohttp.ClientSession, gateway: str, body: bytes, idempotency_key: str | None = None
) -> list[int]:
    """One POST /tracking/task of `body` (with `idempotency_key` when given); the created tasks' ids."""
    headers = {"Content-Type": "application/json"}
    if idempotency_key is not None:
        headers["Idempotency-Key"] = idempotency_key
    async with session.post(f"{gateway}/tracking/task", data=body, headers=headers) as response:
        assert response.status == 200, await response.text()
        answer = orjson.loads(await response.read())
    return [task["id"] for task in answer["tasks"]]


async def create_rows(
    session: aiohttp.ClientSession, gateway: str, db: Database, ids: dict[str, int], cpu_meter: CpuMeter
) -> list[Row]:
    body = create_body()
    recorded_after: list[float] = []
    rounds = itertools.count()

    async def post() -> list[int]:
        # Each round a create of its own, sent as a careful client sends it: with a fresh idempotency key, whose
        # record the gateway writes in the create's transaction.
        return await post_tasks(session, gateway, body, f'"bench-create-{uuid.uuid4()}-{next(rounds)}"')

    async def ours() -> float:
        """One round: the POST's seconds; returns once the history holds every task it created."""
        started = time.perf_counter()
        created = await post()
        seconds = time.perf_counter() - started
        await history_recorded(db, created)
        recorded_after.append(time.perf_counter() - started - seconds)
        return seconds

    reference = await collection_like_tasks(db, "reference_tasks")
    next_id = [ids["next_free"] + 10_000_000]

    async def raw() -> float:
        first, next_id[0] = next_id[0], next_id[0] + TASKS
        now = datetime.now(UTC)
        docs = [
            {"_id": Int64(first + i), "status": "READY", "creation-timestamp": now, "update-timestamp": now,
             "job-id": "created", "name": f"n{i}", "root": True, "type": "task", "nexts": [], "previous": []}
            for i in range(TASKS)
        ]  # fmt: skip
        return await timed(lambda: reference.insert_many(docs))

    ours_cpu: list[float] = []
    raw_cpu: list[float] = []
    ours_times: list[float] = []
    raw_times: list[float] = []

    async def measured(
        action: Callable[[], Awaitable[float]], meter: Callable[[], float], cpu: list[float], times: list[float]
    ) -> float:
        await checkpointed(db)
        before = meter()
        seconds = await action()
        cpu.append((meter() - before) * 1000 / (TASKS / 1000))  # CPU ms per 1,000 tasks
        times.append(seconds)
        return seconds

    ours_s, raw_s = await medians_alternating(
        lambda: measured(ours, cpu_meter.serving, ours_cpu, ours_times),
        lambda: measured(raw, cpu_meter.direct, raw_cpu, raw_times),
        ROUNDS,
    )
    ours_rate, raw_rate = TASKS / ours_s, TASKS / raw_s
    # Judged by the median of each round's ratio to the raw round right after it (the same stretch of mongod's
    # state), rather than by the ratio of two medians that may come from different rounds.
    ratios = sorted(raw_s / our_s for our_s, raw_s in zip(ours_times[1:], raw_times[1:], strict=True))
    ours_ms, raw_ms = statistics.median(ours_cpu[1:]), statistics.median(raw_cpu[1:])  # [0]: the warm-up
    history_s = statistics.median(recorded_after[1:])
    return [
        Row("POST /tracking/task, 10k tasks per body", ours_rate, raw_rate, "tasks/s", statistics.median(ratios),
            TARGET, f"raw: insert_many, same validator and indexes, w: majority; POST to answer; ratio: median of "
            f"{len(ratios)} paired rounds ({ratios[0]:.2f}-{ratios[-1]:.2f})"),
        Row("POST /tracking/task, CPU per 1,000 tasks", ours_ms, raw_ms, "CPU ms", ours_ms / raw_ms, REPORT,
            "gateway + mongod (POST and its task history) vs driver client + mongod"),
        Row("POST /tracking/task, history recorded after the answer", history_s * 1000, 0, "ms", 0, REPORT,
            "task_history holds all 10k creations"),
    ]  # fmt: skip


async def history_recorded(db: Database, created: list[int]) -> None:
    """Once `task_history` holds an entry for each task in `created` (ids of one create: a range): the entry of
    the highest id first (one cheap read per poll), then the count over the range."""
    first, last = min(created), max(created)
    deadline = time.monotonic() + HISTORY_WAIT_S
    while time.monotonic() < deadline:
        if await db.task_history.find_one({"task": Int64(last)}, {"_id": 1}) is not None:
            count = await db.task_history.count_documents({"task": {"$gte": Int64(first), "$lte": Int64(last)}})
            if count >= len(created):
                return
        await asyncio.sleep(_POLL_S)
    raise SystemExit(f"the task history did not record tasks {first}..{last} within {HISTORY_WAIT_S:g}s")


async def checkpointed(db: Database) -> None:
    """Once mongod has written everything before to disk (the `fsync` command: a checkpoint), so that each round
    starts from the same state rather than inheriting the last one's dirty pages: a checkpoint falling inside a
    round cost it a fifth or more, and which side's rounds it fell in decided the ratio."""
    await db.client.admin.command("fsync")


VALIDATION_OPTIONS = ("validator", "validationLevel", "validationAction")


async def collection_like_tasks(db: Database, name: str) -> Any:
    """An empty collection with the validator and indexes the gateway gave `tasks` (and the database's majority
    writes): every insert into `tasks` passes its `$jsonSchema`, so the reference's inserts pass it too (without it
    mongod does about a fifth less work per insert; bench/README.md, "Bulk create and its task history")."""
    await db.drop_collection(name)
    listed = await db.command("listCollections", filter={"name": "tasks"})
    options = listed["cursor"]["firstBatch"][0]["options"]
    await db.create_collection(name, **{key: options[key] for key in VALIDATION_OPTIONS if key in options})
    collection = db[name]
    async for index in await db.tasks.list_indexes():
        if index["name"] != "_id_":
            await collection.create_index(list(index["key"].items()), name=index["name"])
    return collection


async def measure(run: Run) -> list[Row]:
    return await create_rows(run.session, run.gateway, run.db, run.ids, run.cpu)
