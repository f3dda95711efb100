"""The benchmark's data: task documents written straight into `tasks` (the stored layout), and what `load`
puts there before the servers start."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from typing import Any

from bson.int64 import Int64
from pymongo import AsyncMongoClient
from pymongo.asynchronous.database import AsyncDatabase

DB = "bench"
BULK_TASKS = 100_000
FLEET_JOBS, FLEET_JOB_SIZE = 9_000, 100  # with the 100 bulk jobs: 1,000,000 tasks in about 10,000 jobs
BIG_JOB_TASKS = 100_000
JOB_TASKS, JOB_LEVELS = 10_000, 20
WALK_TASKS = 1_000
TOTAL_TASKS = BULK_TASKS + JOB_TASKS + WALK_TASKS + FLEET_JOBS * FLEET_JOB_SIZE + BIG_JOB_TASKS
STATUSES = ("READY", "RUNNING", "DONE", "FAILED")
Doc = dict[str, Any]
Database = AsyncDatabase[Doc]
Client = AsyncMongoClient[Doc]


def task_doc(task_id: int, job: str, now: datetime, **extra: object) -> Doc:
    return {
        "_id": Int64(task_id),
        "status": STATUSES[task_id % len(STATUSES)],
        "creation-timestamp": now,
        "update-timestamp": now,
        "job-id": job,
        "root": True,
        "name": f"task {task_id}",
        "description": "a benchmark task",
        "type": "task",
        "nexts": [],
        "previous": [],
        **extra,
    }


def linked_task_doc(task_id: int, job: str, now: datetime, nexts: list[int], previous: list[int]) -> Doc:
    """A task with these links (int64, as the gateway stores them); a root when it has no previous task."""
    return task_doc(
        task_id, job, now, root=not previous, nexts=[Int64(i) for i in nexts], previous=[Int64(i) for i in previous]
    )


def layered_job(first_id: int, count: int, levels: int, job: str, now: datetime) -> list[Doc]:
    """`levels` levels of equal width; each task links to two tasks of the next level."""
    width = count // levels
    docs = []
    for level in range(levels):
        for index in range(width):
            task_id = first_id + level * width + index
            nexts = (
                []
                if level == levels - 1
                else sorted(
                    {first_id + (level + 1) * width + index, first_id + (level + 1) * width + (index + 1) % width}
                )
            )
            previous = (
                []
                if level == 0
                else sorted(
                    {first_id + (level - 1) * width + index, first_id + (level - 1) * width + (index - 1) % width}
                )
            )
            docs.append(linked_task_doc(task_id, job, now, nexts, previous))
    return docs


def staged_job(first_id: int, count: int, levels: int, job: str, now: datetime) -> list[Doc]:
    """A job under way: `levels` levels of equal width, each task linking to one or two tasks of the next level
    (its own place, and every other task also a place half the level away, so stages mix). The levels before
    the middle are DONE; the middle one is where the work is: a tenth FAILED, four tenths RUNNING, the rest DONE;
    the later ones READY, so blocked wherever a previous task is not done. Each task is named "stage S task I"."""
    width = count // levels
    middle = levels // 2

    def task_id(level: int, index: int) -> int:
        return first_id + level * width + index

    def status(level: int, index: int) -> str:
        if level != middle:
            return "DONE" if level < middle else "READY"
        return "FAILED" if index % 10 == 0 else "RUNNING" if index % 10 < 5 else "DONE"

    nexts: dict[int, list[int]] = {}
    previous: dict[int, list[int]] = {task_id(level, index): [] for level in range(levels) for index in range(width)}
    for level in range(levels - 1):
        for index in range(width):
            targets = sorted({index, (index + width // 2) % width} if index % 2 else {index})
            nexts[task_id(level, index)] = [task_id(level + 1, target) for target in targets]
            for target in nexts[task_id(level, index)]:
                previous[target].append(task_id(level, index))
    docs = []
    for level in range(levels):
        for index in range(width):
            tid = task_id(level, index)
            doc = linked_task_doc(tid, job, now, nexts.get(tid, []), sorted(previous[tid]))
            docs.append({**doc, "status": status(level, index), "name": f"stage {level} task {index}"})
    return docs


TIMED_SPAN = timedelta(hours=25)


def timed_job(first_id: int, now: datetime) -> list[Doc]:
    """A job whose timeline ends now and starts TIMED_SPAN before (so it always crosses midnight): fetch (30 min)
    -> 300 builds (20 min each, 10 s apart; the last one still running, so its bar runs to now) -> release (3 h
    after the start) and "release notes", which never started. Relative to `now`: a running bar measured against
    the clock gives the same picture whatever the day."""
    start = now - TIMED_SPAN
    builds = range(first_id + 1, first_id + 301)
    release, notes = first_id + 301, first_id + 302
    fetch = linked_task_doc(first_id, "timed", now, list(builds), [])
    docs = [{**fetch, "name": "fetch", "status": "DONE", "start-time": start,
             "finish-time": start + timedelta(minutes=30)}]  # fmt: skip
    for number, task_id in enumerate(builds):
        began = start + timedelta(minutes=30, seconds=10 * number)
        doc = linked_task_doc(task_id, "timed", now, [release], [first_id])
        docs.append({**doc, "name": f"build {number}", "status": "DONE", "start-time": began,
                     "finish-time": began + timedelta(minutes=20)})  # fmt: skip
    docs[-1]["status"] = "RUNNING"
    del docs[-1]["finish-time"]
    released = {"start-time": start + timedelta(hours=3), "finish-time": start + timedelta(hours=3, minutes=5)}
    docs.append({**linked_task_doc(release, "timed", now, [], list(builds)), "name": "release", "status": "DONE",
                 **released})  # fmt: skip
    docs.append({**linked_task_doc(notes, "timed", now, [], []), "name": "release notes", "status": "READY"})
    return docs


def binary_tree(first_id: int, count: int, job: str, now: datetime) -> list[Doc]:
    docs = []
    for index in range(count):
        nexts = [first_id + child for child in (2 * index + 1, 2 * index + 2) if child < count]
        previous = [first_id + (index - 1) // 2] if index else []
        docs.append(linked_task_doc(first_id + index, job, now, nexts, previous))
    return docs


async def load(db: Database, fleet_jobs: int = FLEET_JOBS, big_job_tasks: int = BIG_JOB_TASKS) -> dict[str, int]:
    """Every workload's tasks (TOTAL_TASKS with the defaults; fewer fleet jobs or a smaller big job for a smaller
    database, as `python -m bench.versions` loads by default)."""
    await db.tasks.drop()
    now = datetime.now(UTC).replace(microsecond=0)
    for start in range(1, BULK_TASKS + 1, 10_000):
        await db.tasks.insert_many([task_doc(i, f"bulk-{i // 1000}", now) for i in range(start, start + 10_000)])
    job_first = BULK_TASKS + 1
    await db.tasks.insert_many(layered_job(job_first, JOB_TASKS, JOB_LEVELS, "job-10k", now))
    walk_first = job_first + JOB_TASKS
    await db.tasks.insert_many(binary_tree(walk_first, WALK_TASKS, "walk-1k", now))
    next_free = await load_fleet(db, walk_first + WALK_TASKS, now, fleet_jobs, big_job_tasks)
    return {"walk_root": walk_first, "next_free": next_free}


async def load_nothing(db: Database) -> dict[str, int]:
    """An empty `tasks` (python -m bench --without-data): the ids `load` would return, none of them stored."""
    await db.tasks.drop()
    return {"walk_root": 0, "next_free": 1}


async def load_fleet(
    db: Database, first_id: int, now: datetime, fleet_jobs: int = FLEET_JOBS, big_job_tasks: int = BIG_JOB_TASKS
) -> int:
    """`fleet_jobs` jobs of 100 tasks (each job last updated at its own time) and one job of `big_job_tasks`
    tasks (9,000 and 100,000 by default)."""
    rng = random.Random(7)
    batch: list[Doc] = []
    task_id = first_id
    for job in range(fleet_jobs):
        updated = now - timedelta(seconds=rng.randint(0, 30 * 86_400))
        for _ in range(FLEET_JOB_SIZE):
            batch.append(task_doc(task_id, f"fleet-{job:05d}", updated, **{"start-time": updated - timedelta(hours=1)}))
            task_id += 1
        if len(batch) >= 20_000:
            await db.tasks.insert_many(batch)
            batch = []
    for _ in range(big_job_tasks):
        batch.append(task_doc(task_id, "job-100k", now))
        task_id += 1
        if len(batch) >= 20_000:
            await db.tasks.insert_many(batch)
            batch = []
    if batch:
        await db.tasks.insert_many(batch)
    return task_id
