"""The live view's task graph against what a hostile user or a careless tool can store: links forming a cycle,
names a million characters long or written right to left with a direction override, tasks without a status,
and live redraws arriving while someone types or works the graph with the keyboard. Headless Chromium, every
host but loopback unreachable; screenshots go to the test's temp dir."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

import httpx
import pytest

from bench.browser import Browser
from bench.data import layered_job, linked_task_doc, task_doc
from tests.conftest import PAGES_TOKEN
from tests.ui.pages import GRAPH, HEADERS

pytestmark = pytest.mark.hostile  # an attack on what it tests (pyproject.toml, markers)

FIRST = 60_000_000


async def open_job(browser: Browser, base_url: str, job: str, tasks: int, timeout_s: float = 20) -> None:
    """Opens the job's page and waits until its graph of `tasks` tasks is drawn. A page whose main thread is
    stuck answers nothing: that fails here, after `timeout_s`, instead of hanging the test."""
    await browser.open(f"{base_url}/ui/#token={PAGES_TOKEN}&job={job}")
    try:
        await asyncio.wait_for(browser.wait_for(f"{GRAPH}?.tasks === {tasks}", timeout_s), timeout_s + 5)
    except TimeoutError:
        raise AssertionError(f"the page did not draw the graph of {tasks} tasks within {timeout_s:g}s") from None


async def test_a_cycle_a_tool_wrote_into_the_links_still_draws_the_graph(base_url, raw_db, tmp_path):
    """a -> b -> c -> a, and d linked to itself: the graph is drawn (the layout places every task of a cycle),
    and the legend says why there is no critical path instead of the page showing only an error."""
    now = datetime.now(UTC)
    a, b, c, d = FIRST, FIRST + 1, FIRST + 2, FIRST + 3
    await raw_db.tasks.insert_many([
        linked_task_doc(a, "loop", now, nexts=[b], previous=[c]),
        linked_task_doc(b, "loop", now, nexts=[c], previous=[a]),
        linked_task_doc(c, "loop", now, nexts=[a], previous=[b]),
        linked_task_doc(d, "loop", now, nexts=[d], previous=[d]),
    ])  # fmt: skip
    async with Browser(tmp_path) as browser:
        await open_job(browser, base_url, "loop", 4)
        assert await browser.evaluate(f"{GRAPH}.links") == 4
        hint = await browser.wait_for("document.getElementById('hint').textContent")
        assert "No critical path shown: the links hold a cycle" in hint, hint
        assert await browser.evaluate("document.querySelectorAll('#main .error, main .error').length") == 0
        await browser.screenshot(tmp_path / "cycle.png")
        # The links against the flow show: c -> a in a lane under the graph (below b, where nothing else is
        # drawn), d's loop over its own box; drawn straight they hid under the boxes.
        k = await browser.evaluate(f"document.querySelector('#graph .graph-canvas').clientWidth / {GRAPH}.view().width")
        b_at, d_at = [await browser.evaluate(f"{GRAPH}.at('{task}')") for task in (b, d)]
        bottom = await browser.evaluate("document.querySelector('#graph .graph-canvas').getBoundingClientRect().bottom")
        assert await darkest(browser, b_at["x"], b_at["y"] + 30 * k, bottom - 2) < 700, "the lane under the graph"
        assert await darkest(browser, d_at["x"], d_at["y"] - 39 * k, d_at["y"] - 27 * k) < 700, "the loop over d"


async def show(browser: Browser, choice: int) -> None:
    """Chooses the `choice`th option of "Show" (0: every status), as a person would."""
    await browser.evaluate(
        f"(s => {{ s.selectedIndex = {choice}; s.dispatchEvent(new Event('change')); }})"
        "(document.querySelector('.dim-filter'))"
    )


async def darkest(browser: Browser, x: float, top: float, bottom: float) -> int:
    """The darkest canvas pixel (r + g + b; the background is 744) in the column at page x from top to bottom."""
    return int(
        await browser.evaluate(
            "(() => { const canvas = document.querySelector('#graph .graph-canvas');"
            " const box = canvas.getBoundingClientRect(), dpr = devicePixelRatio;"
            f" const data = canvas.getContext('2d').getImageData(Math.round(({x} - box.left) * dpr),"
            f" Math.round(({top} - box.top) * dpr), 1, Math.max(1, Math.round(({bottom} - {top}) * dpr))).data;"
            " let least = 765; for (let i = 0; i < data.length; i += 4) least = Math.min(least, data[i] + data[i + 1]"
            " + data[i + 2]); return least; })()"
        )
    )


async def test_a_name_a_million_characters_long_does_not_freeze_the_page(base_url, raw_db, tmp_path):
    """A tool stores a name of 1,000,000 characters without a space (and one of emoji): the graph is drawn at
    once, the box cut with "…", and the hover tip holds a bounded part of the name."""
    now = datetime.now(UTC)
    await raw_db.tasks.insert_many([
        task_doc(FIRST, "long", now, name="y" * 1_000_000, status="RUNNING"),
        task_doc(FIRST + 1, "long", now, name="😀" * 5_000, status="READY"),
    ])  # fmt: skip
    async with Browser(tmp_path) as browser:
        await open_job(browser, base_url, "long", 2)
        at = await browser.evaluate(f"{GRAPH}.at('{FIRST}')")
        await browser.call("Input.dispatchMouseEvent", type="mouseMoved", x=at["x"], y=at["y"])
        tip = await browser.wait_for(
            "!document.querySelector('.tip').hidden && document.querySelector('.tip').textContent"
        )
        assert tip.startswith("yyyy") and f"id {FIRST}" in tip and len(tip) < 1000, len(tip)
        await browser.screenshot(tmp_path / "long.png")


async def test_show_none_dims_every_task_that_has_a_status(base_url, raw_db, tmp_path):
    """Show "none" (the tasks without a status) was the same choice as "every status": it dimmed nothing."""
    now = datetime.now(UTC)
    docs = [task_doc(FIRST + i, "unset", now) for i in range(5)]
    for doc in docs[:2]:
        del doc["status"]
    await raw_db.tasks.insert_many(docs)
    async with Browser(tmp_path) as browser:
        await open_job(browser, base_url, "unset", 5)
        choices = await browser.evaluate("[...document.querySelectorAll('.dim-filter option')].map(o => o.textContent)")
        assert choices == ["every status", "none", "DONE", "FAILED", "READY"], choices
        await show(browser, 1)
        assert await browser.evaluate(f"{GRAPH}.marks().dimmed") == 3, "the three tasks with a status are dimmed"
        await show(browser, 0)
        assert await browser.evaluate(f"{GRAPH}.marks().dimmed") == 0


async def test_a_live_redraw_keeps_the_focus_and_a_half_typed_go_to(base_url, tmp_path):
    """New tasks arrive while someone types in "go to task", then while the graph has the keyboard focus: the
    redraws keep the typed text, the caret and the focus (they used to throw the keyboard user out)."""

    async def add_task(name: str) -> None:
        async with httpx.AsyncClient(base_url=base_url, headers=HEADERS) as http:
            body = {"tasks": [{"job-id": "typing", "name": name, "status": "READY"}]}
            assert (await http.post("/tracking/task", json=body)).status_code == 200

    await add_task("first")
    async with Browser(tmp_path) as browser:
        await open_job(browser, base_url, "typing", 1)
        await browser.wait_for("document.getElementById('live').classList.contains('on')")
        await browser.type(".goto input", "seco")
        await add_task("second")
        await browser.wait_for(f"{GRAPH}?.tasks === 2")
        focused = await browser.evaluate(
            "[document.activeElement.matches('.goto input'), document.activeElement.value,"
            " document.activeElement.selectionStart]"
        )
        assert focused == [True, "seco", 4], focused
        await browser.call("Input.insertText", text="nd")  # typing goes on where it was
        await browser.press("Enter")
        await browser.wait_for("document.querySelector('#details h3')?.textContent.includes('second')")

        await browser.evaluate("document.querySelector('#graph .graph-canvas').focus()")
        await add_task("third")
        await browser.wait_for(f"{GRAPH}?.tasks === 3")
        assert await browser.evaluate("document.activeElement.matches('#graph .graph-canvas')")
        width = (await browser.evaluate(f"{GRAPH}.view()"))["width"]
        await browser.press("+")  # the keys still work without a click into the graph first
        assert (await browser.evaluate(f"{GRAPH}.view()"))["width"] < width


async def test_a_right_to_left_override_in_a_name_does_not_reverse_the_status(base_url, raw_db, tmp_path):
    """A name holding U+202E (RIGHT-TO-LEFT OVERRIDE) reversed what followed it in the task's button and hover
    tip: "RUNNING" was drawn "GNINNUR", the id backwards. The status reads left to right whatever the name."""
    now = datetime.now(UTC)
    await raw_db.tasks.insert_one(task_doc(FIRST, "bidi", now, name="pay \u202eevil", status="RUNNING"))
    # where, left to right, the first and the last letter of "RUNNING" are drawn in an element
    letters = (
        "(element => { const walker = document.createTreeWalker(element, NodeFilter.SHOW_TEXT);"
        " for (let node; (node = walker.nextNode());) { const at = node.data.indexOf('RUNNING'); if (at < 0) continue;"
        " return [at, at + 6].map(i => { const range = document.createRange(); range.setStart(node, i);"
        " range.setEnd(node, i + 1); return range.getBoundingClientRect().left; }); } return null; })"
    )
    async with Browser(tmp_path) as browser:
        await open_job(browser, base_url, "bidi", 1)
        first, last = await browser.evaluate(f"{letters}(document.querySelector('button.task'))")
        assert first < last, ("the task's button", first, last)
        at = await browser.evaluate(f"{GRAPH}.at('{FIRST}')")
        await browser.call("Input.dispatchMouseEvent", type="mouseMoved", x=at["x"], y=at["y"])
        await browser.wait_for("!document.querySelector('.tip').hidden")
        first, last = await browser.evaluate(f"{letters}(document.querySelector('.tip'))")
        assert first < last, ("the hover tip", first, last)


async def test_go_to_a_name_many_tasks_share_visits_each_in_turn(base_url, raw_db, tmp_path):
    """Five tasks named "same name": Go again with the same text goes to the next one (it always went to the
    first), says which of how many, and wraps around; an empty search says what to type."""
    now = datetime.now(UTC)
    await raw_db.tasks.insert_many(
        [task_doc(FIRST + i, "shared", now, name="same name") for i in range(5)]
        + [task_doc(FIRST + 5, "shared", now, name="(.*) [a-z]+ other")]
    )
    selected = f"{GRAPH}.marks().selected"
    async with Browser(tmp_path) as browser:
        await open_job(browser, base_url, "shared", 6)
        await browser.click(".goto button")
        assert "type a task id" in await browser.wait_for("document.querySelector('.goto-note').textContent")
        await browser.type(".goto input", "SAME")
        for turn in [*range(5), 0]:
            await browser.click(".goto button")
            await browser.wait_for(f"{selected} === '{FIRST + turn}'")
            note = await browser.evaluate("document.querySelector('.goto-note').textContent")
            assert note.startswith(f"{turn + 1} of 5 matches"), note
        await browser.evaluate("document.querySelector('.goto input').value = ''")
        await browser.type(".goto input", "(.*) [a-z]+")  # plain text, not a pattern
        await browser.click(".goto button")
        await browser.wait_for(f"{selected} === '{FIRST + 5}'")
        assert await browser.evaluate("document.querySelector('.goto-note').textContent") == ""


async def test_a_live_redraw_waits_for_the_drag_in_progress(base_url, tmp_path):
    """A task is created while the graph is being dragged: the drag goes on to its end (the redraw used to
    replace the canvas under the pointer, which froze the view half way), then the new task is drawn where
    the drag left the view."""

    async def add_task(name: str) -> None:
        async with httpx.AsyncClient(base_url=base_url, headers=HEADERS) as http:
            body = {"tasks": [{"job-id": "dragged", "name": name, "status": "READY"}]}
            assert (await http.post("/tracking/task", json=body)).status_code == 200

    async def mouse(kind: str, x: float, y: float) -> None:
        await browser.call("Input.dispatchMouseEvent", type=kind, x=x, y=y, button="left", buttons=1, clickCount=1)

    await add_task("first")
    async with Browser(tmp_path) as browser:
        await open_job(browser, base_url, "dragged", 1)
        await browser.wait_for("document.getElementById('live').classList.contains('on')")
        box = await browser.evaluate("document.querySelector('#graph .graph-canvas').getBoundingClientRect().toJSON()")
        x, y = box["x"] + 60, box["y"] + 60  # empty background, away from the task in the middle
        start = (await browser.evaluate(f"{GRAPH}.view()"))["x"]
        await mouse("mousePressed", x, y)
        await mouse("mouseMoved", x + 50, y)
        await add_task("second")
        await asyncio.sleep(2)  # the event arrived and the new graph was fetched and laid out meanwhile
        await mouse("mouseMoved", x + 150, y)
        moved = (await browser.evaluate(f"{GRAPH}.view()"))["x"]
        assert moved < start - 140, ("the drag still moves the view", start, moved)
        await mouse("mouseReleased", x + 150, y)
        await browser.wait_for(f"{GRAPH}?.tasks === 2")
        assert abs((await browser.evaluate(f"{GRAPH}.view()"))["x"] - moved) < 1, "where the drag left it"


async def test_the_last_depth_chosen_in_the_neighbourhood_wins(base_url, raw_db, tmp_path):
    """Depth 10, then at once depth 1: the slower answer for 10 arrives last, and used to replace the drawing of
    depth 1 while the choice said 1."""
    await raw_db.tasks.insert_many(layered_job(FIRST, 200, 10, "deep", datetime.now(UTC)))  # 10 stages of 20
    middle = FIRST + 5 * 20 + 3
    hood = "document.querySelector('.hood .graph-canvas')?.graphView"
    choose = "(s => {{ s.value = '{}'; s.dispatchEvent(new Event('change')); }})(document.querySelector('.hood-depth'))"
    async with Browser(tmp_path) as browser:
        await open_job(browser, base_url, "deep", 200)
        await browser.type(".goto input", str(middle))
        await browser.press("Enter")
        await browser.click("#details .open-hood")
        await browser.wait_for(f"{hood}?.tasks === 11")  # depth 2: 2 + 3 before, 2 + 3 after
        await browser.evaluate(  # the answer for depth 10 is held back 1.5 s
            "(() => { const fetched = window.fetch; window.fetch = async (url, init) => { const answer ="
            " await fetched(url, init); if (String(init?.body).includes('\"depth\":10'))"
            " await new Promise((done) => setTimeout(done, 1500)); return answer; }; })()"
        )
        await browser.evaluate(choose.format(10))
        await browser.evaluate(choose.format(1))
        await browser.wait_for(f"{hood}?.tasks === 5")
        await asyncio.sleep(2.5)
        assert await browser.evaluate(f"{hood}.tasks") == 5
        assert await browser.evaluate("document.querySelector('.hood-depth').value") == "1"


async def test_after_the_window_shrinks_zooming_out_from_fit_zooms_out(base_url, raw_db, tmp_path):
    """400 unlinked tasks in one tall column; the window shrinks to a third of its height and 0 fits the graph
    again: "-" must zoom out from there (the smallest zoom was fixed at the first size, so "-" zoomed in), and
    stay out (the resize's callback, a frame late, fitted the graph again after "-")."""
    now = datetime.now(UTC)
    await raw_db.tasks.insert_many([task_doc(FIRST + i, "column", now) for i in range(400)])
    async with Browser(tmp_path) as browser:
        await open_job(browser, base_url, "column", 400)
        await browser.call(
            "Emulation.setDeviceMetricsOverride", width=1400, height=300, deviceScaleFactor=1, mobile=False
        )
        await browser.evaluate("document.querySelector('#graph .graph-canvas').focus()")
        await browser.press("0")
        fitted = await browser.evaluate(f"{GRAPH}.view()")
        assert fitted["height"] >= 400 * 66, "the whole column in view"
        await browser.press("-")
        assert (await browser.evaluate(f"{GRAPH}.view()"))["height"] > fitted["height"], "- zooms out"
        # and stays out once the resize's own callback has run (a frame late, it fitted the graph again)
        await browser.evaluate("new Promise(done => requestAnimationFrame(() => requestAnimationFrame(done)))")
        assert (await browser.evaluate(f"{GRAPH}.view()"))["height"] > fitted["height"], "- is not undone"
        await browser.screenshot(tmp_path / "shrunk.png")


async def test_a_status_that_appears_live_joins_the_show_choices(base_url, tmp_path):
    """A task turns to a status no task had: its box is repainted, and "Show" offers it too (it was only offered
    after a full redraw, which a status change does not cause)."""
    async with httpx.AsyncClient(base_url=base_url, headers=HEADERS) as http:
        body = {"tasks": [{"job-id": "newstatus", "name": "only", "status": "READY"}]}
        assert (await http.post("/tracking/task", json=body)).status_code == 200
        task_id = (await http.get("/tracking/newstatus/task/roots")).json()["tasks"][0]["id"]
        async with Browser(tmp_path) as browser:
            await open_job(browser, base_url, "newstatus", 1)
            await browser.wait_for("document.getElementById('live').classList.contains('on')")
            await show(browser, 1)
            assert (
                await http.put(f"/tracking/task/{task_id}", json={"status": "<WAITING-ON-VENDOR>"})
            ).status_code == 200
            await browser.wait_for("document.querySelector('button.task').textContent.includes('<WAITING-ON-VENDOR>')")
            options = await browser.evaluate(
                "[...document.querySelectorAll('.dim-filter option')].map(o => o.textContent)"
            )
            assert options == ["every status", "<WAITING-ON-VENDOR>", "READY"], options
            assert await browser.evaluate("document.querySelector('.dim-filter').value") == "=READY", "still chosen"
            assert await browser.evaluate(f"{GRAPH}.marks().dimmed") == 1


async def test_the_hover_tip_stays_inside_the_graph(base_url, raw_db, tmp_path):
    """The tip of a task at the right edge, with a long name, is placed left of the pointer: below right of it,
    it stuck out of the graph and made its frame scroll sideways."""
    now = datetime.now(UTC)
    await raw_db.tasks.insert_one(task_doc(FIRST, "edge", now, name="a long name " * 20))
    async with Browser(tmp_path) as browser:
        await open_job(browser, base_url, "edge", 1)
        at = await browser.evaluate(f"{GRAPH}.at('{FIRST}')")
        box = await browser.evaluate("document.querySelector('#graph .graph-canvas').getBoundingClientRect().toJSON()")
        await drag_to(browser, at, box["x"] + box["width"] - 40 - at["x"], box["y"] + box["height"] - 20 - at["y"])
        at = await browser.evaluate(f"{GRAPH}.at('{FIRST}')")
        x, y = min(at["x"] + 100, box["x"] + box["width"] - 5), min(at["y"], box["y"] + box["height"] - 5)
        await browser.call("Input.dispatchMouseEvent", type="mouseMoved", x=x, y=y)
        await browser.wait_for("!document.querySelector('.tip').hidden")
        tip = await browser.evaluate("document.querySelector('.tip').getBoundingClientRect().toJSON()")
        assert tip["right"] <= box["right"] and tip["bottom"] <= box["bottom"], (tip, box)
        frame = "document.getElementById('graph')"
        assert await browser.evaluate(f"{frame}.scrollWidth <= {frame}.clientWidth"), "no sideways scrolling"


async def drag_to(browser: Browser, start: dict, dx: float, dy: float) -> None:
    """Drags the graph by (dx, dy) screen pixels from `start`."""
    for kind, step in (("mousePressed", 0), ("mouseMoved", 0.5), ("mouseMoved", 1), ("mouseReleased", 1)):
        await browser.call("Input.dispatchMouseEvent", type=kind, x=start["x"] + dx * step, y=start["y"] + dy * step,
                           button="left", buttons=1, clickCount=1)  # fmt: skip


async def test_a_status_with_a_direction_override_or_100000_characters_stays_in_its_place(base_url, raw_db, tmp_path):
    """12 tasks in status "OK" + U+202E: the count after the status was reversed ("◆ OK21"): the status is
    isolated now. A status of 100,000 characters made the jobs page 761,771 px wide and the job's chip and "Show"
    choice as wide as the page, its text running out of its box: it is cut with "…" (STATUS_CHARS, ui/status.js)."""
    now = datetime.now(UTC)
    docs = [task_doc(FIRST + i, "odd-status", now, status="OK\u202e") for i in range(12)]
    docs.append(task_doc(FIRST + 12, "odd-status", now, status="S" * 100_000))
    await raw_db.tasks.insert_many(docs)
    # where, left to right, the "1" and the "2" of the count "12" are drawn in the chip holding it
    count_digits = (
        "(() => { const chip = [...document.querySelectorAll(SCOPE .chip')].find(c => c.textContent.includes('OK'));"
        " const walker = document.createTreeWalker(chip, NodeFilter.SHOW_TEXT);"
        " for (let node; (node = walker.nextNode());) { const at = node.data.indexOf('12'); if (at < 0) continue;"
        " return [at, at + 1].map(i => { const range = document.createRange(); range.setStart(node, i);"
        " range.setEnd(node, i + 1); return range.getBoundingClientRect().left; }); } return null; })()"
    )
    async with Browser(tmp_path) as browser:
        await browser.open(f"{base_url}/ui/#token={PAGES_TOKEN}")
        await browser.wait_for("document.querySelector('tr[data-job=\"odd-status\"]') !== null")
        first, last = await browser.evaluate(count_digits.replace("SCOPE", '\'tr[data-job="odd-status"]'))
        assert first < last, ("the jobs page's chip", first, last)
        width = await browser.evaluate("[document.documentElement.scrollWidth, innerWidth]")
        assert width[0] <= width[1], f"the jobs page no wider than the window: {width}"
        await browser.screenshot(tmp_path / "odd-status-jobs.png")
        await open_job(browser, base_url, "odd-status", 13)
        first, last = await browser.evaluate(count_digits.replace("SCOPE", "'#head"))
        assert first < last, ("the job's chip", first, last)
        widest = await browser.evaluate(
            "Math.max(...[...document.querySelectorAll('#head .chip, .dim-filter')].map(e => e.offsetWidth))"
        )
        assert widest < 500, f"a chip or the Show choice {widest} px wide"
        options = await browser.evaluate("[...document.querySelectorAll('.dim-filter option')].map(o => o.text)")
        assert "S" * 40 + "…" in options and max(map(len, options)) <= 41, [len(o) for o in options]
        await browser.type(".goto input", str(FIRST + 12))  # centred at a readable zoom: statuses drawn
        await browser.press("Enter")
        await browser.wait_for("document.querySelector('#details h3')?.textContent.includes('60000012')")
        await browser.screenshot(tmp_path / "odd-status-job.png")


async def test_an_empty_status_reads_none_and_the_tab_names_its_job(base_url, raw_db, tmp_path):
    """A status a tool stored as "" showed as a chip of an icon alone, while the Show choice called it none; and
    every tab of the live view was titled alike, whatever job it showed."""
    await raw_db.tasks.insert_one(task_doc(FIRST + 20, "blank-status", datetime.now(UTC), status=""))
    async with Browser(tmp_path) as browser:
        await open_job(browser, base_url, "blank-status", 1)
        chip = await browser.wait_for("document.querySelector('#head .chip')?.textContent.trim()")
        assert chip.endswith("none 1"), chip
        assert await browser.evaluate("document.title") == "blank-status · Tracking gateway"
        await browser.screenshot(tmp_path / "blank-status.png")
