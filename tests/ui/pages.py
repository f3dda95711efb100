"""What the live view's browser tests share: the token's header, how the graph canvas is found, clicked,
dragged and read, and a REST create."""

from __future__ import annotations

import json

import httpx

from bench.browser import Browser
from tests.conftest import PAGES_TOKEN

HEADERS = {"X-Auth-Token": PAGES_TOKEN}
GRAPH_LIMIT = 10_000  # ui/job.js
GRAPH = "document.querySelector('#graph .graph-canvas')?.graphView"
HOOD = "document.querySelector('.hood .graph-canvas')?.graphView"


async def create(base_url: str, tasks: list[dict]) -> None:
    async with httpx.AsyncClient(base_url=base_url, headers=HEADERS, timeout=60) as http:
        response = await http.post("/tracking/task", json={"tasks": tasks})
        assert response.status_code == 200, response.text


def texts_of(selector: str) -> str:
    return f"[...document.querySelectorAll({json.dumps(selector)})].map(e => e.textContent.trim())"


async def click_task(browser: Browser, task_id: int | str, graph: str = GRAPH) -> None:
    """A click where the canvas draws the task."""
    at = await browser.evaluate(f"{graph}.at({json.dumps(str(task_id))})")
    for kind in ("mousePressed", "mouseReleased"):
        await browser.call("Input.dispatchMouseEvent", type=kind, x=at["x"], y=at["y"], button="left", clickCount=1)


async def drag(browser: Browser, start: dict, dx: float, dy: float = 0) -> None:
    for kind, step in (("mousePressed", 0), ("mouseMoved", 0.5), ("mouseMoved", 1), ("mouseReleased", 1)):
        await browser.call("Input.dispatchMouseEvent", type=kind, x=start["x"] + dx * step, y=start["y"] + dy * step,
                           button="left", buttons=1, clickCount=1)  # fmt: skip


def pixel_beside(task_id: int | str, dx: float, graph: str = GRAPH) -> str:
    """The canvas pixel [r, g, b] `dx` screen pixels right of the task's centre."""
    return (
        f"(() => {{ const c = {graph}; const canvas = document.querySelector('#graph .graph-canvas');"
        f" const r = canvas.getBoundingClientRect(); const p = c.at({json.dumps(str(task_id))});"
        " const d = canvas.getContext('2d').getImageData(Math.round((p.x - r.left + "
        f"{dx}) * devicePixelRatio), Math.round((p.y - r.top) * devicePixelRatio), 1, 1).data;"
        " return [d[0], d[1], d[2]]; })()"
    )
