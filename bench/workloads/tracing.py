"""The cost of tracing at full sampling, on the GET and GraphQL job rows. The workload starts four gateway
processes alike on the same data: untraced, traced (OTEL_TRACES_SAMPLER=always_on, to an OTLP/HTTP receiver on
loopback that discards what it gets), sampled (SAMPLED_RATIO of requests, parentbased_traceidratio: the
documented lever where full sampling costs too much; its GETs only) and a second untraced one, the A/A control:
its figures over the first untraced one's show the method's own bias and spread, which a row must exceed to say
anything. The figure is each gateway's CPU seconds per request (/proc: its threads included), at the same
concurrency. In each round the sides take turns in short blocks (BLOCKS turns at the GETs, then one job each
turn), each side's CPU counted over the whole phase, so that every side is measured over the same seconds of a
drifting load while each block serves one gateway at the load's full concurrency; the turns go in an order
balanced over rounds (bench.paired_rounds: each side in each position, and after each other side, equally
often). Each row is the median of the rounds' paired ratios (a side's round over the untraced side's same
round), given with their quartiles and range. The note gives the machine's load average (`uptime`'s first
figure) before and after: CPU per request on a busy machine is higher for every side, and less comparable
between runs. Spans the traced gateway dropped (a full queue) are noted: a cost that dropped spans would look
smaller than it is.

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
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import aiohttp
import orjson

from bench.data import BULK_TASKS, JOB_LEVELS, JOB_TASKS, Database, layered_job, task_doc
from bench.measure import CONCURRENCY, REPORT, Row, Run, Target, at_most, rate
from bench.paired_rounds import PairedRatios, balanced_order
from bench.processes import TOKEN, peak_rss_mb, start, tree_cpu_s, wait_until_up
from bench.workloads.graphql_job import JOB_QUERY
from gateway.embedded import free_port

UNDER_TEN_PERCENT = at_most(1.10)
TRACING_ROUNDS = 12
"""Measured rounds (after a warm-up): a multiple of the four sides, so that each is measured in each position of
a round equally often (bench.paired_rounds.balanced_order)."""
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
"""The traced gateways' OTEL_BSP_SCHEDULE_DELAY: a phase's last spans leave within it, so their encoding and
sending fall in the phase's own measure (SETTLE_S), not the next one's (the default, 5 s, left a GET load's last
spans to be exported during the GraphQL load). Under load, exports are of full batches either way."""
SETTLE_S = 4 * EXPORT_DELAY_MS / 1000
"""Idle time after each phase (the GETs, the jobs), inside its measure, for every side: the traced gateways'
export threads send what the phase left queued."""


CLIENT_KEEPALIVE_S = 1.0
"""How long the workload's client keeps an idle connection: less than the gateway's (uvicorn's 5 s), so that a
connection the gateway closed while the other sides were measured is never reused (a POST on it fails)."""


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


@dataclass(frozen=True)
class Side:
    """One gateway process of the workload: its name in the rows, base URL and pid, and whether its GraphQL job
    is measured (the sampled side's GETs only: the lever is for the cheapest requests)."""

    name: str
    base: str
    pid: int
    jobs: bool = True


BLOCKS = 6
"""Turns the sides take at the GETs in a round (each block a sixth of a side's GETs): short, so that every side
is measured over the same seconds of a drifting load, and long enough that a block's first requests after its
gateway idled weigh little."""

UNTRACED, CONTROL, TRACED, SAMPLED = "untraced", "control", "traced", "sampled"


async def tracing_rows(
    session: aiohttp.ClientSession,
    sides: list[Side],
    *,
    task_ids: tuple[int, int] = (1, BULK_TASKS),
    job_tasks: int = JOB_TASKS,
    job_query: str = JOB_QUERY,
    requests: int = 3000,
    jobs: int = 10,
    rounds: int = TRACING_ROUNDS,
) -> list[Row]:
    """The rows from the gateways `sides` (UNTRACED and TRACED, CONTROL and SAMPLED if there) on the same data
    (the tasks `task_ids` first to last, the job `job_query` reads with `job_tasks` tasks), measured in the same
    rounds after a warm-up one, the sides' turns in a balanced order. Each row is the median of the rounds'
    paired ratios (a side's round over the untraced side's same round): a drift of the machine's load moves both
    figures of a pair alike."""

    def reader(base: str) -> Callable[[int], Awaitable[None]]:
        async def read(_: int) -> None:
            async with session.get(f"{base}/tracking/task/{random.randint(*task_ids)}") as response:
                assert response.status == 200, response.status
                await response.read()

        return read

    async def one_job(base: str) -> None:
        async with session.post(f"{base}/graphql", json={"query": job_query}) as response:
            body = orjson.loads(await response.read())
        assert len(body["data"]["job"]["tasks"]) == job_tasks, body.get("errors")

    async def alternating_round(order: list[Side]) -> list[tuple[Side, float, float | None]]:
        """The sides take turns in short blocks (BLOCKS of GETs each, then one job each, turn after turn), each
        side's CPU counted over the whole phase: every side is measured over the same seconds, and each block
        serves one gateway at the load's full concurrency."""
        cpu = {side.name: tree_cpu_s([side.pid]) for side in order}
        for block in range(BLOCKS):
            for side in order if block % 2 == 0 else order[::-1]:
                await rate(reader(side.base), requests // BLOCKS)
        await asyncio.sleep(SETTLE_S)
        after_gets = {side.name: tree_cpu_s([side.pid]) for side in order}
        with_jobs = [side for side in order if side.jobs]
        for job in range(jobs):
            for side in with_jobs if job % 2 == 0 else with_jobs[::-1]:
                await one_job(side.base)
        await asyncio.sleep(SETTLE_S)
        after_jobs = {side.name: tree_cpu_s([side.pid]) for side in order}
        return [
            (
                side,
                (after_gets[side.name] - cpu[side.name]) / (requests // BLOCKS * BLOCKS),
                (after_jobs[side.name] - after_gets[side.name]) / jobs if side.jobs else None,
            )
            for side in order
        ]

    figures: dict[tuple[str, str], list[float]] = {}
    load_before = os.getloadavg()[0]
    for round_number in range(rounds + 1):  # round 0 warms up
        order = [sides[index] for index in balanced_order(len(sides), round_number)]
        measured = await alternating_round(order)
        for position, (side, side_get, side_job) in enumerate(measured):
            print(f"tracing round {round_number} position {position} {side.name}: GET {side_get * 1e6:.1f} µs"
                  + (f", job {side_job * 1e3:.2f} ms" if side_job is not None else ""), flush=True)  # fmt: skip
            if round_number:
                figures.setdefault(("get", side.name), []).append(side_get)
                if side_job is not None:
                    figures.setdefault(("job", side.name), []).append(side_job)
    names = {side.name: side for side in sides}
    note = (
        f"gateway CPU per request (user + system, /proc, its threads included), {rounds} rounds of turns in a "
        f"balanced order after a warm-up; load average {load_before:.1f} -> {os.getloadavg()[0]:.1f}; "
        f"{await dropped_spans(session, names[TRACED].base)} spans dropped"
    )

    def row(load: str, side: str, title: str, target: Target, remark: str = "") -> Row:
        ours, untraced = figures[(load, side)], figures[(load, UNTRACED)]
        paired = PairedRatios.of(ours, untraced)
        return Row(title, statistics.median(ours) * 1e3, statistics.median(untraced) * 1e3, "CPU ms", paired.median,
                   target, f"{remark}{paired.text()}; {note}")  # fmt: skip

    rows = [
        row("get", TRACED, "GET /tracking/task/{id} traced (always_on) vs untraced", UNDER_TEN_PERCENT),
        row("job", TRACED, "GraphQL 10k-task job traced (always_on) vs untraced", UNDER_TEN_PERCENT),
    ]
    if SAMPLED in names:
        title = f"GET /tracking/task/{{id}} sampled ({SAMPLED_RATIO:.0%}) vs untraced"
        lever = f"parentbased_traceidratio {SAMPLED_RATIO}, the documented lever; "
        rows.append(row("get", SAMPLED, title, UNDER_TEN_PERCENT, lever))
    if CONTROL in names:
        remark = "A/A: two untraced gateway processes, the method's own bias and spread; "
        rows.append(row("get", CONTROL, "A/A control: GET untraced vs untraced (another process)", REPORT, remark))
        rows.append(row("job", CONTROL, "A/A control: GraphQL 10k-task job untraced vs untraced", REPORT, remark))
    return rows


def untraced(_: str) -> dict[str, str]:
    return {}


@contextmanager
def gateway_process(
    run: Run, endpoint: str, name: str, sampling: Callable[[str], dict[str, str]]
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


SIDES: tuple[tuple[str, Callable[[str], dict[str, str]], bool], ...] = (
    (UNTRACED, untraced, True),
    (TRACED, full_sampling, True),
    (SAMPLED, ratio_sampling, False),
    (CONTROL, untraced, True),
)
"""The workload's gateways in the order they start (the A/A control last: if starting later biased a side, the
control row would show it), each with its environment and whether its GraphQL job is measured."""


async def measure(run: Run) -> list[Row]:
    """The rows from four gateway processes the workload starts alike (the run's own gateway, which the other
    workloads have used for minutes, is not one of them: its heap and history are not the traced one's)."""
    task_ids = (1, BULK_TASKS) if run.total else await load_own_data(run.db, run.ids["next_free"] + OWN_DATA_OFFSET)
    with ExitStack() as stack:
        endpoint = stack.enter_context(discarding_receiver())
        started = [
            (name, jobs, *stack.enter_context(gateway_process(run, endpoint, name, environment)))
            for name, environment, jobs in SIDES
        ]
        for _, _, url, process in started:
            await wait_until_up(f"{url}/readyz", process)
        sides = [Side(name, url, process.pid, jobs) for name, jobs, url, process in started]
        connector = aiohttp.TCPConnector(limit=CONCURRENCY, keepalive_timeout=CLIENT_KEEPALIVE_S)
        async with aiohttp.ClientSession(connector=connector, headers={"X-Auth-Token": TOKEN}) as session:
            rows = await tracing_rows(session, sides, task_ids=task_ids)
        traced = next(side for side in sides if side.name == TRACED)
        print(f"traced gateway peak RSS {peak_rss_mb(traced.pid):.0f} MB", flush=True)
        return rows
