"""The rows `python -m bench.versions` measures on both versions: each one round of a workload's own load
function (bench/workloads/) against one gateway, the same concurrency for both."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

import aiohttp

from bench.data import Database
from bench.measure import CONCURRENCY, CpuMeter, rate
from bench.workloads.create import checkpointed, create_body, history_recorded, post_tasks
from bench.workloads.get import task_reader
from bench.workloads.graphql_job import job_query
from bench.workloads.jobs import jobs_page
from bench.workloads.links import LinkLoad
from bench.workloads.roots import job_roots
from bench.workloads.walk import walk_query

GET_REQUESTS = 4000
"""GETs per round of the GET row, by CONCURRENCY clients (as bench/workloads/get.py)."""
LINKS_PER_CLIENT = 25
"""Link additions per client per round of the link row (CONCURRENCY clients, each on a job of its own)."""


@dataclass
class Gateway:
    """One version's gateway as the rows see it: its base URL, its own database (on the shared mongod), the ids
    the data starts at, and a meter of its process and mongod (for the link row's own CPU figure)."""

    url: str
    db: Database
    ids: dict[str, int]
    cpu: CpuMeter
    links: LinkLoad | None = field(default=None)


@dataclass(frozen=True)
class Measured:
    """A round's figure, in the row's unit, and how many operations it made."""

    figure: float
    operations: int


@dataclass(frozen=True)
class VersionRow:
    """A row: `measure` runs one round against one gateway; `prepare` (not metered) runs before it."""

    key: str
    """A short name: what `python -m bench.versions ROW` matches first, and the profiles' file names."""
    name: str
    unit: str
    higher_is_better: bool
    measure: Callable[[aiohttp.ClientSession, Gateway], Awaitable[Measured]]
    prepare: Callable[[Gateway], Awaitable[None]] | None = None


def repeated(
    times: int, operation: Callable[[aiohttp.ClientSession, Gateway], Awaitable[object]]
) -> Callable[[aiohttp.ClientSession, Gateway], Awaitable[Measured]]:
    """A round of `times` operations one after another; its figure the mean milliseconds per operation (a single
    short request is below /proc's clock tick of CPU: several make the CPU per operation measurable)."""

    async def round_(session: aiohttp.ClientSession, gateway: Gateway) -> Measured:
        started = time.perf_counter()
        for _ in range(times):
            await operation(session, gateway)
        return Measured((time.perf_counter() - started) * 1000 / times, times)

    return round_


async def get_round(session: aiohttp.ClientSession, gateway: Gateway) -> Measured:
    return Measured(await rate(task_reader(session, f"{gateway.url}/tracking"), GET_REQUESTS), GET_REQUESTS)


BULK_BODY = create_body()


async def create_round(session: aiohttp.ClientSession, gateway: Gateway) -> Measured:
    """One bulk create, without an idempotency key (a version before them would ignore the header and do less
    work); the round lasts until the task history holds its creations, so their CPU is the round's. The figure
    is the POST's milliseconds."""
    started = time.perf_counter()
    created = await post_tasks(session, gateway.url, BULK_BODY)
    milliseconds = (time.perf_counter() - started) * 1000
    await history_recorded(gateway.db, created)
    return Measured(milliseconds, 1)


async def checkpoint(gateway: Gateway) -> None:
    await checkpointed(gateway.db)


async def links_round(session: aiohttp.ClientSession, gateway: Gateway) -> Measured:
    """CONCURRENCY clients each adding LINKS_PER_CLIENT links on a job of its own (bench/workloads/links.py's
    judged load); the figure is that load's own CPU per link, gateway + mongod, without the setup of its pairs."""
    if gateway.links is None:
        gateway.links = LinkLoad(session, gateway.db, gateway.ids, gateway.cpu)
    await gateway.links.rate([gateway.url], CONCURRENCY, LINKS_PER_CLIENT)
    return Measured(gateway.links.cpu_ms[-1], CONCURRENCY * LINKS_PER_CLIENT)


async def roots(session: aiohttp.ClientSession, gateway: Gateway) -> None:
    await job_roots(session, gateway.url)


async def graphql_job(session: aiohttp.ClientSession, gateway: Gateway) -> None:
    await job_query(session, gateway.url)


async def walk(session: aiohttp.ClientSession, gateway: Gateway) -> None:
    await walk_query(session, gateway.url, gateway.ids["walk_root"])


async def jobs(session: aiohttp.ClientSession, gateway: Gateway) -> None:
    await jobs_page(session, gateway.url)


ROWS = (
    VersionRow("get", f"GET /tracking/task/{{id}}, {CONCURRENCY} clients", "req/s", True, get_round),
    VersionRow("roots", "GET /{jobId}/task/roots, 10k tasks", "ms", False, repeated(5, roots)),
    VersionRow("create", "POST /tracking/task, 10k tasks (no idempotency key)", "ms", False, create_round, checkpoint),
    VersionRow("links", f"links: {CONCURRENCY} clients on {CONCURRENCY} jobs, gateway + mongod", "CPU ms/link", False,
               links_round),
    VersionRow("graphql", "GraphQL 10k-task job, 20 levels, edges + counts", "ms", False, repeated(5, graphql_job)),
    VersionRow("walk", "Dashboard walk of 1k tasks (GraphQL)", "ms", False, repeated(10, walk)),
    VersionRow("jobs", "GraphQL jobs(first: 20) + summaries", "ms", False, repeated(20, jobs)),
)  # fmt: skip
"""In the order they run (bench/README.md, "Main against the code before the architecture work")."""
