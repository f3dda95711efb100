"""`make bench` (or `python -m bench get walk …` for some workloads): start a real MongoDB (the embedded
one) and the gateway as a real server process, load data, and measure each workload (bench/workloads/)
against references taken in the same run. Prints one table and writes bench/results.json. Figures are
medians over rounds, after a warm-up; ratios are what the targets speak of.

`python -m bench --without-data links create` (or `links-cpu`, the judged link row alone, or `tracing`) skips
loading the million tasks (minutes): for the workloads that write tasks of their own, to measure their rows
alone."""

from __future__ import annotations

import asyncio
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import aiohttp
from pymongo import AsyncMongoClient

from bench.data import DB, TOTAL_TASKS, Client, load, load_nothing
from bench.measure import CONCURRENCY, Bound, CpuMeter, Row, Run, Target
from bench.processes import TOKEN, peak_rss_mb, start, wait_until_up
from bench.report import write_results
from bench.workloads import ALONE, OWN_DATA, WORKLOADS, scale
from gateway.embedded import EmbeddedMongo, free_port

RSS_TARGET = Target((Bound("gateway", "<=", 250, "MB"),))


WITHOUT_DATA = "--without-data"


async def main(arguments: list[str]) -> None:
    """Run the workloads named in `arguments` (all of them, and the scale rows, when none is), on the loaded
    data unless WITHOUT_DATA is among them."""
    names = [name for name in arguments if name != WITHOUT_DATA]
    with_data = WITHOUT_DATA not in arguments and not (names and set(names) <= OWN_DATA)
    if not with_data and not names:
        raise SystemExit(
            f"{WITHOUT_DATA} needs the workloads to run (links, create, tracing: those that bring their own tasks)"
        )
    runnable = WORKLOADS | ALONE
    unknown = set(names) - set(runnable)
    if unknown:
        raise SystemExit(f"unknown workloads {sorted(unknown)}: choose from {', '.join(runnable)}")
    with tempfile.TemporaryDirectory(prefix="tracking-bench-") as workdir:
        mongo = EmbeddedMongo(Path(workdir), cache_size_gb=1.0)
        uri = await mongo.start()
        client: Client = AsyncMongoClient(uri, w="majority", readConcernLevel="majority", tz_aware=True)
        db = client[DB]
        processes: list[subprocess.Popen[bytes]] = []
        try:
            total = TOTAL_TASKS if with_data else 0
            print(f"loading {total} tasks ...", flush=True)
            load_started = time.perf_counter()
            ids = await load(db) if with_data else await load_nothing(db)
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
            connector = aiohttp.TCPConnector(limit=CONCURRENCY)
            async with aiohttp.ClientSession(connector=connector, headers={"X-Auth-Token": TOKEN}) as session:
                cpu = CpuMeter((gateway.pid, second.pid), mongo.process.pid)
                run = Run(
                    session,
                    gateway_url,
                    second_url,
                    reference_url,
                    db,
                    client,
                    ids,
                    load_s,
                    total,
                    cpu,
                    uri,
                    Path(workdir),
                )
                rows: list[Row] = [] if names else await scale.measure(run)
                for name in names or list(WORKLOADS):
                    rows.extend(await runnable[name](run))
                    print(f"measured {name}", flush=True)
            rss = peak_rss_mb(gateway.pid)
            rows.append(Row("gateway peak RSS", rss, 250, "MB", rss / 250, RSS_TARGET))
        finally:
            for process in processes:
                process.send_signal(signal.SIGTERM)
                process.wait(30)
            await client.close()
            await mongo.stop()
    write_results(rows)


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1:]))
