"""How the benchmark measures and judges: rates, medians and timings, and the rows of the table with their
targets."""

from __future__ import annotations

import asyncio
import operator
import os
import statistics
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, Literal

import aiohttp

from bench.data import Client, Database, Doc
from bench.processes import tree_cpu_s

CONCURRENCY = 32
"""Requests in flight at once from the load generator (and wrk's connections)."""
ROUNDS = 5
"""Rounds of each measure after one warm-up; the figure is their median."""

_COMPARE = {"<": operator.lt, "<=": operator.le, ">=": operator.ge}


@dataclass(frozen=True)
class Bound:
    """One bound a row's figure must keep: `figure` is "ratio" (gateway / reference), "gateway" (the gateway's
    own figure, in `unit`) or "reads" (MongoDB reads the measure made)."""

    figure: Literal["ratio", "gateway", "reads"]
    comparison: Literal["<", "<=", ">="]
    limit: float
    unit: str = ""

    def text(self) -> str:
        return f"{self.comparison} {self.limit}{f' {self.unit}' if self.unit else ''}"

    def holds(self, figures: dict[str, float | None]) -> bool:
        value = figures[self.figure]
        return value is not None and _COMPARE[self.comparison](value, self.limit)


@dataclass(frozen=True)
class Target:
    """What a row should reach, written once: the table prints `text()` and judges with `met()`. No bounds:
    the row is reported only (`remark` says what to look at)."""

    bounds: tuple[Bound, ...] = ()
    remark: str = ""

    def text(self) -> str:
        return "; ".join(part for part in (" and ".join(b.text() for b in self.bounds), self.remark) if part)

    def met(self, figures: dict[str, float | None]) -> bool | None:
        return all(bound.holds(figures) for bound in self.bounds) if self.bounds else None


REPORT = Target(remark="report")


def at_least(ratio: float) -> Target:
    return Target((Bound("ratio", ">=", ratio),))


def at_most(ratio: float) -> Target:
    return Target((Bound("ratio", "<=", ratio),))


@dataclass
class Row:
    """One line of the table: the gateway's figure, the reference's, in `unit`, and their ratio."""

    workload: str
    gateway: float
    reference: float
    unit: str
    ratio: float
    target: Target = REPORT
    note: str = ""
    reads: int | None = None

    @property
    def met(self) -> bool | None:
        return self.target.met({"ratio": self.ratio, "gateway": self.gateway, "reads": self.reads})

    def as_json(self) -> dict[str, Any]:
        """The row as bench/results.json keeps it."""
        return {
            "workload": self.workload,
            "gateway": self.gateway,
            "reference": self.reference,
            "unit": self.unit,
            "ratio": self.ratio,
            "target": self.target.text(),
            "met": self.met,
            "note": self.note,
        }


@dataclass(frozen=True)
class CpuMeter:
    """CPU seconds used so far: by what serves the API (the gateway processes and mongod) or by a direct
    driver client (this process and mongod). Differences over a measure, per operation, are what write
    workloads are judged by: on two shared cores, throughput cannot grow with clients."""

    gateways: tuple[int, ...]
    mongod: int

    def serving(self) -> float:
        return tree_cpu_s([*self.gateways, self.mongod])

    def direct(self) -> float:
        own = os.times()
        return tree_cpu_s([self.mongod]) + own.user + own.system


@dataclass
class Run:
    """What every workload measures against: the servers' base URLs, the benchmark's HTTP session (it sends the
    token), the database through the driver, and ids the loaded data starts at (`walk_root`, `next_free`)."""

    session: aiohttp.ClientSession
    gateway: str
    second_gateway: str
    reference: str
    db: Database
    client: Client
    ids: dict[str, int]
    load_s: float
    total: int
    cpu: CpuMeter
    uri: str
    """MongoDB, for workloads that start servers of their own (tracing)."""
    workdir: Path


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


async def medians_alternating(
    first: Callable[[], Awaitable[float]],
    second: Callable[[], Awaitable[float]],
    rounds: int = ROUNDS,
    warmups: int = 1,
) -> tuple[float, float]:
    """The medians of `first` and `second` measured in alternate rounds (first, second, first, …): a workload
    whose figures drift with MongoDB's state (a checkpoint, the cache filling after the load) has both sides
    measured in the same stretch of it rather than one after the other."""
    firsts: list[float] = []
    seconds: list[float] = []
    for round_ in range(warmups + rounds):
        one, two = await first(), await second()
        if round_ >= warmups:
            firsts.append(one)
            seconds.append(two)
    return statistics.median(firsts), statistics.median(seconds)


async def timed(action: Callable[[], Awaitable[object]]) -> float:
    """Seconds `action` took."""
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
