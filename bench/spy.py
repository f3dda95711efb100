"""Sampling a gateway process with py-spy while a round runs (`python -m bench.versions --py-spy DIR`): py-spy
from PyPI in this venv (`.venv/bin/python -m pip install py-spy`), which reads the process from outside
(`--nonblocking`: it never pauses it)."""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import signal
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path

RATE_HZ = 200
ATTACH_S = 1.5
"""How long py-spy is given to attach before the round starts (it samples nothing until then)."""


def py_spy() -> str:
    """The py-spy beside this interpreter, or on PATH; SystemExit when there is none."""
    beside = Path(sys.executable).parent / "py-spy"
    found = str(beside) if beside.exists() else shutil.which("py-spy")
    if found is None:
        raise SystemExit("py-spy not found: .venv/bin/python -m pip install py-spy")
    return found


@contextlib.asynccontextmanager
async def sampled(pid: int, output: Path | None) -> AsyncIterator[None]:
    """While the body runs, py-spy records process `pid`'s stacks into `output` (collapsed stacks, one line per
    stack with its count: `-f raw`); nothing when `output` is None."""
    if output is None:
        yield
        return
    command = [py_spy(), "record", "-p", str(pid), "-r", str(RATE_HZ), "-f", "raw", "-o", str(output)]
    spy = await asyncio.create_subprocess_exec(
        *command, "--nonblocking", stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    await asyncio.sleep(ATTACH_S)
    try:
        yield
    finally:
        spy.send_signal(signal.SIGINT)  # py-spy writes its file when interrupted
        await asyncio.wait_for(spy.wait(), 60)
