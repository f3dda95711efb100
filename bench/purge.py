"""The purge under load: throughput (tasks/s), CPU per task (the purging process and mongod), and the p99 latency
of `GET /tracking/task/{id}` on tasks that stay, idle and while the purge runs.

`python -m bench.purge [TASKS]` (default 20,000) starts its own embedded MongoDB and a gateway process, loads
TASKS tasks in jobs of 100 (each a chain; every tenth job also linked to a task that stays, so the purge
unlinks across jobs) last updated in 2020, plus 1,000 tasks that stay, then purges with the gateway's own
code (`GraphStore.lifecycle().purge`) in this process. `purge_rows` is the workload for `python -m bench`.
"""

from __future__ import annotations

import asyncio
import itertools
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
from bson.int64 import Int64
from pymongo import AsyncMongoClient

from gateway.embedded import EmbeddedMongo
from models import GraphStore

DB = "bench_purge"
TOKEN = "bench-token"
JOB_SIZE = 100
LIVE_TASKS = 1_000
OLD = datetime(2020, 1, 1, tzinfo=UTC)
GET_CONCURRENCY = 8
Doc = dict[str, Any]


async def load(db: Any, tasks: int) -> list[int]:
    """`tasks` old tasks in chained jobs and LIVE_TASKS fresh ones (ids returned: the tasks that stay)."""
    now = datetime.now(UTC)
    live = list(range(1, LIVE_TASKS + 1))
    docs: list[Doc] = [_doc(i, "live", now) for i in live]
    first = LIVE_TASKS + 1
    for job_start in range(first, first + tasks, JOB_SIZE):
        ids = list(range(job_start, min(job_start + JOB_SIZE, first + tasks)))
        job = [_doc(i, f"old-{job_start}", OLD) for i in ids]
        for a, b in itertools.pairwise(job):
            a["nexts"].append(b["_id"])
            b["previous"].append(a["_id"])
        if (job_start // JOB_SIZE) % 10 == 0:  # a link from a task that stays into this job
            anchor = docs[(job_start // JOB_SIZE) % LIVE_TASKS]
            anchor["nexts"].append(job[0]["_id"])
            job[0]["previous"].append(anchor["_id"])
        docs.extend(job)
    for start in range(0, len(docs), 10_000):
        await db.tasks.insert_many(docs[start : start + 10_000], ordered=False)
    await db.counters.update_one({"_id": "tasks"}, {"$set": {"seq": Int64(first + tasks)}}, upsert=True)
    return live


def _doc(task_id: int, job: str, at: datetime) -> Doc:
    return {
        "_id": Int64(task_id),
        "status": "DONE",
        "creation-timestamp": at,
        "update-timestamp": at,
        "job-id": job,
        "root": True,
        "name": f"task {task_id}",
        "type": "task",
        "nexts": [],
        "previous": [],
    }


async def get_latencies(
    client: httpx.AsyncClient, ids: list[int], stop: asyncio.Event | None, count: int
) -> list[float]:
    """GET latencies (ms) of tasks that stay: `count` requests, or until `stop` is set (at least `count`)."""
    latencies: list[float] = []
    position = iter(range(10**9))

    async def loop() -> None:
        for number in position:
            if (stop is None or stop.is_set()) and number >= count:
                return
            started = time.perf_counter()
            response = await client.get(f"/tracking/task/{ids[number % len(ids)]}")
            latencies.append((time.perf_counter() - started) * 1000)
            assert response.status_code == 200, response.text

    await asyncio.gather(*(loop() for _ in range(GET_CONCURRENCY)))
    return latencies


def p99(values: list[float]) -> float:
    return statistics.quantiles(values, n=100)[98] if len(values) >= 2 else float("nan")


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far (/proc/<pid>/stat, clock ticks)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def purge_rows(
    uri: str, db_name: str, gateway_url: str, live: list[int], tasks: int, mongod_pid: int | None
) -> list[Doc]:
    """Purge every old task (loaded by `load`) while GETs run; rows shaped like bench.__main__.Row."""
    async with httpx.AsyncClient(base_url=gateway_url, headers={"X-Auth-Token": TOKEN}, timeout=30) as client:
        await get_latencies(client, live, None, 500)  # warm-up
        idle = await get_latencies(client, live, None, 3000)
        store = await GraphStore.open(uri, db_name)
        try:
            stop = asyncio.Event()
            busy = asyncio.create_task(get_latencies(client, live, stop, 500))
            cpu_before, mongod_before = time.process_time(), cpu_seconds(mongod_pid) if mongod_pid else 0.0
            started = time.perf_counter()
            report = await store.lifecycle().purge(30)
            elapsed = time.perf_counter() - started
            cpu = time.process_time() - cpu_before
            mongod_cpu = cpu_seconds(mongod_pid) - mongod_before if mongod_pid else float("nan")
            stop.set()
            during = await busy
        finally:
            await store.close()
    assert report.task_count == tasks, (report.task_count, tasks)
    idle_p99, busy_p99 = p99(idle), p99(during)
    per_task_us = 1e6 * cpu / tasks
    mongod_us = 1e6 * mongod_cpu / tasks
    return [
        _row("purge throughput", tasks / elapsed, float("nan"), "tasks/s", f"{tasks} tasks in {elapsed:.1f}s"),
        _row("purge CPU per task (purging process)", per_task_us, float("nan"), "µs", f"mongod: {mongod_us:.0f} µs"),
        _row("GET p99 during purge vs idle", busy_p99, idle_p99, "ms", f"{len(during)} GETs during, {len(idle)} idle"),
    ]


def _row(workload: str, value: float, reference: float, unit: str, note: str) -> Doc:
    ratio = value / reference if reference == reference and reference else float("nan")
    return {
        "workload": workload,
        "gateway": value,
        "reference": reference,
        "unit": unit,
        "ratio": ratio,
        "target": "",
        "met": None,
        "note": note,
    }


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def main(tasks: int) -> None:
    with tempfile.TemporaryDirectory(prefix="tracking-bench-purge-") as workdir:
        mongo = EmbeddedMongo(Path(workdir), cache_size_gb=0.5)
        uri = await mongo.start()
        client: AsyncMongoClient[Doc] = AsyncMongoClient(uri, w="majority", tz_aware=True)
        port = _free_port()
        env = {
            **os.environ,
            "TRACKING_MONGODB_URI": uri,
            "TRACKING_MONGODB_DB": DB,
            "TRACKING_PORT": str(port),
            "TRACKING_API_TOKENS": TOKEN,
            "TRACKING_DATA_DIR": str(Path(workdir) / "gw"),
            "TRACKING_LOG_LEVEL": "warning",
        }
        gateway = subprocess.Popen([sys.executable, "-m", "gateway"], env=env, stdout=subprocess.DEVNULL)  # noqa: ASYNC220
        try:
            live = await load(client[DB], tasks)
            url = f"http://127.0.0.1:{port}"
            async with httpx.AsyncClient() as probe:
                for _ in range(600):
                    try:
                        if (await probe.get(f"{url}/readyz")).status_code == 200:
                            break
                    except httpx.HTTPError:
                        pass
                    await asyncio.sleep(0.1)
            pid_file = Path(workdir) / "mongo" / "mongod.pid"
            mongod_pid = int(pid_file.read_text().strip()) if pid_file.exists() else None
            rows = await purge_rows(uri, DB, url, live, tasks, mongod_pid)
        finally:
            gateway.send_signal(signal.SIGTERM)
            gateway.wait(30)
            await client.close()
            await mongo.stop()
    for row in rows:
        reference = f" (idle {row['reference']:.1f})" if row["reference"] == row["reference"] else ""
        print(f"{row['workload']:<40} {row['gateway']:>10.1f} {row['unit']}{reference}  {row['note']}")


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1]) if sys.argv[1:] else 20_000))
