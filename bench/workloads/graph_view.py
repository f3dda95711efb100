"""The live view's task graph at 10,000 tasks (the most it draws as a graph: GRAPH_LIMIT in ui/job.js) in headless
Chromium without a GPU (software rendering): time to the first frame, and frame times while panning."""

from __future__ import annotations

import asyncio
import itertools
import statistics
from typing import Any

from bench.browser import PAGE_MARKS, Browser, live_view, mark_set
from bench.data import JOB_TASKS
from bench.measure import ROUNDS, Bound, Row, Run, Target
from bench.processes import TOKEN

FIRST_FRAME_MS, PAN_FRAME_MS = 2000, 33  # on screen in a couple of seconds; panned at 30 frames/s or better
FIRST_FRAME = Target((Bound("gateway", "<", FIRST_FRAME_MS, "ms"),))
PAN_FRAME = Target((Bound("gateway", "<=", PAN_FRAME_MS, "ms"),))
PAN_S = 2.0
GRAPH = "document.querySelector('#graph .graph-canvas')?.graphView"
RECORD_FRAMES = """(() => { const frames = window.benchFrames = []; window.benchPanning = frames;
  const tick = (t) => { frames.push(t); if (window.benchPanning === frames) requestAnimationFrame(tick); };
  requestAnimationFrame(tick); })()"""
"""Every animation frame's time while window.benchPanning is this recording (an earlier one's loop stops)."""


async def pan(browser: Browser) -> dict[str, float]:
    """Drags the graph to and fro for PAN_S seconds, a mouse move every few milliseconds (as fast as the DevTools
    protocol delivers them); the intervals between animation frames meanwhile, and how long each redraw took."""
    box = await browser.evaluate("document.querySelector('#graph .graph-canvas').getBoundingClientRect().toJSON()")
    x, y = box["x"] + box["width"] / 2, box["y"] + box["height"] / 2
    drawn_before = await browser.evaluate(f"{GRAPH}.frames.length")
    await browser.evaluate(RECORD_FRAMES)
    await browser.call(
        "Input.dispatchMouseEvent", type="mousePressed", x=x, y=y, button="left", buttons=1, clickCount=1
    )
    loop = asyncio.get_running_loop()
    started, step = loop.time(), 0
    while loop.time() - started < PAN_S:
        step += 1
        offset = 150 - abs(step % 100 - 50) * 6  # to and fro across 300 px
        await browser.call("Input.dispatchMouseEvent", type="mouseMoved", x=x + offset, y=y + offset / 3,
                           button="left", buttons=1)  # fmt: skip
    await browser.call(
        "Input.dispatchMouseEvent", type="mouseReleased", x=x, y=y, button="left", buttons=1, clickCount=1
    )
    frames: list[float] = await browser.evaluate("window.benchPanning = null, window.benchFrames")
    draws: list[float] = await browser.evaluate(f"{GRAPH}.frames.slice({drawn_before})")
    intervals = [later - earlier for earlier, later in itertools.pairwise(frames)]
    return {
        "p95": statistics.quantiles(intervals, n=20)[-1],
        "median": statistics.median(intervals),
        "draw": statistics.median(draws) if draws else 0.0,
        "moves": step,
        "redraws": len(draws),
    }


async def one_round(gateway: str) -> dict[str, Any]:
    async with live_view(gateway, TOKEN, "job-10k", mark_set("graph-drawn")) as browser:
        marks = await browser.evaluate(PAGE_MARKS)
        assert await browser.evaluate(f"{GRAPH}.tasks") == JOB_TASKS
        reading = await pan(browser)  # the first view: the roots at a readable zoom
        await browser.click("[data-act=fit]")
        whole = await pan(browser)  # every task in view (rows about 1 px apart: no links drawn)
        for _ in range(5):  # zoom 1.25 ** 5 = 3x: rows 3 px apart, the links drawn, a third of the tasks in view
            await browser.click("[data-act=in]")
        linked = await pan(browser)
        return {"marks": marks, "reading": reading, "whole": whole, "linked": linked}


async def measure(run: Run) -> list[Row]:
    rounds = [await one_round(run.gateway) for _ in range(ROUNDS)]

    def median(part: str, name: str) -> float:
        """The median over the rounds of round[part][name]."""
        return float(statistics.median(result[part][name] for result in rounds))

    drawn, fetched, laid_out = (median("marks", name) for name in ("graph-drawn", "graph-fetched", "graph-laid-out"))
    rows = [
        Row(f"live view: {JOB_TASKS:,}-task job graph, first frame from navigation", drawn, FIRST_FRAME_MS, "ms",
            drawn / FIRST_FRAME_MS, FIRST_FRAME,
            f"fetched at {fetched:.0f} ms, laid out (Web Worker) at {laid_out:.0f} ms; headless Chromium, no GPU"),
    ]  # fmt: skip
    for view, text in (
        ("reading", "at reading zoom (labels drawn)"),
        ("whole", "whole graph in view (no links at that zoom)"),
        ("linked", "a third in view, with its links"),
    ):
        p95 = median(view, "p95")
        note = (
            f"median frame interval {median(view, 'median'):.1f} ms, redraw {median(view, 'draw'):.1f} ms; "
            f"{median(view, 'redraws'):.0f} redraws for {median(view, 'moves'):.0f} mouse moves in {PAN_S:g} s"
        )
        rows.append(Row(f"live view: panning the {JOB_TASKS:,}-task graph, {text}: frame interval p95", p95,
                        PAN_FRAME_MS, "ms", p95 / PAN_FRAME_MS, PAN_FRAME, note))  # fmt: skip
    return rows
