"""The servers under test as real processes: the gateway (`python -m gateway`) and the hand-written reference
(`python -m bench.reference_app`), on the benchmark's database with its token."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from collections.abc import Awaitable, Mapping
from pathlib import Path
from typing import TypeVar

import aiohttp

from bench.data import DB

TOKEN = "bench-token"
_T = TypeVar("_T")


def start(
    module: str,
    port: int,
    uri: str,
    data_dir: Path,
    extra_env: Mapping[str, str] | None = None,
    python: str = sys.executable,
    cwd: Path | None = None,
) -> subprocess.Popen[bytes]:
    """`python -m module` serving on loopback `port`, on MongoDB `uri`, with TOKEN (and `extra_env`); by default
    this interpreter in this directory, or another checkout's (`python` its venv's, `cwd` the checkout, whose
    modules `-m` then finds first)."""
    env = {
        **os.environ,
        "TRACKING_MONGODB_URI": uri,
        "TRACKING_MONGODB_DB": DB,
        "TRACKING_PORT": str(port),
        "TRACKING_API_TOKENS": TOKEN,
        "TRACKING_DATA_DIR": str(data_dir),
        "TRACKING_LOG_LEVEL": "warning",
        "TRACKING_GRAPHQL_MAX_TRAVERSAL": "20000",
        **(extra_env or {}),
    }
    return subprocess.Popen([python, "-m", module], env=env, stdout=subprocess.DEVNULL, cwd=cwd)


async def wait_until_up(url: str, process: subprocess.Popen[bytes]) -> None:
    """Until `url` answers below 500; SystemExit if the process exits or it never does (5 minutes)."""
    async with aiohttp.ClientSession() as session:
        for _ in range(3000):  # index builds over a million tasks at start-up take a while
            if process.poll() is not None:
                raise SystemExit(f"{url}: server exited with {process.returncode}")
            try:
                async with session.get(url) as response:
                    if response.status < 500:
                        return
            except aiohttp.ClientError:
                pass
            await asyncio.sleep(0.1)
    raise SystemExit(f"{url} never answered")


def rss_mb(pid: int) -> float:
    """The process's resident memory now (VmRSS), in MiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


async def rss_while(pid: int, work: Awaitable[_T], every_s: float = 0.01) -> tuple[float, _T]:
    """The process's highest resident memory (VmRSS, in MiB, read every `every_s`) while `work` runs, and what
    `work` gave. (VmHWM is the peak since the process started: it cannot show one request's.)"""
    task = asyncio.ensure_future(work)
    peak = rss_mb(pid)
    while not task.done():
        await asyncio.wait({task}, timeout=every_s)
        peak = max(peak, rss_mb(pid))
    return peak, task.result()


def peak_rss_mb(pid: int) -> float:
    """The process's peak resident memory (VmHWM), in MiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


_TICKS = os.sysconf("SC_CLK_TCK")


def _stat_fields(pid: int) -> list[str] | None:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (FileNotFoundError, ProcessLookupError):
        return None


def tree_cpu_s(pids: list[int]) -> float:
    """CPU seconds (user + system) the processes `pids` and their descendants used so far, from /proc/*/stat
    (fields 14 and 15, with the children they reaped: 16 and 17)."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and (fields := _stat_fields(int(entry.name))) is not None:
            children.setdefault(int(fields[1]), []).append(int(entry.name))
    total, seen, todo = 0, set(), list(pids)
    while todo:
        pid = todo.pop()
        if pid in seen or (fields := _stat_fields(pid)) is None:
            continue
        seen.add(pid)
        total += sum(int(value) for value in fields[11:15])
        todo.extend(children.get(pid, ()))
    return total / _TICKS
