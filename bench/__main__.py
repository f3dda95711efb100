"""`make bench` (or `python -m bench get walk …` for some workloads): start a real MongoDB (the embedded
one) and the gateway as a real server process, load data,
and measure each workload against references taken in the same run. Prints one table and writes
bench/results.json. Figures are medians over rounds, after a warm-up; ratios are what the targets speak of."""

from __future__ import annotations

import asyncio
import json
import os
import platform
import random
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
import orjson
from bson.int64 import Int64
from pymongo import AsyncMongoClient
from pymongo.asynchronous.client_session import AsyncClientSession
from pymongo.asynchronous.database import AsyncDatabase

from gateway.embedded import EmbeddedMongo
from models import JobFilter
from models.jobs import JOBS_INDEX, jobs_pipeline, summaries_pipeline

DB = "bench"
TOKEN = "bench-token"
CONCURRENCY = 32
ROUNDS = 5
BULK_TASKS = 100_000
FLEET_JOBS, FLEET_JOB_SIZE = 9_000, 100  # with the 100 bulk jobs: 1,000,000 tasks in about 10,000 jobs
BIG_JOB_TASKS = 100_000
JOB_TASKS, JOB_LEVELS = 10_000, 20
WALK_TASKS = 1_000
HERE = Path(__file__).parent
STATUSES = ("READY", "RUNNING", "DONE", "FAILED")
Doc = dict[str, Any]
Database = AsyncDatabase[Doc]
Client = AsyncMongoClient[Doc]


@dataclass
class Row:
    workload: str
    gateway: float
    reference: float
    unit: str
    ratio: float
    target: str
    met: bool | None
    note: str = ""


# ---- data ----------------------------------------------------------------------------------------------------------


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
            docs.append(
                task_doc(
                    task_id,
                    job,
                    now,
                    root=level == 0,
                    nexts=[Int64(i) for i in nexts],
                    previous=[Int64(i) for i in previous],
                )
            )
    return docs


def binary_tree(first_id: int, count: int, job: str, now: datetime) -> list[Doc]:
    docs = []
    for index in range(count):
        nexts = [first_id + child for child in (2 * index + 1, 2 * index + 2) if child < count]
        previous = [first_id + (index - 1) // 2] if index else []
        docs.append(
            task_doc(
                first_id + index,
                job,
                now,
                root=index == 0,
                nexts=[Int64(i) for i in nexts],
                previous=[Int64(i) for i in previous],
            )
        )
    return docs


async def load(db: Database) -> dict[str, int]:
    await db.tasks.drop()
    now = datetime.now(UTC).replace(microsecond=0)
    for start in range(1, BULK_TASKS + 1, 10_000):
        await db.tasks.insert_many([task_doc(i, f"bulk-{i // 1000}", now) for i in range(start, start + 10_000)])
    job_first = BULK_TASKS + 1
    await db.tasks.insert_many(layered_job(job_first, JOB_TASKS, JOB_LEVELS, "job-10k", now))
    walk_first = job_first + JOB_TASKS
    await db.tasks.insert_many(binary_tree(walk_first, WALK_TASKS, "walk-1k", now))
    next_free = await load_fleet(db, walk_first + WALK_TASKS, now)
    return {"walk_root": walk_first, "next_free": next_free}


async def load_fleet(db: Database, first_id: int, now: datetime) -> int:
    """9,000 jobs of 100 tasks (each job last updated at its own time) and one job of 100,000 tasks."""
    rng = random.Random(7)
    batch: list[Doc] = []
    task_id = first_id
    for job in range(FLEET_JOBS):
        updated = now - timedelta(seconds=rng.randint(0, 30 * 86_400))
        for _ in range(FLEET_JOB_SIZE):
            batch.append(task_doc(task_id, f"fleet-{job:05d}", updated, **{"start-time": updated - timedelta(hours=1)}))
            task_id += 1
        if len(batch) >= 20_000:
            await db.tasks.insert_many(batch)
            batch = []
    for _ in range(BIG_JOB_TASKS):
        batch.append(task_doc(task_id, "job-100k", now))
        task_id += 1
        if len(batch) >= 20_000:
            await db.tasks.insert_many(batch)
            batch = []
    if batch:
        await db.tasks.insert_many(batch)
    return task_id


# ---- processes -----------------------------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start(module: str, port: int, uri: str, data_dir: Path) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        "TRACKING_MONGODB_URI": uri,
        "TRACKING_MONGODB_DB": DB,
        "TRACKING_PORT": str(port),
        "TRACKING_API_TOKENS": TOKEN,
        "TRACKING_DATA_DIR": str(data_dir),
        "TRACKING_LOG_LEVEL": "warning",
        "TRACKING_GRAPHQL_MAX_TRAVERSAL": "20000",
    }
    return subprocess.Popen([sys.executable, "-m", module], env=env, stdout=subprocess.DEVNULL)


async def wait_until_up(url: str, process: subprocess.Popen[bytes]) -> None:
    async with aiohttp.ClientSession() as session:
        for _ in range(3000):  # index builds over a million tasks at start-up take a while
            if process.poll() is not None:
                raise SystemExit(f"{url}: server exited with {process.returncode}")
            try:
                async with session.get(url) as response:
                    if response.status < 500:
                        return
            except aiohttp.ClientError:
                pass
            await asyncio.sleep(0.1)
    raise SystemExit(f"{url} never answered")


def peak_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


# ---- measuring -----------------------------------------------------------------------------------------------------


async def rate(worker: Callable[[int], Awaitable[None]], total: int, concurrency: int = CONCURRENCY) -> float:
    """Operations per second: `concurrency` coroutines share `total` operations (worker gets the op number)."""
    counter = iter(range(total))

    async def loop() -> None:
        for number in counter:
            await worker(number)

    started = time.perf_counter()
    await asyncio.gather(*(loop() for _ in range(concurrency)))
    return total / (time.perf_counter() - started)


async def median_of(measure: Callable[[], Awaitable[float]], rounds: int = ROUNDS, warmups: int = 1) -> float:
    for _ in range(warmups):
        await measure()
    return statistics.median([await measure() for _ in range(rounds)])


async def timed(action: Callable[[], Awaitable[object]]) -> float:
    started = time.perf_counter()
    await action()
    return time.perf_counter() - started


def api_json(doc: Doc) -> Doc:
    """What a hand-written endpoint returns for a stored task (the reference for encoding costs)."""
    out = {"id": doc["_id"]}
    for name, value in doc.items():
        if name not in ("_id", "nexts", "previous"):
            out[name] = value.strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z" if isinstance(value, datetime) else value
    return out


async def count_reads(db: Database, action: Callable[[], Awaitable[object]]) -> int:
    await db.command("profile", 0)
    await db.system.profile.drop()
    await db.command("profile", 2)
    try:
        await action()
    finally:
        await db.command("profile", 0)
    return await db.system.profile.count_documents({"ns": f"{DB}.tasks", "op": {"$in": ["query", "getmore"]}})


# ---- workloads -----------------------------------------------------------------------------------------------------


async def get_task_rows(session: aiohttp.ClientSession, gateway: str, reference: str, db: Database) -> list[Row]:
    requests = 4000

    def reader(base: str, prefix: str) -> Callable[[int], Awaitable[None]]:
        async def read(_: int) -> None:
            async with session.get(f"{base}{prefix}/task/{random.randint(1, BULK_TASKS)}") as response:
                assert response.status == 200
                await response.read()

        return read

    async def raw_read(_: int) -> None:
        doc = await db.tasks.find_one({"_id": random.randint(1, BULK_TASKS)})
        assert doc is not None

    # Interleaved rounds: on a shared 2-core machine, drift between three back-to-back blocks of rounds
    # moved the ratios by more than the differences being measured.
    measures: dict[str, Callable[[], Awaitable[float]]] = {
        "ours": lambda: rate(reader(gateway, "/tracking"), requests),
        "hand": lambda: rate(reader(reference, ""), requests),
        "raw": lambda: rate(raw_read, requests),
    }
    figures: dict[str, list[float]] = {name: [] for name in measures}
    for round_number in range(ROUNDS + 1):
        for name, measure in measures.items():
            figure = await measure()
            if round_number:  # round 0 warms up
                figures[name].append(figure)
    ours, hand, raw = (statistics.median(figures[name]) for name in ("ours", "hand", "raw"))
    rows = [
        Row("GET /tracking/task/{id} vs raw driver", ours, raw, "req/s", ours / raw, "report", None, "aiohttp load"),
        Row("GET /tracking/task/{id} vs hand-written", ours, hand, "req/s", ours / hand, ">= 1.0", ours / hand >= 1.0,
            "aiohttp load"),
    ]  # fmt: skip
    if shutil.which("wrk") is None:
        print("wrk not found (Debian package wrk): GET rows use the aiohttp load only", flush=True)
        return rows
    wrk_ours = statistics.median([wrk_rate(f"{gateway}/tracking") for _ in range(ROUNDS)])
    wrk_hand = statistics.median([wrk_rate(reference) for _ in range(ROUNDS)])
    return [
        *rows,
        Row("GET /tracking/task/{id} (wrk) vs raw driver", wrk_ours, raw, "req/s", wrk_ours / raw, "report", None,
            "wrk -c32; raw: in-process reads"),
        Row("GET /tracking/task/{id} (wrk) vs hand-written (wrk)", wrk_ours, wrk_hand, "req/s", wrk_ours / wrk_hand,
            ">= 1.0", wrk_ours / wrk_hand >= 1.0, "wrk -c32"),
    ]  # fmt: skip


WRK_SCRIPT = f"""wrk.headers["X-Auth-Token"] = "{TOKEN}"
local prefix = string.gsub(wrk.path, "/$", "")
request = function() return wrk.format("GET", prefix .. "/task/" .. math.random(1, {BULK_TASKS})) end
"""


def wrk_rate(base: str) -> float:
    """Requests per second from `wrk` (one thread, 32 connections, 5 s) reading random tasks under `base`."""
    with tempfile.NamedTemporaryFile("w", suffix=".lua") as script:
        script.write(WRK_SCRIPT)
        script.flush()
        command = ["wrk", "-t1", f"-c{CONCURRENCY}", "-d5s", "-s", script.name, base]
        output = subprocess.run(command, capture_output=True, text=True, check=True).stdout
    if "Non-2xx" in output:
        raise SystemExit(f"wrk got errors from {base}:\n{output}")
    return float(output.split("Requests/sec:")[1].split()[0])


async def roots_row(session: aiohttp.ClientSession, gateway: str, db: Database) -> Row:
    async def ours() -> float:
        async with session.get(f"{gateway}/tracking/job-10k/task/roots") as response:
            body = await response.read()
        assert len(orjson.loads(body)["tasks"]) == JOB_TASKS
        return 0.0

    async def raw() -> object:
        docs = await db.tasks.find({"job-id": "job-10k"}).sort("_id").to_list(None)
        return orjson.dumps({"tasks": [api_json(doc) for doc in docs]})

    gateway_s = await median_of(lambda: timed(ours))
    raw_s = await median_of(lambda: timed(raw))
    ratio = gateway_s / raw_s
    return Row(
        "GET /{jobId}/task/roots, 10k tasks (time)", gateway_s * 1000, raw_s * 1000, "ms", ratio, "<= 2", ratio <= 2
    )


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
        "POST /tracking/task, 10k tasks per body", ours_rate, raw_rate, "tasks/s", ratio, ">= 0.5", ratio >= 0.5,
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


async def scale_rows(db: Database, load_s: float, total: int) -> list[Row]:
    """What the loaded database costs: insert time, and the data and index sizes MongoDB reports."""
    stats = await db.command("collStats", "tasks")
    mb = 1024 * 1024
    rows = [Row(f"load {total:,} tasks with insert_many (time)", load_s, 0, "s", 0, "report", None, "raw driver")]
    for name, size in sorted(stats["indexSizes"].items()):
        rows.append(Row(f"index {name} ({total:,} tasks)", size / mb, stats["size"] / mb, "MB", size / stats["size"],
                        "report", None, "reference: data size"))  # fmt: skip
    return rows


class LinkLoad:
    """Link additions between fresh task pairs, each client adding its own pairs one after another."""

    def __init__(self, session: aiohttp.ClientSession, db: Database, ids: dict[str, int]) -> None:
        self.session, self.db = session, db
        self.next_free = ids["next_free"] + 5_000_000
        self.round = 0

    async def pairs(self, clients: int, per_client: int, one_job: bool) -> list[list[tuple[int, int]]]:
        """`per_client` unlinked pairs for each client, in a job of its own or all in one job."""
        self.round += 1
        now = datetime.now(UTC)
        first, self.next_free = self.next_free, self.next_free + 2 * clients * per_client
        job = f"links-{self.round}"
        docs = [
            task_doc(first + i, job if one_job else f"{job}-{i // (2 * per_client)}", now)
            for i in range(2 * clients * per_client)
        ]
        await self.db.tasks.insert_many(docs)
        ids = iter(range(first, first + 2 * clients * per_client))
        return [[(next(ids), next(ids)) for _ in range(per_client)] for _ in range(clients)]

    async def rate(self, gateways: list[str], clients: int, per_client: int, one_job: bool = False) -> float:
        """Links per second with `clients` clients spread over `gateways`."""
        work = await self.pairs(clients, per_client, one_job)

        async def client(number: int) -> None:
            base = gateways[number % len(gateways)]
            for a, b in work[number]:
                async with self.session.put(f"{base}/tracking/task/{a}/next?nextTaskId={b}") as response:
                    assert response.status == 200, await response.text()
                    await response.read()

        started = time.perf_counter()
        await asyncio.gather(*(client(number) for number in range(clients)))
        return clients * per_client / (time.perf_counter() - started)

    async def raw_rate(self, client: Client, per_client: int) -> float:
        """The same additions as a sequential client's two-update transactions, straight through the driver."""
        (work,) = await self.pairs(1, per_client, one_job=False)
        started = time.perf_counter()
        for a, b in work:

            async def both(session: AsyncClientSession, a: int = a, b: int = b) -> None:
                await self.db.tasks.update_one({"_id": a}, {"$addToSet": {"nexts": Int64(b)}}, session=session)
                await self.db.tasks.update_one({"_id": b}, {"$addToSet": {"previous": Int64(a)}}, session=session)

            async with client.start_session() as session:
                await session.with_transaction(both)
        return per_client / (time.perf_counter() - started)


async def link_rows(
    session: aiohttp.ClientSession, gateways: list[str], db: Database, client: Client, ids: dict[str, int]
) -> list[Row]:
    """Links/s: one sequential client; 32 clients on 32 jobs and on one job; 32 clients over two gateways."""
    load = LinkLoad(session, db, ids)
    one, two = gateways[:1], gateways[:2]
    sequential = await median_of(lambda: load.rate(one, 1, 150), rounds=3)
    raw = await median_of(lambda: load.raw_rate(client, 150), rounds=3)
    distinct = await median_of(lambda: load.rate(one, CONCURRENCY, 25), rounds=3)
    one_job = await median_of(lambda: load.rate(one, CONCURRENCY, 25, one_job=True), rounds=3)
    both = await median_of(lambda: load.rate(two, CONCURRENCY, 25), rounds=3)
    return [
        Row("links: 1 sequential client vs raw 2-update transaction", sequential, raw, "links/s", sequential / raw,
            "report", None, "the gateway also checks ids and cycles"),
        Row("links: 32 clients on 32 jobs vs 1 sequential client", distinct, sequential, "links/s",
            distinct / sequential, ">= 4", distinct / sequential >= 4),
        Row("links: 32 clients on one job vs on 32 jobs", one_job, distinct, "links/s", one_job / distinct,
            "report", None, "one job's additions take turns"),
        Row("links: 2 gateways vs 1, 32 clients on 32 jobs", both, distinct, "links/s", both / distinct,
            ">= 1.5", both / distinct >= 1.5),
    ]  # fmt: skip


JOB_QUERY = '{ job(id: "job-10k") { tasks { id status } edges { from to } statusCounts { status count } } }'


async def graphql_job_row(session: aiohttp.ClientSession, gateway: str, db: Database) -> Row:
    async def ours() -> object:
        async with session.post(f"{gateway}/graphql", json={"query": JOB_QUERY}) as response:
            body = orjson.loads(await response.read())
        assert len(body["data"]["job"]["tasks"]) == JOB_TASKS, body.get("errors")
        return body

    async def raw() -> object:
        docs = await db.tasks.find({"job-id": "job-10k"}).sort("_id").to_list(None)
        members = {doc["_id"] for doc in docs}
        counts = Counter(doc.get("status") for doc in docs)
        return orjson.dumps(
            {
                "tasks": [{"id": str(doc["_id"]), "status": doc.get("status")} for doc in docs],
                "edges": [
                    {"from": str(doc["_id"]), "to": str(n)} for doc in docs for n in doc["nexts"] if n in members
                ],
                "statusCounts": [{"status": s, "count": c} for s, c in counts.items()],
            }
        )

    gateway_s = await median_of(lambda: timed(ours))
    raw_s = await median_of(lambda: timed(raw))
    trips = await count_reads(db, ours)
    ratio = gateway_s / raw_s
    return Row(
        "GraphQL 10k-task job, 20 levels, edges+counts (time)",
        gateway_s * 1000,
        raw_s * 1000,
        "ms",
        ratio,
        "<= 3 and <= depth+3 trips",
        ratio <= 3 and trips <= JOB_LEVELS + 3,
        f"{trips} MongoDB reads",
    )


async def walk_row(session: aiohttp.ClientSession, gateway: str, ids: dict[str, int]) -> Row:
    root = ids["walk_root"]
    query = f'{{ task(id: "{root}") {{ id status descendants {{ id status nexts {{ id }} }} }} }}'

    async def one_query() -> object:
        async with session.post(f"{gateway}/graphql", json={"query": query}) as response:
            body = orjson.loads(await response.read())
        assert len(body["data"]["task"]["descendants"]) == WALK_TASKS - 1, body.get("errors")
        return body

    async def rest_walk() -> object:
        seen, level = {root}, [root]
        while level:

            async def nexts(task_id: int) -> list[int]:
                async with session.get(f"{gateway}/tracking/task/{task_id}/next") as response:
                    return [t["id"] for t in orjson.loads(await response.read())["tasks"]]

            found = await asyncio.gather(*(nexts(task_id) for task_id in level))
            level = [i for ids_ in found for i in ids_ if i not in seen]
            seen.update(level)
        assert len(seen) == WALK_TASKS
        return seen

    graphql_s = await median_of(lambda: timed(one_query))
    rest_s = await median_of(lambda: timed(rest_walk), rounds=3)
    speedup = rest_s / graphql_s
    return Row(
        "Dashboard walk of 1k tasks: GraphQL vs REST (time)",
        graphql_s * 1000,
        rest_s * 1000,
        "ms",
        speedup,
        "report",
        None,
        "ratio = REST time / GraphQL time; GraphQL walks in one $graphLookup",
    )


JOBS_QUERY = """{ jobs(first: 20, filter: {idPrefix: "fleet-"}) {
  edges { cursor node { id taskCount statusCounts { status count }
    summary { lastUpdate durationMs doneCount progress } } }
  pageInfo { hasNextPage endCursor } } }"""


async def jobs_row(session: aiohttp.ClientSession, gateway: str, db: Database) -> Row:
    """The first page of the 9,000 fleet jobs (100 tasks each) with summaries, in a database of over a million
    tasks, against the same two aggregations run through the driver and encoded. (The newest jobs overall are
    the bench's own huge ones, whose summaries read 100,000 tasks: see bigjob.)"""

    async def ours() -> object:
        async with session.post(f"{gateway}/graphql", json={"query": JOBS_QUERY}) as response:
            body = orjson.loads(await response.read())
        assert len(body["data"]["jobs"]["edges"]) == 20, body.get("errors")
        return body

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
        "< 1000 ms; ratio report",
        gateway_s < 1.0,
        "raw: same aggregations, driver",
    )


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
        "ratio report",
        None,
        "raw: same aggregation + find, driver",
    )


EVENTS = 60


async def event_delay_row(session: aiohttp.ClientSession, gateway: str, db: Database) -> Row:
    """Median delay from a REST status change to its taskEvents event over WebSocket, against the same update
    seen by a change stream opened directly with the driver."""
    await db.tasks.insert_one(task_doc(10**12, "events", datetime.now(UTC)))
    subscribe = {
        "id": "1",
        "type": "subscribe",
        "payload": {"query": 'subscription { taskEvents(jobId: "events") { cursor task { status } } }'},
    }
    delays: list[float] = []
    async with session.ws_connect(f"{gateway}/graphql", protocols=["graphql-transport-ws"]) as ws:
        await ws.send_json({"type": "connection_init", "payload": {"X-Auth-Token": TOKEN}})
        await ws.receive_json()
        await ws.send_json(subscribe)
        await asyncio.sleep(1)
        for number in range(EVENTS):
            started = time.perf_counter()
            async with session.put(f"{gateway}/tracking/task/{10**12}", json={"status": f"S{number}"}) as response:
                assert response.status == 200
            while (await ws.receive_json())["payload"]["data"]["taskEvents"]["task"]["status"] != f"S{number}":
                pass
            delays.append(time.perf_counter() - started)
    raw_delays: list[float] = []
    async with await db.tasks.watch([{"$match": {"documentKey._id": 10**12}}]) as stream:
        for number in range(EVENTS):
            started = time.perf_counter()
            await db.tasks.update_one({"_id": 10**12}, {"$set": {"status": f"R{number}"}})
            await stream.next()
            raw_delays.append(time.perf_counter() - started)
    ours, raw = statistics.median(delays[5:]), statistics.median(raw_delays[5:])
    return Row(
        "REST change -> taskEvents event (median delay)",
        ours * 1000,
        raw * 1000,
        "ms",
        ours / raw,
        "report",
        None,
        f"p95 {sorted(delays)[int(len(delays) * 0.95)] * 1000:.0f} ms; raw: update + driver change stream",
    )


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
        "report",
        None,
        "from the POST to the last entry; raw: insert_many",
    )


UI_JOB_TASKS = 2_000


async def ui_row(gateway: str, db: Database, ids: dict[str, int]) -> Row:
    """The live view drawing a 2,000-task job (20 levels, two links per task) in headless Chromium: from
    navigation to the graph on screen (fetching, layout and drawing)."""
    from tests.browser import Browser  # the tests' DevTools driver; Chromium comes with `make test`

    now = datetime.now(UTC)
    await db.tasks.insert_many(layered_job(ids["next_free"] + 20_000_000, UI_JOB_TASKS, 20, "ui-2k", now))
    figures = []
    for _ in range(ROUNDS):
        with tempfile.TemporaryDirectory(prefix="bench-ui-", ignore_cleanup_errors=True) as workdir:
            async with Browser(Path(workdir)) as browser:
                await browser.open(f"{gateway}/ui/#token={TOKEN}&job=ui-2k")
                await browser.wait_for("performance.getEntriesByName('graph-drawn').length", timeout_s=60)
                marks = await browser.evaluate(
                    "Object.fromEntries(performance.getEntriesByType('mark').map(m => [m.name, m.startTime]))"
                )
                figures.append(marks)
                assert await browser.evaluate("document.querySelectorAll('g.task').length") == UI_JOB_TASKS
    drawn, fetched, laid_out = (statistics.median(marks[name] for marks in figures)
                                for name in ("graph-drawn", "graph-fetched", "graph-laid-out"))  # fmt: skip
    note = f"from navigation: fetched {fetched:.0f} ms, laid out {laid_out:.0f} ms (headless Chromium)"
    return Row("live view: 2,000-task job graph on screen (time)", drawn, 2000, "ms", drawn / 2000, "< 2000 ms",
               drawn < 2000, note)  # fmt: skip


# ---- report --------------------------------------------------------------------------------------------------------


def print_table(rows: list[Row]) -> None:
    header = f"{'workload':58} {'gateway':>12} {'reference':>12} {'unit':>8} {'ratio':>7}  {'target':<26} met"
    print(header)
    print("-" * len(header))
    for row in rows:
        met = "-" if row.met is None else ("yes" if row.met else "NO")
        print(
            f"{row.workload:58} {row.gateway:12.1f} {row.reference:12.1f} {row.unit:>8} {row.ratio:7.2f}  "
            f"{row.target:<26} {met}  {row.note}"
        )


async def main() -> None:
    with tempfile.TemporaryDirectory(prefix="tracking-bench-") as workdir:
        mongo = EmbeddedMongo(Path(workdir), cache_size_gb=1.0)
        uri = await mongo.start()
        client: Client = AsyncMongoClient(uri, w="majority", readConcernLevel="majority", tz_aware=True)
        db = client[DB]
        processes: list[subprocess.Popen[bytes]] = []
        try:
            total = BULK_TASKS + JOB_TASKS + WALK_TASKS + FLEET_JOBS * FLEET_JOB_SIZE + BIG_JOB_TASKS
            print(f"loading {total} tasks ...", flush=True)
            load_started = time.perf_counter()
            ids = await load(db)
            load_s = time.perf_counter() - load_started
            gateway_port, second_port, reference_port = free_port(), free_port(), free_port()
            gateway = start("gateway", gateway_port, uri, Path(workdir) / "gw")
            reference = start("bench.reference_app", reference_port, uri, Path(workdir) / "ref")
            processes += [gateway, reference]
            gateway_url, reference_url = f"http://127.0.0.1:{gateway_port}", f"http://127.0.0.1:{reference_port}"
            await wait_until_up(f"{gateway_url}/readyz", gateway)
            await wait_until_up(f"{reference_url}/task/1", reference)
            second = start("gateway", second_port, uri, Path(workdir) / "gw2")  # only the link rows use it
            processes.append(second)
            second_url = f"http://127.0.0.1:{second_port}"
            await wait_until_up(f"{second_url}/readyz", second)
            rows: list[Row] = await scale_rows(db, load_s, total) if not sys.argv[1:] else []
            connector = aiohttp.TCPConnector(limit=CONCURRENCY)
            async with aiohttp.ClientSession(connector=connector, headers={"X-Auth-Token": TOKEN}) as session:
                workloads: dict[str, Callable[[], Awaitable[Row | list[Row]]]] = {
                    "get": lambda: get_task_rows(session, gateway_url, reference_url, db),
                    "roots": lambda: roots_row(session, gateway_url, db),
                    "create": lambda: create_row(session, gateway_url, db, ids),
                    "links": lambda: link_rows(session, [gateway_url, second_url], db, client, ids),
                    "graphql": lambda: graphql_job_row(session, gateway_url, db),
                    "walk": lambda: walk_row(session, gateway_url, ids),
                    "jobs": lambda: jobs_row(session, gateway_url, db),
                    "bigjob": lambda: big_job_row(session, gateway_url, db),
                    "events": lambda: event_delay_row(session, gateway_url, db),
                    "history": lambda: history_row(session, gateway_url, db),
                    "ui": lambda: ui_row(gateway_url, db, ids),
                }
                for name in sys.argv[1:] or list(workloads):
                    result = await workloads[name]()
                    rows.extend(result if isinstance(result, list) else [result])
                    print(f"measured {name}", flush=True)
            rss = peak_rss_mb(gateway.pid)
            rows.append(Row("gateway peak RSS", rss, 250, "MB", rss / 250, "<= 250 MB", rss <= 250))
        finally:
            for process in processes:
                process.send_signal(signal.SIGTERM)
                process.wait(30)
            await client.close()
            await mongo.stop()
    print()
    print_table(rows)
    machine = f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}"
    results = {"when": datetime.now(UTC).isoformat(), "machine": machine, "rows": [asdict(row) for row in rows]}
    (HERE / "results.json").write_text(json.dumps(results, indent=2))
    print(f"\n{machine}; written to bench/results.json")


if __name__ == "__main__":
    asyncio.run(main())
