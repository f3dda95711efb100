"""Two versions of the gateway on the same data in one run: `python -m bench.versions CHECKOUT [--full]
[--rounds N] [ROW ...]`.

CHECKOUT is another checkout of this repository with its own venv (CHECKOUT/.venv/bin/python): for example
`git worktree add --detach ../old REV` and `make .venv/.installed-dev` there. One embedded mongod is loaded once
with bench's data builders (bench/data.py) into the database of this checkout's gateway ("main"), then copied
server-side into a second database for the other version's ("old"): the same documents, and each version its own
task history writer. Both gateways are real server processes, each started with its own venv's python. Each row
(bench/version_rows.py) runs one warm-up round and `--rounds` rounds on both, alternating rounds and which side
goes first (bench/comparison.py), and reports each side's median, the ratio main/old and the gateway's CPU per
operation from /proc. A row the old version cannot serve is skipped, and the table says why.

By default the fleet holds 500 jobs of 100 tasks and no 100,000-task job (161,000 tasks: loaded in about a
minute); `--full` loads bench's full 1,111,000 tasks. ROW names (the rows' keys: get, roots, create, links,
graphql, walk, jobs; or parts of their names) run only those rows. `--py-spy DIR` samples each side's measured
rounds with py-spy into DIR (bench/spy.py), for finding out why a row moved."""

from __future__ import annotations

import argparse
import asyncio
import json
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path

import aiohttp
from pymongo import AsyncMongoClient

from bench.comparison import SIDES, Compared, Sample, compare, round_order
from bench.data import DB, FLEET_JOBS, Client, Database, load
from bench.measure import CONCURRENCY, ROUNDS, CpuMeter
from bench.processes import TOKEN, start, tree_cpu_s, wait_until_up
from bench.spy import py_spy, sampled
from bench.version_rows import ROWS, Gateway, VersionRow
from gateway.embedded import EmbeddedMongo, free_port

SMALL_FLEET_JOBS = 500
KEEPALIVE_S = 2.0
OLD_DB = f"{DB}_old"
HERE = Path(__file__).resolve().parent.parent
RESULTS = Path(__file__).parent / "versions.json"


def arguments(argv: Sequence[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.versions", description=__doc__.split("\n\n")[0])
    parser.add_argument("checkout", type=Path, help="the other version's checkout, with its .venv")
    parser.add_argument("--full", action="store_true", help="bench's full data (1,111,000 tasks)")
    parser.add_argument("--rounds", type=int, default=ROUNDS, help="measured rounds per side (after a warm-up)")
    parser.add_argument("--py-spy", type=Path, metavar="DIR", help="sample each gateway's rounds into DIR (py-spy)")
    parser.add_argument("rows", nargs="*", help="run only the rows whose names contain one of these")
    parsed = parser.parse_intermixed_args(argv)
    if not (parsed.checkout / ".venv" / "bin" / "python").exists():
        parser.error(f"{parsed.checkout}/.venv/bin/python not found: build its venv (make .venv/.installed-dev)")
    if parsed.rounds < 1:
        parser.error("--rounds must be at least 1")
    if parsed.py_spy is not None:
        py_spy()  # before minutes of loading, not after
        parsed.py_spy.mkdir(parents=True, exist_ok=True)
    return parsed


def chosen_rows(names: Sequence[str]) -> list[VersionRow]:
    """The rows named (by key, or by a part of their name when the name is no key: "jobs" is the jobs listing,
    not also the links row of "32 clients on 32 jobs"), in their order; all of them when none is."""
    keys = {row.key for row in ROWS}

    def named(row: VersionRow, name: str) -> bool:
        return name == row.key if name in keys else name in row.name

    rows = [row for row in ROWS if not names or any(named(row, name) for name in names)]
    if not rows:
        raise SystemExit(f"no row matches {list(names)}: the rows are {', '.join(row.key for row in ROWS)}")
    return rows


def commit_of(checkout: Path) -> str:
    return subprocess.run(
        ["git", "-C", str(checkout), "log", "-1", "--format=%h %cs"], capture_output=True, text=True, check=False
    ).stdout.strip()


async def copy_database(client: Client, source: str, target: str) -> None:
    """`target`'s tasks: a server-side copy of `source`'s (an aggregation's $out), so both versions read the same
    documents while each keeps its own history, leases and counters."""
    await client.drop_database(target)
    await (await client[source].tasks.aggregate([{"$match": {}}, {"$out": {"db": target, "coll": "tasks"}}])).to_list()


async def measure_row(
    row: VersionRow,
    session: aiohttp.ClientSession,
    gateways: tuple[Gateway, Gateway],
    pids: tuple[int, int],
    mongod: int,
    rounds: int,
    profiles: Path | None = None,
) -> Compared | str:
    """The row compared over `rounds` rounds after a warm-up, or why the old version cannot serve it. With
    `profiles`, each measured round of each side is sampled by py-spy into a file there (bench.spy)."""
    samples: tuple[list[Sample], list[Sample]] = ([], [])
    for round_number in range(1 + rounds):
        for side in round_order(round_number):
            if row.prepare is not None:
                await row.prepare(gateways[side])
            output = profiles / f"{row.key}-{SIDES[side]}-{round_number}.txt" if profiles and round_number else None
            async with sampled(pids[side], output):
                gateway_cpu, mongod_cpu = tree_cpu_s([pids[side]]), tree_cpu_s([mongod])
                try:
                    measured = await row.measure(session, gateways[side])
                except (AssertionError, KeyError, TypeError, aiohttp.ClientError) as error:
                    if side == 0 or round_number:
                        raise
                    first_line = (str(error).splitlines() or [""])[0][:160]
                    return f"not served by the old version: {type(error).__name__}: {first_line}"
                sample = Sample(
                    measured.figure,
                    measured.operations,
                    tree_cpu_s([pids[side]]) - gateway_cpu,
                    tree_cpu_s([mongod]) - mongod_cpu,
                )
            if round_number:  # round 0 warms up
                samples[side].append(sample)
    return compare(samples[0], samples[1], row.higher_is_better)


SETTLE_S = 120.0
IDLE_CPU_S = 0.05
"""A gateway is settled once it uses less CPU than this in a second (its lease renewals and polls only)."""


async def settled(pids: Sequence[int]) -> None:
    """Once every gateway is idle (less than IDLE_CPU_S of CPU in a second), at most SETTLE_S: work a gateway does
    after start-up on its own (its history writer catching up, index builds) would otherwise be billed to the
    first row's rounds, on one side only. Prints how long it took and what each used in its last second."""
    started = time.perf_counter()
    before = [tree_cpu_s([pid]) for pid in pids]
    while True:
        await asyncio.sleep(1.0)
        now = [tree_cpu_s([pid]) for pid in pids]
        used = [after - earlier for after, earlier in zip(now, before, strict=True)]
        waited = time.perf_counter() - started
        if all(cpu < IDLE_CPU_S for cpu in used) or waited >= SETTLE_S:
            idle = ", ".join(f"{name} {cpu:.2f} s" for name, cpu in zip(SIDES, used, strict=True))
            print(f"gateways settled after {waited:.0f} s (CPU in the last second: {idle})", flush=True)
            return
        before = now


def print_row(row: VersionRow, result: Compared | str) -> None:
    if isinstance(result, str):
        print(f"{row.name:56} skipped: {result}", flush=True)
        return
    main, old = result.main, result.old
    print(
        f"{row.name:56} {main.figure:10.1f} {old.figure:10.1f} {row.unit:>11} {result.ratio:6.2f} "
        f"({result.paired[0]:.2f}-{result.paired[1]:.2f})  {main.gateway_cpu_ms:8.2f} {old.gateway_cpu_ms:8.2f} "
        f"{result.cpu_ratio:6.2f}  {main.mongod_cpu_ms:8.2f} {old.mongod_cpu_ms:8.2f}",
        flush=True,
    )


HEADER = (
    f"{'row':56} {'main':>10} {'old':>10} {'unit':>11} {'main/old (rounds)':>18}  "
    f"{'gw CPU ms/op main':>8} {'old':>8} {'ratio':>6}  {'mongod ms/op main':>8} {'old':>8}"
)


def uptime() -> str:
    """The load averages over 1, 5 and 15 minutes, as `uptime` prints them."""
    return ", ".join(Path("/proc/loadavg").read_text().split()[:3])


async def main(argv: Sequence[str]) -> None:
    options = arguments(argv)
    rows = chosen_rows(options.rows)
    versions = {"main": commit_of(HERE), "old": commit_of(options.checkout)}
    print(f"main: {HERE} ({versions['main']}); old: {options.checkout} ({versions['old']})", flush=True)
    with tempfile.TemporaryDirectory(prefix="tracking-bench-versions-") as workdir:
        mongo = EmbeddedMongo(Path(workdir), cache_size_gb=1.0)
        uri = await mongo.start()
        client: Client = AsyncMongoClient(uri, w="majority", readConcernLevel="majority", tz_aware=True)
        processes: list[subprocess.Popen[bytes]] = []
        try:
            started = time.perf_counter()
            ids = await load(client[DB], *(() if options.full else (SMALL_FLEET_JOBS, 0)))
            await copy_database(client, DB, OLD_DB)
            tasks = await client[DB].tasks.estimated_document_count()
            fleet = FLEET_JOBS if options.full else SMALL_FLEET_JOBS
            print(f"loaded {tasks} tasks ({fleet} fleet jobs) and copied in {time.perf_counter() - started:.0f} s")
            sides = ((sys.executable, HERE, DB), (str(options.checkout / ".venv/bin/python"), options.checkout, OLD_DB))
            gateways: list[Gateway] = []
            for name, (python, checkout, db_name) in zip(SIDES, sides, strict=True):
                port = free_port()
                process = start("gateway", port, uri, Path(workdir) / name, {"TRACKING_MONGODB_DB": db_name},
                                python=python, cwd=checkout)  # fmt: skip
                processes.append(process)
                await wait_until_up(f"http://127.0.0.1:{port}/readyz", process)
                db: Database = client[db_name]
                cpu = CpuMeter((process.pid,), mongo.process.pid)
                gateways.append(Gateway(f"http://127.0.0.1:{port}", db, dict(ids), cpu))
            pids = (processes[0].pid, processes[1].pid)
            await settled(pids)
            results: dict[str, object] = {}
            load_before = uptime()
            print(f"load average before: {load_before}; {options.rounds} rounds per side, {CONCURRENCY} clients")
            print(HEADER)
            # Idle connections are let go before uvicorn's keep-alive (5 s) closes them: a request sent on a
            # connection the server is closing at that moment fails (ServerDisconnectedError).
            connector = aiohttp.TCPConnector(limit=CONCURRENCY, keepalive_timeout=KEEPALIVE_S)
            async with aiohttp.ClientSession(connector=connector, headers={"X-Auth-Token": TOKEN}) as session:
                for row in rows:
                    both = (gateways[0], gateways[1])
                    result = await measure_row(
                        row, session, both, pids, mongo.process.pid, options.rounds, options.py_spy
                    )
                    print_row(row, result)
                    results[row.name] = result if isinstance(result, str) else {"unit": row.unit, **asdict(result)}
            load_after = uptime()
            print(f"load average after: {load_after}")
            RESULTS.write_text(
                json.dumps(
                    {"versions": versions, "tasks": tasks, "rounds": options.rounds, "load_before": load_before,
                     "load_after": load_after, "rows": results},
                    indent=2,
                )
            )  # fmt: skip
            print(f"written to {RESULTS}")
        finally:
            for name, process in zip(SIDES, processes, strict=False):
                if process.poll() is not None:
                    print(f"the {name} gateway had exited, with {process.returncode}", flush=True)
                process.send_signal(signal.SIGTERM)
                process.wait(30)
            await client.close()
            await mongo.stop()


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1:]))
