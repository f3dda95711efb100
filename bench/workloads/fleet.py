"""Live updates for a fleet: 10,000 taskEvents subscriptions over 2,000 WebSocket connections, spread over 1,000
jobs, while 100 changes a second are made through REST. Measures what MongoDB holds for live updates
(connections and change-stream cursors at one subscription and at all of them), the delay from each write's
answer to its event's arrival (p50, p99), the gateway's CPU per delivered event and per change, REST GET p99
while it runs against idle, and the gateway's RSS per open subscription. The same writes are made first with no
subscription and with one (bench.workloads.fleet_phases): the reference that says how much of the CPU and of the
GET's latency is the writes' own and how much the fan-out's. Then, the fleet still open, the GET probe is timed in
turns with and without the writes (`in_turns`): the fleet's GET p99 against idle measured over the same minutes.

`python -m bench fleet` runs it in the benchmark; `python -m bench.workloads.fleet 0.01` runs it alone at a
hundredth of the scale (100 subscriptions on 20 connections over 10 jobs) on an embedded MongoDB of its own,
to check that it works; `python -m bench.workloads.fleet SCALE CLIENTS RATE` sets the client processes and the
changes a second (the same in every phase), and `--subscribers-apart` puts the subscribers on a second gateway
process: what the WebSockets on a process of their own would give (docs/decisions/subscription-fanout.md)."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
from pymongo import AsyncMongoClient
from pymongo.read_concern import ReadConcern

from bench.data import DB, Database, task_doc
from bench.measure import REPORT, Bound, Row, Run, Target, at_most
from bench.processes import TOKEN, start, wait_until_up
from bench.workloads.fleet_clients import ClientProcesses, Share
from bench.workloads.fleet_phases import PhaseFigures, idle_probe, in_turns, percentile, write_phase

SUBSCRIPTIONS, CONNECTIONS, JOBS = 10_000, 2_000, 1_000
CHANGES_PER_S = 100
SECONDS = 60
"""Each phase's length: at 20 GETs a second, its p99 is the twelfth slowest of about 1,200 GETs. At 30 s (the
sixth of 600) one slow stretch of mongod's decided the row: the fleet's GET p99 ranged from 5.9 to 18.9 ms over
eighteen runs, against 6.6-7.3 ms over three at 60 s (bench/README.md, "The fleet's GET row on a fresh
machine")."""
TURN_PAIRS = 6
"""Pairs of windows in the comparison in turns (bench.workloads.fleet_phases.in_turns), each window a sixth of a
phase: each side then has as many GETs as a phase."""
WARM_UP_S = 10
"""Unmeasured writes before the idle reference (`warm_up`)."""
CLIENT_PROCESSES = 4
"""Processes the subscribers are spread over (bench.workloads.fleet_clients)."""
ID_BASE = 7 * 10**12
QUERY = "subscription($jobId: String) { taskEvents(jobId: $jobId) { cursor task { status } } }"
P99_TARGET = Target((Bound("gateway", "<=", 250, "ms"),))
SUBSCRIBERS_APART = "--subscribers-apart"
"""Run alone with it, the subscribers connect to a second gateway process on the same database, the writes and
the GET probe to the first (`run_fleet`'s `subscribers_on`)."""


def rss_kb(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


async def live_connections_and_cursors(db: Database) -> tuple[int, int]:
    """Connections of the gateway's live-update client, and change streams open on the benchmark's tasks."""
    admin = db.client.get_database("admin", read_concern=ReadConcern("local"))
    connections = await (
        await admin.aggregate(
            [
                {"$currentOp": {"allUsers": True, "idleConnections": True}},
                {"$match": {"appName": "tracking-gateway-live"}},
            ]
        )
    ).to_list(None)
    stream = "cursor.originatingCommand.pipeline.0.$changeStream"
    cursors = await (
        await admin.aggregate(
            [
                {"$currentOp": {"idleCursors": True, "allUsers": True}},
                {"$match": {"ns": f"{db.name}.tasks", stream: {"$exists": True}}},
            ]
        )
    ).to_list(None)
    return len(connections), len(cursors)


async def until_history_holds(db: Database, entries: dict[str, Any], count: int) -> None:
    """Until the task history holds `count` entries matching `entries` (at most five minutes): the history
    writer catching up would otherwise be timed as the next phase's."""
    deadline = time.monotonic() + 300
    while await db.task_history.count_documents(entries) < count:
        if time.monotonic() > deadline:
            raise TimeoutError(f"the task history did not record {count} entries {entries} within five minutes")
        await asyncio.sleep(0.2)


async def warm_up(
    session: aiohttp.ClientSession, gateway: str, gateway_pid: int, db: Database, task_ids: list[int], rate: float
) -> None:
    """The gateway and MongoDB warmed by the writes the phases make, and the task history caught up with them and
    with the tasks' creation, before anything is timed: the idle reference is then a gateway in the state the
    phases after it meet, not one just started, and the history writer recording a thousand creations is not
    timed as the idle gateway's GETs."""
    created = {"task": {"$in": task_ids}, "kind": "CREATED", "at": {"$gte": datetime.now(UTC) - timedelta(seconds=60)}}
    warmed = await write_phase(session, gateway, gateway_pid, task_ids, rate, WARM_UP_S, "warm-up", 0.0)
    await until_history_holds(db, created, len(task_ids))
    await until_history_holds(db, {"status": {"$in": list(warmed.answered)}}, len(warmed.answered))


async def live_subscriptions(session: aiohttp.ClientSession, gateway: str) -> float:
    async with session.get(f"{gateway}/metrics") as response:
        for line in (await response.text()).splitlines():
            if line.startswith('tracking_subscriptions_open{phase="live"}'):
                return float(line.split()[-1])
    return 0.0


async def until_live(session: aiohttp.ClientSession, gateway: str, count: int) -> None:
    """Until the gateway's /metrics says `count` subscriptions are live (at most five minutes)."""
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        if await live_subscriptions(session, gateway) >= count:
            return
        await asyncio.sleep(0.2)


def delays_ms(answered: dict[str, float], arrivals: list[tuple[str, float]]) -> list[float]:
    """From each write's answer to each of its events' arrivals, sorted (an event may arrive before the
    answer: 0)."""
    return sorted(max(0.0, at - answered[status]) * 1000 for status, at in arrivals if status in answered)


async def metric_sums(session: aiohttp.ClientSession, gateway: str, prefixes: tuple[str, ...]) -> dict[str, float]:
    """The gateway's /metrics series starting with one of `prefixes`, by series (labels included)."""
    async with session.get(f"{gateway}/metrics") as response:
        lines = (await response.text()).splitlines()
    return {line.rsplit(" ", 1)[0]: float(line.rsplit(" ", 1)[1]) for line in lines if line.startswith(prefixes)}


SHARING = ("tracking_subscription_event_executions_total", "tracking_subscription_event_encodings_total")


async def run_fleet(
    session: aiohttp.ClientSession,
    gateway: str,
    gateway_pid: int,
    db: Database,
    scale: float = 1.0,
    client_processes: int = CLIENT_PROCESSES,
    rate: float | None = None,
    subscribers_on: tuple[str, int] | None = None,
) -> list[Row]:
    """The fleet's rows. The same writes (`rate` a second, by default CHANGES_PER_S scaled) are made three times:
    with no subscription open, with one, and with the whole fleet, so that the fleet's CPU per change and GET
    latency have the writes' own as their reference, measured in the same run. `subscribers_on`: another
    gateway process on the same database (its URL and pid) that the subscribers connect to, the writes and the
    GET probe staying on `gateway`: the WebSockets on a process of their own (the CPU rows are then `gateway`'s
    alone)."""
    subscriptions = max(1, int(SUBSCRIPTIONS * scale))
    connections, jobs = max(1, int(CONNECTIONS * scale)), max(1, int(JOBS * scale))
    client_processes = max(1, min(client_processes, connections))
    seconds = max(5.0, SECONDS * min(1.0, scale * 10))
    if rate is None:
        rate = max(10.0, CHANGES_PER_S * min(1.0, scale * 10))  # a small scale's few tasks would conflict at 100/s
    live, live_pid = subscribers_on or (gateway, gateway_pid)
    now = datetime.now(UTC)
    task_ids = [ID_BASE + job for job in range(jobs)]
    await db.tasks.delete_many({"_id": {"$gte": ID_BASE, "$lt": ID_BASE + JOBS}})
    await db.tasks.insert_many([task_doc(ID_BASE + job, f"fleet-live-{job}", now) for job in range(jobs)])
    await warm_up(session, gateway, gateway_pid, db, task_ids, rate)
    idle, cpu_per_get = await idle_probe(gateway, gateway_pid, ID_BASE, seconds)
    alone = await write_phase(session, gateway, gateway_pid, task_ids, rate, seconds, "W", cpu_per_get)
    rss_before = rss_kb(live_pid)
    one = ClientProcesses(1, Share(live, TOKEN, QUERY, 1, range(1), jobs, "fleet-live-"), 1)
    await one.subscribed()
    await until_live(session, live, 1)
    at_one = await live_connections_and_cursors(db)
    single = await write_phase(session, gateway, gateway_pid, task_ids, rate, seconds, "S", cpu_per_get)
    share = Share(live, TOKEN, QUERY, connections, range(subscriptions), jobs, "fleet-live-")
    clients = ClientProcesses(client_processes, share, subscriptions - 1)
    await clients.subscribed()
    await until_live(session, live, subscriptions)
    rss_subscribed = (rss_kb(live_pid) - rss_before) / subscriptions
    at_all = await live_connections_and_cursors(db)
    sharing_before = await metric_sums(session, live, SHARING)
    one.start_measuring()
    clients.start_measuring()
    fleet = await write_phase(session, gateway, gateway_pid, task_ids, rate, seconds, "F", cpu_per_get)
    sharing = await metric_sums(session, live, SHARING)
    # After the events: what each connection's compressor and each subscription's buffer have grown to.
    rss_per_subscription = (rss_kb(live_pid) - rss_before) / subscriptions

    async def history_caught_up(figures: PhaseFigures) -> None:
        await until_history_holds(db, {"status": {"$in": list(figures.answered)}}, len(figures.answered))

    turns = await in_turns(
        session, gateway, gateway_pid, task_ids, rate, TURN_PAIRS, seconds / TURN_PAIRS, history_caught_up
    )
    received = [*await one.stop(), *await clients.stop()]
    arrivals = [event for client in received for event in client.events]
    errors = sum(len(client.errors) for client in received)
    delays = delays_ms(fleet.answered, arrivals)
    # From the write sent: an upper bound of the delivery delay that stays meaningful when the writes' answers
    # are slow (an event then arrives before its write's answer, and the row above says 0).
    from_sent = delays_ms({status: fleet.sent[status] for status in fleet.answered}, arrivals)
    changes = fleet.made
    executed = sum(v - sharing_before.get(k, 0) for k, v in sharing.items() if "executions" in k and "executed" in k)
    encoded = sum(v - sharing_before.get(k, 0) for k, v in sharing.items() if "encodings" in k and "encoded" in k)
    busiest = max(client.cpu_s / max(client.wall_s, 1e-9) for client in received) * 100
    shape = f"{subscriptions} subscriptions, {connections} connections, {jobs} jobs, {rate:g} changes/s asked"
    if subscribers_on is not None:
        shape += "; the subscribers on a gateway process of their own"
    idle_p99 = percentile(idle, 0.99)
    return [
        Row(
            "fleet: live-update MongoDB connections",
            at_all[0],
            at_one[0],
            "conns",
            at_all[0] / max(1, at_one[0]),
            at_most(1.0),
            f"{subscriptions} subscriptions against 1",
        ),
        Row(
            "fleet: change-stream cursors",
            at_all[1],
            at_one[1],
            "cursors",
            at_all[1] / max(1, at_one[1]),
            at_most(1.0),
            f"{subscriptions} subscriptions against 1",
        ),
        Row("fleet: delivery p50 (write answered -> event)", percentile(delays, 0.5), 0, "ms", 0, REPORT, shape),
        Row(
            "fleet: delivery p99 (write answered -> event)",
            percentile(delays, 0.99),
            250,
            "ms",
            percentile(delays, 0.99) / 250,
            P99_TARGET,
            f"{len(delays)} deliveries, {errors} errors, {fleet.made} of {fleet.asked} changes made "
            f"({fleet.made / fleet.writing_s:.0f}/s)",
        ),
        Row(
            "fleet: delivery p99 (write sent -> event)",
            percentile(from_sent, 0.99),
            0,
            "ms",
            0,
            REPORT,
            f"p50 {percentile(from_sent, 0.5):.0f} ms; includes the write's own time",
        ),
        Row(
            "fleet: gateway CPU per delivered event",
            (fleet.cpu_s - fleet.probe_cpu_s) / max(1, len(delays)) * 1e6,
            0,
            "us",
            0,
            REPORT,
            "the CPU per change over the deliveries: an upper bound",
        ),
        Row(
            "fleet: gateway CPU per change (fleet vs 1 subscription)",
            fleet.cpu_per_change_ms,
            single.cpu_per_change_ms,
            "ms",
            fleet.cpu_per_change_ms / single.cpu_per_change_ms,
            REPORT,
            f"same writes, the GET probe's CPU left out; no subscription: {alone.cpu_per_change_ms:.2f} ms",
        ),
        Row(
            "fleet: selection executions per change",
            executed / max(1, changes),
            len(delays) / max(1, changes),
            "runs",
            executed / max(1, len(delays)),
            REPORT,
            f"against deliveries per change; {encoded / max(1, changes):.2f} encodings per change",
        ),
        Row(
            "fleet: REST GET p99 while it runs",
            fleet.get_p99_ms,
            idle_p99,
            "ms",
            fleet.get_p99_ms / idle_p99,
            at_most(1.5),
            "against idle",
        ),
        Row(
            "fleet: REST GET p99 in turns with idle",
            percentile(turns.busy, 0.99),
            percentile(turns.idle, 0.99),
            "ms",
            percentile(turns.busy, 0.99) / percentile(turns.idle, 0.99),
            at_most(1.5),
            f"the fleet open throughout, {TURN_PAIRS} pairs of windows with the writes and without "
            f"({len(turns.busy)} and {len(turns.idle)} GETs)",
        ),
        Row(
            "fleet: REST GET p99, the same writes at 1 subscription",
            single.get_p99_ms,
            idle_p99,
            "ms",
            single.get_p99_ms / idle_p99,
            REPORT,
            f"against idle; no subscription: {alone.get_p99_ms:.1f} ms ({alone.get_p99_ms / idle_p99:.1f}x)",
        ),
        Row(
            "fleet: write p99 (sent -> answered), fleet vs 1 subscription",
            percentile(fleet.write_ms(), 0.99),
            percentile(single.write_ms(), 0.99),
            "ms",
            percentile(fleet.write_ms(), 0.99) / percentile(single.write_ms(), 0.99),
            REPORT,
            f"no subscription: {percentile(alone.write_ms(), 0.99):.0f} ms",
        ),
        Row(
            "fleet: gateway RSS per open subscription",
            rss_per_subscription,
            0,
            "KB",
            0,
            REPORT,
            f"after the fleet's events; {rss_subscribed:.1f} KB once subscribed",
        ),
        Row(
            "fleet: busiest client process CPU",
            busiest,
            100,
            "%",
            busiest / 100,
            REPORT,
            f"{client_processes} client processes: near 100% the client, not the gateway, sets the pace",
        ),
    ]


async def measure(run: Run) -> list[Row]:
    return await run_fleet(run.session, run.gateway, run.cpu.gateways[0], run.db)


async def _alone(scale: float, client_processes: int, rate: float | None, subscribers_apart: bool) -> None:
    from gateway.embedded import EmbeddedMongo, free_port

    with tempfile.TemporaryDirectory(prefix="tracking-fleet-") as workdir:
        mongo = EmbeddedMongo(Path(workdir), cache_size_gb=0.25)
        uri = await mongo.start()
        client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(uri, tz_aware=True)
        ports = [free_port() for _ in range(2 if subscribers_apart else 1)]
        gateways = [start("gateway", port, uri, Path(workdir) / f"gw{n}") for n, port in enumerate(ports)]
        try:
            for port, gateway in zip(ports, gateways, strict=True):
                await wait_until_up(f"http://127.0.0.1:{port}/readyz", gateway)
                print(f"gateway pid {gateway.pid} on port {port}", file=sys.stderr, flush=True)
            apart = (f"http://127.0.0.1:{ports[1]}", gateways[1].pid) if subscribers_apart else None
            async with aiohttp.ClientSession(headers={"X-Auth-Token": TOKEN}) as session:
                rows = await run_fleet(
                    session,
                    f"http://127.0.0.1:{ports[0]}",
                    gateways[0].pid,
                    client[DB],
                    scale,
                    client_processes,
                    rate,
                    apart,
                )
            for row in rows:
                print(f"{row.workload:50} {row.gateway:10.2f} {row.unit:8} ref {row.reference:8.2f}  {row.note}")
        finally:
            for gateway in gateways:
                gateway.terminate()
            for gateway in gateways:
                try:
                    gateway.wait(60)
                except subprocess.TimeoutExpired:
                    gateway.kill()
            await client.close()
            await mongo.stop()


if __name__ == "__main__":
    arguments = [argument for argument in sys.argv[1:] if argument != SUBSCRIBERS_APART]
    asyncio.run(
        _alone(
            float(arguments[0]) if arguments else 0.01,
            int(arguments[1]) if len(arguments) > 1 else CLIENT_PROCESSES,
            float(arguments[2]) if len(arguments) > 2 else None,
            SUBSCRIBERS_APART in sys.argv[1:],
        )
    )
