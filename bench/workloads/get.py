"""GET /tracking/task/{id} on random ids: the gateway against the raw driver and the hand-written endpoint,
with aiohttp and (when installed) wrk."""

from __future__ import annotations

import random
import shutil
import statistics
import subprocess
import tempfile
from collections.abc import Awaitable, Callable

import aiohttp

from bench.data import BULK_TASKS, Database
from bench.measure import CONCURRENCY, REPORT, ROUNDS, Row, Run, at_least, rate
from bench.processes import TOKEN

AS_FAST_AS_HAND_WRITTEN = at_least(1.1)


def task_reader(session: aiohttp.ClientSession, base: str) -> Callable[[int], Awaitable[None]]:
    """One GET of a random bulk task under `base` (the gateway's /tracking, or the hand-written endpoint) per call,
    for `bench.measure.rate`."""

    async def read(_: int) -> None:
        async with session.get(f"{base}/task/{random.randint(1, BULK_TASKS)}") as response:
            assert response.status == 200, f"GET {base}/task/{{id}}: {response.status}"
            await response.read()

    return read


async def get_task_rows(session: aiohttp.ClientSession, gateway: str, reference: str, db: Database) -> list[Row]:
    requests = 4000

    async def raw_read(_: int) -> None:
        doc = await db.tasks.find_one({"_id": random.randint(1, BULK_TASKS)})
        assert doc is not None

    # Interleaved rounds: on a shared 2-core machine, drift between three back-to-back blocks of rounds
    # moved the ratios by more than the differences being measured.
    measures: dict[str, Callable[[], Awaitable[float]]] = {
        "ours": lambda: rate(task_reader(session, f"{gateway}/tracking"), requests),
        "hand": lambda: rate(task_reader(session, reference), requests),
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
        Row("GET /tracking/task/{id} vs raw driver", ours, raw, "req/s", ours / raw, REPORT, "aiohttp load"),
        Row("GET /tracking/task/{id} vs hand-written", ours, hand, "req/s", ours / hand, AS_FAST_AS_HAND_WRITTEN,
            "aiohttp load"),
    ]  # fmt: skip
    if shutil.which("wrk") is None:
        print("wrk not found (Debian package wrk): GET rows use the aiohttp load only", flush=True)
        return rows
    # Interleaved too, for the same reason as above.
    wrk_rounds = [(wrk_rate(f"{gateway}/tracking"), wrk_rate(reference)) for _ in range(ROUNDS)]
    wrk_ours = statistics.median(ours for ours, _ in wrk_rounds)
    wrk_hand = statistics.median(hand for _, hand in wrk_rounds)
    return [
        *rows,
        Row("GET /tracking/task/{id} (wrk) vs raw driver", wrk_ours, raw, "req/s", wrk_ours / raw, REPORT,
            "wrk -c32; raw: in-process reads"),
        Row("GET /tracking/task/{id} (wrk) vs hand-written (wrk)", wrk_ours, wrk_hand, "req/s", wrk_ours / wrk_hand,
            AS_FAST_AS_HAND_WRITTEN, "wrk -c32"),
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


async def measure(run: Run) -> list[Row]:
    return await get_task_rows(run.session, run.gateway, run.reference, run.db)
