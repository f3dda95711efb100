"""The fleet workload's measured phases: the same REST writes at the same rate, with a GET probe beside them,
while a given number of subscriptions is open (none, one, the whole fleet). Comparing the phases separates what
the writes cost the gateway (CPU per change, the GET's latency) from what fanning their events out costs."""

from __future__ import annotations

import asyncio
import os
import random
import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp

from bench.processes import TOKEN, tree_cpu_s

WRITE_TIMEOUT_S = 30
"""A change not answered within this long counts as not made."""
PROBE_PAUSE_S = 0.05
"""Between two GETs of the probe: it samples the gateway's latency, it does not load it (at a GET every 10 ms the
probe's own CPU was several times the writes', and the CPU per change, net of it, mostly the error of that
subtraction)."""


def system_s(pid: int) -> float:
    """The process's system CPU seconds so far (/proc/PID/stat field 15)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return int(fields[12]) / os.sysconf("SC_CLK_TCK")


def percentile(values: list[float], fraction: float) -> float:
    return values[min(len(values) - 1, int(len(values) * fraction))] if values else float("nan")


async def idle_probe(gateway: str, gateway_pid: int, task_id: int, seconds: float) -> tuple[list[float], float]:
    """The GET probe with nothing else running: its latencies and the gateway's CPU per GET (the idle gateway's
    own background work, small, included)."""
    cpu_before = tree_cpu_s([gateway_pid])
    latencies = await get_latencies(gateway, task_id, seconds)
    return latencies, (tree_cpu_s([gateway_pid]) - cpu_before) / max(1, len(latencies))


async def get_latencies(gateway: str, task_id: int, seconds: float) -> list[float]:
    """Sequential GETs of one task for `seconds`, each latency in ms, sorted. On a connection of their own: the
    writes' session may have all its connections busy, which would time the client's queue, not the gateway."""
    latencies: list[float] = []
    ends = time.perf_counter() + seconds
    async with aiohttp.ClientSession(headers={"X-Auth-Token": TOKEN}) as session:
        while time.perf_counter() < ends:
            started = time.perf_counter()
            async with session.get(f"{gateway}/tracking/task/{task_id}") as response:
                await response.read()
            # A refusal (503 past the deadline) is timed like an answer: it is how long a caller waited.
            latencies.append((time.perf_counter() - started) * 1000)
            await asyncio.sleep(PROBE_PAUSE_S)
    return sorted(latencies)


@dataclass
class PhaseFigures:
    """What one phase measured. `answered` and `sent` are by the status each write set (unique in the run), so
    that events can be matched to their write."""

    label: str
    asked: int = 0
    made: int = 0
    writing_s: float = 0.0
    cpu_s: float = 0.0
    gets: list[float] = field(default_factory=list)
    system_s: float = 0.0
    """The kernel's share of `cpu_s` (system time: socket calls)."""
    probe_cpu_s: float = 0.0
    """The GET probe's share of `cpu_s` (its GETs at the CPU each took idle): left out of the CPU per change."""
    answered: dict[str, float] = field(default_factory=dict)
    sent: dict[str, float] = field(default_factory=dict)

    @property
    def cpu_per_change_ms(self) -> float:
        """The gateway's CPU per change made, the GET probe's left out: the write, its history entry, its
        fan-out."""
        return (self.cpu_s - self.probe_cpu_s) / max(1, self.made) * 1e3

    @property
    def get_p99_ms(self) -> float:
        return percentile(self.gets, 0.99)

    def write_ms(self) -> list[float]:
        """Each made write's time from sent to answered, in ms, sorted."""
        return sorted((self.answered[status] - self.sent[status]) * 1000 for status in self.answered)

    def summary(self) -> str:
        writes = self.write_ms()
        return (
            f"{self.made}/{self.asked} changes ({self.made / max(self.writing_s, 1e-9):.0f}/s), "
            f"{self.cpu_per_change_ms:.2f} ms CPU/change ({self.system_s / max(self.cpu_s, 1e-9):.0%} system), "
            f"GET p50 {percentile(self.gets, 0.5):.1f} "
            f"p99 {self.get_p99_ms:.1f} ms, write p50 {percentile(writes, 0.5):.0f} "
            f"p99 {percentile(writes, 0.99):.0f} ms"
        )


async def _change(
    session: aiohttp.ClientSession, gateway: str, figures: PhaseFigures, task_id: int, status: str
) -> bool:
    """One REST change; whether it was made (a refusal or no answer within WRITE_TIMEOUT_S is reported, not
    raised: the run goes on)."""
    try:
        async with session.put(
            f"{gateway}/tracking/task/{task_id}",
            json={"status": status},
            timeout=aiohttp.ClientTimeout(total=WRITE_TIMEOUT_S),
        ) as response:
            await response.read()
            if response.status != 200:
                return False
    except TimeoutError:
        return False
    figures.answered[status] = time.perf_counter()
    return True


async def write_phase(
    session: aiohttp.ClientSession,
    gateway: str,
    gateway_pid: int,
    task_ids: list[int],
    rate: float,
    seconds: float,
    label: str,
    cpu_per_get_s: float,
) -> PhaseFigures:
    """`rate` REST status changes a second for `seconds` on tasks drawn from `task_ids` (the same draw for every
    label), GETs of the first task probed meanwhile; the gateway's CPU (process CPU time: robust under load)
    over the writes, the probe and the last events' fan-out, and the probe's share of it at `cpu_per_get_s`."""
    figures = PhaseFigures(label)
    rng = random.Random(30)
    print(f"phase {label}: {int(seconds * rate)} changes at {rate:g}/s", file=sys.stderr, flush=True)
    cpu_before, system_before = tree_cpu_s([gateway_pid]), system_s(gateway_pid)
    probing = asyncio.create_task(get_latencies(gateway, task_ids[0], seconds))
    writes: list[asyncio.Task[bool]] = []
    started = time.perf_counter()
    for number in range(int(seconds * rate)):
        await asyncio.sleep(max(0.0, started + number / rate - time.perf_counter()))
        status = f"{label}{number}"
        figures.sent[status] = time.perf_counter()
        writes.append(asyncio.create_task(_change(session, gateway, figures, rng.choice(task_ids), status)))
    figures.asked = len(writes)
    figures.made = sum(await asyncio.gather(*writes))
    figures.writing_s = time.perf_counter() - started
    figures.gets = await probing
    await asyncio.sleep(2)  # the last events go out
    figures.cpu_s = tree_cpu_s([gateway_pid]) - cpu_before
    figures.system_s = system_s(gateway_pid) - system_before
    figures.probe_cpu_s = len(figures.gets) * cpu_per_get_s
    print(f"phase {label}: {figures.summary()}", file=sys.stderr, flush=True)
    return figures


@dataclass
class Turns:
    """The GET probe's latencies (ms, sorted) in the windows with the writes and in those without."""

    busy: list[float]
    idle: list[float]


async def in_turns(
    session: aiohttp.ClientSession,
    gateway: str,
    gateway_pid: int,
    task_ids: list[int],
    rate: float,
    pairs: int,
    seconds: float,
    settled: Callable[[PhaseFigures], Awaitable[None]],
) -> Turns:
    """The GET probe in `pairs` pairs of windows of `seconds`: one with the writes at `rate` (and whatever else is
    open: the fleet's subscriptions), one with nothing; each pair's order the other way round from the last's.
    Both sides are then timed over the same minutes, so that a drift of the machine (other processes, mongod's
    checkpoints, the gateway's collections) falls on both alike, where one phase after the other gave it to
    whichever phase it fell in. `settled`: waits for what a busy window left behind (its task history) before
    an idle one is timed."""
    busy: list[float] = []
    idle: list[float] = []
    for pair in range(pairs):
        for writing in (True, False) if pair % 2 == 0 else (False, True):
            if writing:
                figures = await write_phase(session, gateway, gateway_pid, task_ids, rate, seconds, f"T{pair}", 0.0)
                busy += figures.gets
                await settled(figures)
            else:
                idle += await get_latencies(gateway, task_ids[0], seconds)
    return Turns(sorted(busy), sorted(idle))
