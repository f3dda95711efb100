"""The live view drawing a 2,000-task job graph in headless Chromium."""

from __future__ import annotations

import statistics
import tempfile
from datetime import UTC, datetime
from pathlib import Path

from bench.browser import Browser
from bench.data import Database, layered_job
from bench.measure import ROUNDS, Bound, Row, Run, Target
from bench.processes import TOKEN

TARGET = Target((Bound("gateway", "<", 2000, "ms"),))


UI_JOB_TASKS = 2_000


async def ui_row(gateway: str, db: Database, ids: dict[str, int]) -> Row:
    """The live view drawing a 2,000-task job (20 levels, two links per task) in headless Chromium: from
    navigation to the graph on screen (fetching, layout and drawing)."""
    now = datetime.now(UTC)
    await db.tasks.insert_many(layered_job(ids["next_free"] + 20_000_000, UI_JOB_TASKS, 20, "ui-2k", now))
    figures = []
    for _ in range(ROUNDS):
        with tempfile.TemporaryDirectory(prefix="bench-ui-", ignore_cleanup_errors=True) as workdir:
            async with Browser(Path(workdir)) as browser:
                await browser.open(f"{gateway}/ui/#token={TOKEN}&job=ui-2k")
                await browser.wait_for("performance.getEntriesByName('graph-drawn').length", timeout_s=60)
                marks = await browser.evaluate(
                    "Object.fromEntries(performance.getEntriesByType('mark').map(m => [m.name, m.startTime]))"
                )
                figures.append(marks)
                assert await browser.evaluate(
                    "document.querySelector('#graph .graph-canvas').graphView.tasks"
                ) == UI_JOB_TASKS  # fmt: skip
    drawn, fetched, laid_out = (statistics.median(marks[name] for marks in figures)
                                for name in ("graph-drawn", "graph-fetched", "graph-laid-out"))  # fmt: skip
    note = f"from navigation: fetched {fetched:.0f} ms, laid out {laid_out:.0f} ms (headless Chromium)"
    return Row("live view: 2,000-task job graph on screen (time)", drawn, 2000, "ms", drawn / 2000, TARGET, note)


async def measure(run: Run) -> list[Row]:
    return [await ui_row(run.gateway, run.db, run.ids)]
