"""The live view's timeline (/ui, headless Chromium) of a job whose tasks have no start time yet: only the note and
the list of untimed tasks show (no empty time axis, rows or zoom buttons), and the axis comes back live once a task
starts."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import httpx

from bench.browser import Browser
from tests.conftest import PAGES_TOKEN
from tests.ui.pages import click_task

HEADERS = {"X-Auth-Token": PAGES_TOKEN}
GRAPH = "document.querySelector('#graph .graph-canvas')?.graphView"
SHOWN = (
    "Object.fromEntries(['#timeline-axis', '#timeline-rows', '.timeline-tools'].map(s => "
    "[s, document.querySelector(s).getClientRects().length > 0]))"
)
"""Whether each part of the timeline takes room on the page (a hidden element has no box)."""


async def test_a_job_without_start_times_shows_no_time_axis_until_a_task_starts(base_url, tmp_path):
    async with httpx.AsyncClient(base_url=base_url, headers=HEADERS) as http:
        created = await http.post("/tracking/task", json={"tasks": [{"name": "plan", "job-id": "unstarted"}]})
        assert created.status_code == 200, created.text
        [task] = (await http.get("/tracking/unstarted/task/roots")).json()["tasks"]
    async with Browser(tmp_path) as browser:
        await browser.open(f"{base_url}/ui/#token={PAGES_TOKEN}&job=unstarted")
        # drawn (the legend above the tabs filled in, which moves them) and live, before the tab is clicked
        await browser.wait_for(f"{GRAPH}?.tasks === 1 && document.getElementById('live').classList.contains('on')")
        await browser.click("[data-view=timeline]")
        note = await browser.wait_for("document.getElementById('untimed')?.textContent.trim()")
        assert "No task of this job has a start time yet" in note and "plan" in note
        assert await browser.evaluate(SHOWN) == {"#timeline-axis": False, "#timeline-rows": False,
                                                 ".timeline-tools": False}  # fmt: skip
        await browser.screenshot(tmp_path / "timeline-unstarted.png")

        started = (datetime.now(UTC) - timedelta(minutes=5)).isoformat()
        async with httpx.AsyncClient(base_url=base_url, headers=HEADERS) as http:
            changed = await http.put(f"/tracking/task/{task['id']}", json={"start-time": started})
            assert changed.status_code == 200, changed.text
        await browser.wait_for("document.querySelectorAll('.timeline .bar').length === 1")
        assert await browser.evaluate(SHOWN) == {"#timeline-axis": True, "#timeline-rows": True,
                                                 ".timeline-tools": True}  # fmt: skip


async def test_the_timeline_tab_closes_the_neighbourhood_over_the_column(base_url, small_job, tmp_path):
    """The neighbourhood lies over the graph's column: Timeline chosen while it was open drew the timeline under
    it, out of sight. The tab now closes it."""
    build, _, _ = small_job
    async with Browser(tmp_path) as browser:
        await browser.open(f"{base_url}/ui/#token={PAGES_TOKEN}&job=release-7")
        await browser.wait_for(f"{GRAPH}?.tasks === 3 && document.getElementById('live').classList.contains('on')")
        await click_task(browser, build)
        await browser.click("#details .open-hood")
        await browser.wait_for("document.querySelector('.hood .hood-head') !== null")
        await browser.click("[data-view=timeline]")
        await browser.wait_for("document.getElementById('timeline-rows') !== null && !document.querySelector('.hood')")
        await browser.screenshot(tmp_path / "timeline-after-neighbourhood.png")
