"""The live view in headless Chromium: a 2,000-task job graph drawn, a 100,000-task job's overview by stage on
screen, and the counts following a steady stream of changes."""

from __future__ import annotations

import asyncio
import statistics
from datetime import UTC, datetime

import aiohttp

from bench.browser import PAGE_MARKS, live_view, mark_set
from bench.data import Database, layered_job, staged_job, task_doc
from bench.measure import ROUNDS, Bound, Row, Run, Target
from bench.processes import TOKEN

TARGET = Target((Bound("gateway", "<", 2000, "ms"),))


UI_JOB_TASKS = 2_000
OVERVIEW_TASKS, OVERVIEW_LEVELS = 100_000, 20
STREAM_TASKS, STREAM_RATE = 100, 20  # changes, and changes a second
LAG_TARGET = Target((Bound("gateway", "<", 1000, "ms"),))


async def ui_row(gateway: str, db: Database, ids: dict[str, int]) -> Row:
    """The live view drawing a 2,000-task job (20 levels, two links per task) in headless Chromium: from
    navigation to the graph on screen (fetching, layout and drawing)."""
    now = datetime.now(UTC)
    await db.tasks.insert_many(layered_job(ids["next_free"] + 20_000_000, UI_JOB_TASKS, 20, "ui-2k", now))
    figures = []
    for _ in range(ROUNDS):
        async with live_view(gateway, TOKEN, "ui-2k", mark_set("graph-drawn")) as browser:
            figures.append(await browser.evaluate(PAGE_MARKS))
            assert await browser.evaluate(
                "document.querySelector('#graph .graph-canvas').graphView.tasks"
            ) == UI_JOB_TASKS  # fmt: skip
    drawn, fetched, laid_out = (statistics.median(marks[name] for marks in figures)
                                for name in ("graph-drawn", "graph-fetched", "graph-laid-out"))  # fmt: skip
    note = f"from navigation: fetched {fetched:.0f} ms, laid out {laid_out:.0f} ms (headless Chromium)"
    return Row("live view: 2,000-task job graph on screen (time)", drawn, 2000, "ms", drawn / 2000, TARGET, note)


async def overview_row(gateway: str, db: Database, ids: dict[str, int]) -> Row:
    """A 100,000-task job (20 stages, each task linking to 1-2 of the next; work under way in stage 10) opened in
    the live view: from navigation to its overview by stage (Job.levels) on screen."""
    await db.tasks.insert_many(
        staged_job(ids["next_free"] + 30_000_000, OVERVIEW_TASKS, OVERVIEW_LEVELS, "ui-100k", datetime.now(UTC))
    )
    figures = []
    for _ in range(ROUNDS):
        async with live_view(gateway, TOKEN, "ui-100k", mark_set("overview-drawn")) as browser:
            figures.append((await browser.evaluate(PAGE_MARKS))["overview-drawn"])
            rows = await browser.evaluate("document.querySelectorAll('table.levels tbody tr').length")
            assert rows == OVERVIEW_LEVELS, rows
    drawn = statistics.median(figures)
    note = f"from navigation, headless Chromium; rounds {', '.join(f'{f:.0f}' for f in figures)} ms"
    return Row("live view: 100,000-task job overview by stage on screen (time)", drawn, 2000, "ms", drawn / 2000,
               TARGET, note)  # fmt: skip


async def count_lag_row(session: aiohttp.ClientSession, gateway: str, db: Database, ids: dict[str, int]) -> Row:
    """100 REST status changes at 20 a second to a job open in the live view: for each change, how long until
    the page's done count includes it (read every 50 ms). The figure is the largest lag."""
    first = ids["next_free"] + 40_000_000
    now = datetime.now(UTC)
    await db.tasks.insert_many(
        [{**task_doc(first + i, "ui-stream", now), "status": "READY"} for i in range(STREAM_TASKS)]
    )
    loop = asyncio.get_running_loop()
    stored: list[float] = []
    shown: list[tuple[float, int]] = []
    live = "document.getElementById('live').classList.contains('on')"
    ready = f"document.getElementById('done-count')?.textContent === '0' && {live}"
    async with live_view(gateway, TOKEN, "ui-stream", ready) as browser:

        async def change() -> None:
            start = loop.time()
            for number in range(STREAM_TASKS):
                url = f"{gateway}/tracking/task/{first + number}"
                async with session.put(url, json={"status": "DONE"}) as response:
                    assert response.status == 200, await response.text()
                stored.append(loop.time())
                await asyncio.sleep(max(0.0, start + (number + 1) / STREAM_RATE - loop.time()))

        async def watch(changing: asyncio.Task[None]) -> None:
            while not changing.done() or (shown and shown[-1][1] < STREAM_TASKS and loop.time() - stored[-1] < 10):
                count = int(await browser.evaluate("document.getElementById('done-count').textContent"))
                shown.append((loop.time(), count))
                await asyncio.sleep(0.05)

        changing = asyncio.create_task(change())
        await asyncio.gather(changing, watch(changing))
    lags = [
        next((at for at, count in shown if count > index), float("inf")) - when for index, when in enumerate(stored)
    ]
    worst, median = max(lags) * 1000, statistics.median(lags) * 1000
    rate = (STREAM_TASKS - 1) / (stored[-1] - stored[0])
    note = f"{rate:.1f} changes/s through REST; median lag {median:.0f} ms; count read every 50 ms"
    return Row("live view: count lag under 20 changes/s (largest)", worst, 1000, "ms", worst / 1000, LAG_TARGET, note)


async def measure(run: Run) -> list[Row]:
    return [
        await ui_row(run.gateway, run.db, run.ids),
        await overview_row(run.gateway, run.db, run.ids),
        await count_lag_row(run.session, run.gateway, run.db, run.ids),
    ]
