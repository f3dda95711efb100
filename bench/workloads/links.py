"""PUT /tracking/task/{id}/next: one sequential client against one sequential raw client, 32 clients on 32 jobs
against 32 concurrent raw clients on 32 jobs (like with like: the same concurrency over the same kind of jobs,
judged by CPU per link, both sides in alternate rounds), and 32 clients on one job and over two gateways.
`python -m bench links-cpu` measures the judged row alone."""

from __future__ import annotations

import asyncio
import statistics
import time
from dataclasses import dataclass
from datetime import UTC, datetime

import aiohttp
from bson.int64 import Int64
from pymongo.asynchronous.client_session import AsyncClientSession
from pymongo.write_concern import WriteConcern

from bench.data import Client, Database, task_doc
from bench.measure import CONCURRENCY, REPORT, ROUNDS, CpuMeter, Row, Run, at_most, median_of, medians_alternating

MAJORITY = WriteConcern("majority")
CPU_OF_RAW = at_most(2.0)
"""Link additions are judged by CPU per addition: on 2 shared cores, throughput cannot grow with clients or
gateway instances (every process, mongod included, shares the same two cores), so the throughput rows beside
it are reported, not judged."""


class LinkLoad:
    """Link additions between fresh task pairs, each client adding its own pairs one after another."""

    def __init__(self, session: aiohttp.ClientSession, db: Database, ids: dict[str, int], cpu: CpuMeter) -> None:
        self.session, self.db, self.cpu = session, db, cpu
        self.cpu_ms: list[float] = []
        """CPU milliseconds per link of each measure since the caller last cleared it."""
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

        started, cpu = time.perf_counter(), self.cpu.serving()
        await asyncio.gather(*(client(number) for number in range(clients)))
        self.cpu_ms.append((self.cpu.serving() - cpu) * 1000 / (clients * per_client))
        return clients * per_client / (time.perf_counter() - started)

    async def raw_rate(self, client: Client, clients: int, per_client: int) -> float:
        """The same additions as `rate`'s (`clients` clients, each on pairs of a job of its own) as two-update
        majority transactions straight through the driver, the clients concurrent, each adding its pairs one
        after another; `with_transaction` retries a transient error (a write conflict) as the driver does."""
        work = await self.pairs(clients, per_client, one_job=False)

        async def raw_client(pairs: list[tuple[int, int]]) -> None:
            for a, b in pairs:

                async def both(session: AsyncClientSession, a: int = a, b: int = b) -> None:
                    await self.db.tasks.update_one({"_id": a}, {"$addToSet": {"nexts": Int64(b)}}, session=session)
                    await self.db.tasks.update_one({"_id": b}, {"$addToSet": {"previous": Int64(a)}}, session=session)

                async with client.start_session() as session:
                    await session.with_transaction(both, write_concern=MAJORITY)

        started, cpu = time.perf_counter(), self.cpu.direct()
        await asyncio.gather(*(raw_client(pairs) for pairs in work))
        self.cpu_ms.append((self.cpu.direct() - cpu) * 1000 / (clients * per_client))
        return clients * per_client / (time.perf_counter() - started)


@dataclass
class Concurrent:
    """The judged comparison: 32 clients on 32 jobs through one gateway against 32 concurrent raw clients on 32
    jobs, in alternate rounds (the same stretch of mongod's state for both sides), each side's medians."""

    rate: float
    raw_rate: float
    cpu_ms: float
    raw_cpu_ms: float

    def cpu_row(self) -> Row:
        return Row("links: CPU per link, 32 clients on 32 jobs vs 32 raw clients' 2-update transactions",
                   self.cpu_ms, self.raw_cpu_ms, "CPU ms", self.cpu_ms / self.raw_cpu_ms, CPU_OF_RAW,
                   "gateway + mongod vs driver clients + mongod, the same concurrency and jobs")  # fmt: skip


async def concurrent(load: LinkLoad, client: Client, gateway: str) -> Concurrent:
    rates: list[float] = []
    raw_rates: list[float] = []

    async def ours() -> float:
        rates.append(await load.rate([gateway], CONCURRENCY, 25))
        return load.cpu_ms[-1]

    async def raw() -> float:
        raw_rates.append(await load.raw_rate(client, CONCURRENCY, 25))
        return load.cpu_ms[-1]

    cpu_ms, raw_cpu_ms = await medians_alternating(ours, raw, ROUNDS)
    return Concurrent(statistics.median(rates[1:]), statistics.median(raw_rates[1:]), cpu_ms, raw_cpu_ms)


async def link_rows(
    session: aiohttp.ClientSession,
    gateways: list[str],
    db: Database,
    client: Client,
    ids: dict[str, int],
    cpu: CpuMeter,
) -> list[Row]:
    """Links/s: one sequential client against one raw one; 32 clients on 32 jobs against 32 raw clients on 32
    jobs; on one job; over two gateways. CPU per link (gateways and mongod) of 32 clients on 32 jobs against
    that of 32 concurrent raw clients per transaction (this process and mongod), the same jobs' shape."""
    load = LinkLoad(session, db, ids, cpu)
    one, two = gateways[:1], gateways[:2]
    sequential = await median_of(lambda: load.rate(one, 1, 150), rounds=3)
    raw = await median_of(lambda: load.raw_rate(client, 1, 150), rounds=3, warmups=0)
    judged = await concurrent(load, client, gateways[0])
    distinct = judged.rate
    one_job = await median_of(lambda: load.rate(one, CONCURRENCY, 25, one_job=True), rounds=3)
    both = await median_of(lambda: load.rate(two, CONCURRENCY, 25), rounds=3)
    return [
        Row("links: 1 sequential client vs 1 raw client's 2-update transactions", sequential, raw, "links/s",
            sequential / raw, REPORT, "the gateway also checks ids and cycles"),
        Row("links: 32 clients on 32 jobs vs 32 raw clients on 32 jobs", distinct, judged.raw_rate, "links/s",
            distinct / judged.raw_rate, REPORT),
        Row("links: 32 clients on 32 jobs vs 1 sequential client", distinct, sequential, "links/s",
            distinct / sequential, REPORT),
        judged.cpu_row(),
        Row("links: 32 clients on one job vs on 32 jobs", one_job, distinct, "links/s", one_job / distinct,
            REPORT, "one job's additions take turns"),
        Row("links: 2 gateways vs 1, 32 clients on 32 jobs", both, distinct, "links/s", both / distinct,
            REPORT),
    ]  # fmt: skip


async def measure(run: Run) -> list[Row]:
    return await link_rows(run.session, [run.gateway, run.second_gateway], run.db, run.client, run.ids, run.cpu)


async def measure_cpu(run: Run) -> list[Row]:
    """The judged row alone (`python -m bench links-cpu`)."""
    load = LinkLoad(run.session, run.db, run.ids, run.cpu)
    return [(await concurrent(load, run.client, run.gateway)).cpu_row()]
