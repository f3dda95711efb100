"""The cost of tracing at full sampling, on the GET and GraphQL job rows: a second gateway process traces every
request (OTEL_TRACES_SAMPLER=always_on) to an OTLP/HTTP receiver on loopback that discards what it gets; the
figure is the gateway's CPU seconds per request, traced over untraced (the untraced gateway is the one every
other row measures), at the same concurrency on the same data. Rounds alternate the two, and which goes first
alternates too. The note gives the machine's load average (`uptime`'s first figure) before and after: CPU per
request on a busy machine is higher for both sides, and less comparable between runs. Spans the traced gateway
dropped (a full queue) are noted: a cost that dropped spans would look smaller than it is. A third gateway samples
SAMPLED_RATIO of requests (parentbased_traceidratio, the documented lever where full sampling costs too much): its
GETs over the untraced ones are a third row.

With `python -m bench --without-data tracing` the workload loads the little it needs itself (TRACING_TASKS tasks
to GET and the 10k-task job the GraphQL row reads, seconds instead of the million tasks' minutes)."""

from __future__ import annotations

import asyncio
import os
import random
import statistics
import subprocess
import threading
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import aiohttp
import orjson

from bench.data import BULK_TASKS, JOB_LEVELS, JOB_TASKS, Database, layered_job, task_doc
from bench.measure import ROUNDS, Row, Run, at_most, rate
from bench.processes import peak_rss_mb, start, tree_cpu_s, wait_until_up
from bench.workloads.graphql_job import JOB_QUERY
from gateway.embedded import free_port

UNDER_TEN_PERCENT = at_most(1.10)
TRACING_TASKS = 10_000
"""Tasks the GET load reads when the workload loads its own data (--without-data): enough that random ids rarely
repeat within a round's coalesced reads."""
OWN_DATA_OFFSET = 50_000_000
"""Where the workload's own tasks start past the run's `next_free` (each workload writing tasks has its own)."""


@contextmanager
def discarding_receiver() -> Iterator[str]:
    """An OTLP/HTTP endpoint that accepts every export and keeps nothing (an empty ExportTraceServiceResponse
    is an empty body); yields its base URL."""

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # keep-alive, as a collector answers

        def do_POST(self) -> None:
            self.rfile.read(int(self.headers.get("content-length", "0")))
            self.send_response(200)
            self.send_header("content-type", "application/x-protobuf")
            self.send_header("content-length", "0")
            self.end_headers()

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, name="discarding OTLP receiver", daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


EXPORT_DELAY_MS = 200
"""The traced gateway's OTEL_BSP_SCHEDULE_DELAY: a load's last spans leave within it, so their encoding and
sending fall in the load's own measure (SETTLE_S), not the next one's (the default, 5 s, left a GET load's last
spans to be exported during the GraphQL load). Under load, exports are of full batches either way."""
SETTLE_S = 4 * EXPORT_DELAY_MS / 1000
"""Idle time after each load, inside its measure, on both sides: the traced gateway's export thread sends what
the load left queued."""


SAMPLED_RATIO = 0.05
"""The ratio of the sampled row's gateway (parentbased_traceidratio): the lever the operations page documents."""


def full_sampling(endpoint: str) -> dict[str, str]:
    return {
        "OTEL_EXPORTER_OTLP_ENDPOINT": endpoint,
        "OTEL_TRACES_SAMPLER": "always_on",
        "OTEL_BSP_SCHEDULE_DELAY": str(EXPORT_DELAY_MS),
    }


def ratio_sampling(endpoint: str) -> dict[str, str]:
    return {
        **full_sampling(endpoint),
        "OTEL_TRACES_SAMPLER": "parentbased_traceidratio",
        "OTEL_TRACES_SAMPLER_ARG": str(SAMPLED_RATIO),
    }


async def cpu_per_request(pid: int, load: Callable[[], Awaitable[object]], requests: int) -> float:
    """The process's CPU seconds (with its children) per request over `load` and the SETTLE_S after it."""
    before = tree_cpu_s([pid])
    await load()
    await asyncio.sleep(SETTLE_S)
    return (tree_cpu_s([pid]) - before) / requests


async def dropped_spans(session: aiohttp.ClientSession, base: str) -> int:
    async with session.get(f"{base}/metrics") as response:
        text = await response.text()
    return int(
        sum(
            float(line.rsplit(" ", 1)[1])
            for line in text.splitlines()
            if line.startswith("tracking_trace_spans_dropped_total{")
        )
    )


async def tracing_rows(
    session: aiohttp.ClientSession,
    plain: tuple[str, int],
    traced: tuple[str, int],
    *,
    task_ids: tuple[int, int] = (1, BULK_TASKS),
    job_tasks: int = JOB_TASKS,
    job_query: str = JOB_QUERY,
    requests: int = 4000,
    jobs: int = 10,
    rounds: int = ROUNDS,
    sampled: tuple[str, int] | None = None,
) -> list[Row]:
    """The two rows, from the gateways at (base URL, pid) `plain` and `traced` on the same data (the tasks
    `task_ids` first to last, the job `job_query` reads with `job_tasks` tasks); with `sampled` (a gateway
    sampling SAMPLED_RATIO of requests), a third: its GETs over the untraced ones, measured in the same rounds."""

    def reader(base: str) -> Callable[[int], Awaitable[None]]:
        async def read(_: int) -> None:
            async with session.get(f"{base}/tracking/task/{random.randint(*task_ids)}") as response:
                assert response.status == 200, response.status
                await response.read()

        return read

    def get_load(base: str) -> Callable[[], Awaitable[float]]:
        return lambda: rate(reader(base), requests)

    def job_reader(base: str) -> Callable[[], Awaitable[None]]:
        async def read_jobs() -> None:
            for _ in range(jobs):
                async with session.post(f"{base}/graphql", json={"query": job_query}) as response:
                    body = orjson.loads(await response.read())
                assert len(body["data"]["job"]["tasks"]) == job_tasks, body.get("errors")

        return read_jobs

    figures: dict[str, list[float]] = {
        key: [] for key in ("get plain", "get traced", "job plain", "job traced", "get sampled")
    }
    load_before = os.getloadavg()[0]
    for round_number in range(rounds + 1):
        # Which side goes first alternates (ABBA): the second of two back-to-back measures ran measurably cheaper.
        sides = (("plain", plain), ("traced", traced), *((("sampled", sampled),) if sampled else ()))
        for side, (base, pid) in sides if round_number % 2 else sides[::-1]:
            get_cpu = await cpu_per_request(pid, get_load(base), requests)
            if round_number:  # round 0 warms up
                figures[f"get {side}"].append(get_cpu)
            if side == "sampled":  # the lever is for the cheapest requests: its GETs only
                continue
            job_cpu = await cpu_per_request(pid, job_reader(base), jobs)
            if round_number:
                figures[f"job {side}"].append(job_cpu)
    get_plain, get_traced, job_plain, job_traced = (
        statistics.median(figures[key]) for key in ("get plain", "get traced", "job plain", "job traced")
    )
    note = (
        f"gateway CPU per request (user + system, /proc, its threads included), medians of {rounds} rounds "
        f"alternating sides; load average {load_before:.1f} -> {os.getloadavg()[0]:.1f}; "
        f"{await dropped_spans(session, traced[0])} spans dropped"
    )
    rows = [
        Row("GET /tracking/task/{id} traced (always_on) vs untraced", get_traced * 1e3, get_plain * 1e3, "CPU ms",
            get_traced / get_plain, UNDER_TEN_PERCENT, note),
        Row("GraphQL 10k-task job traced (always_on) vs untraced", job_traced * 1e3, job_plain * 1e3, "CPU ms",
            job_traced / job_plain, UNDER_TEN_PERCENT, note),
    ]  # fmt: skip
    if sampled:
        get_sampled = statistics.median(figures["get sampled"])
        rows.append(
            Row(f"GET /tracking/task/{{id}} sampled ({SAMPLED_RATIO:.0%}) vs untraced", get_sampled * 1e3,
                get_plain * 1e3, "CPU ms", get_sampled / get_plain, UNDER_TEN_PERCENT,
                f"parentbased_traceidratio {SAMPLED_RATIO}, the documented lever; {note}")
        )  # fmt: skip
    return rows


@contextmanager
def traced_gateway(
    run: Run, endpoint: str, sampling: Callable[[str], dict[str, str]] = full_sampling, name: str = "traced"
) -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    port = free_port()
    process = start("gateway", port, run.uri, run.workdir / name, sampling(endpoint))
    try:
        yield f"http://127.0.0.1:{port}", process
    finally:
        process.terminate()
        process.wait(30)


async def load_own_data(db: Database, first_id: int) -> tuple[int, int]:
    """TRACING_TASKS tasks from `first_id` and, after them, the job JOB_QUERY reads ("job-10k", as `load` makes
    it); the ids of the tasks to GET, first and last."""
    now = datetime.now(UTC).replace(microsecond=0)
    last = first_id + TRACING_TASKS - 1
    await db.tasks.insert_many([task_doc(i, f"tracing-{i // 1000}", now) for i in range(first_id, last + 1)])
    await db.tasks.insert_many(layered_job(last + 1, JOB_TASKS, JOB_LEVELS, "job-10k", now))
    return first_id, last


async def measure(run: Run) -> list[Row]:
    task_ids = (1, BULK_TASKS) if run.total else await load_own_data(run.db, run.ids["next_free"] + OWN_DATA_OFFSET)
    with (
        discarding_receiver() as endpoint,
        traced_gateway(run, endpoint) as (traced_url, traced),
        traced_gateway(run, endpoint, ratio_sampling, "sampled") as (sampled_url, sampled),
    ):
        await wait_until_up(f"{traced_url}/readyz", traced)
        await wait_until_up(f"{sampled_url}/readyz", sampled)
        plain = (run.gateway, run.cpu.gateways[0])
        rows = await tracing_rows(
            run.session, plain, (traced_url, traced.pid), task_ids=task_ids, sampled=(sampled_url, sampled.pid)
        )
        print(f"traced gateway peak RSS {peak_rss_mb(traced.pid):.0f} MB", flush=True)
        return rows
