"""The live view's graph in headless Chromium: a canvas, whose tasks are found with its `graphView`, clicked where
it draws them, and its pixels read; moving, finding and dimming; the table that replaces the graph for jobs over
the limit and the neighbourhood drill-down; small graphs readable as first shown. Screenshots go to the test's
temp dir."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import httpx
import pytest

from bench.browser import Browser
from bench.data import layered_job, task_doc
from tests.conftest import PAGES_TOKEN
from tests.ui.pages import GRAPH, GRAPH_LIMIT, HEADERS, HOOD, click_task, create, drag, pixel_beside, texts_of


async def view_box(browser: Browser) -> dict:
    """The part of the layout in view: {x, y, width, height} in layout units."""
    view: dict = await browser.evaluate(f"{GRAPH}.view()")
    return view


async def canvas_box(browser: Browser) -> dict:
    box: dict = await browser.evaluate(
        "document.querySelector('#graph .graph-canvas').getBoundingClientRect().toJSON()"
    )  # fmt: skip
    return box


async def test_the_graph_moves_finds_a_task_and_dims_the_other_statuses(base_url, tmp_path):
    """fetch sources -> 60 unit tests and a slow integration test (timed: the critical path)."""
    units = [{"name": f"unit test {i}", "status": "RUNNING"} for i in range(60)]
    began = datetime.now(UTC) - timedelta(hours=2)  # beside running tasks: relative to now, as the page measures

    def minutes_in(minutes: int) -> str:
        return (began + timedelta(minutes=minutes)).isoformat()

    slow = {"name": "slow integration", "status": "DONE", "start-time": minutes_in(1), "finish-time": minutes_in(60)}
    root = {"name": "fetch sources", "status": "DONE", "job-id": "wide", "start-time": minutes_in(0),
            "finish-time": minutes_in(1), "nexts": {"tasks": [*units, slow]}}  # fmt: skip
    await create(base_url, [root])
    async with Browser(tmp_path) as browser:
        await browser.open(f"{base_url}/ui/#token={PAGES_TOKEN}&job=wide")
        await browser.wait_for("document.querySelectorAll('button.task').length === 62")
        assert "★ and thick links: the critical path" in await browser.evaluate(
            "document.getElementById('hint').textContent"
        )
        critical = await browser.evaluate(texts_of("button.task.critical"))
        assert len(critical) == 2 and any("slow integration" in text for text in critical), critical
        canvas = await canvas_box(browser)
        middle = {"x": canvas["x"] + canvas["width"] / 2, "y": canvas["y"] + canvas["height"] / 2}
        await browser.click("[data-act=fit]")
        whole = await view_box(browser)

        await browser.type(".goto input", "INTEGRATION")
        await browser.click(".goto button")
        await browser.wait_for("document.querySelector('#details h3')?.textContent.includes('slow integration')")
        selected = await browser.wait_for(f"{GRAPH}.marks().selected")
        assert "slow integration" in await browser.evaluate(texts_of("button.task.selected") + "[0]")
        shown = await browser.evaluate(f"{GRAPH}.at({json.dumps(selected)})")
        assert abs(shown["x"] - middle["x"]) < 5 and abs(shown["y"] - middle["y"]) < 5, "centred"
        assert sum(await browser.evaluate(pixel_beside(selected, -110 - 5))) < 150, "outlined in black"

        await browser.click("[data-act=fit]")
        assert await view_box(browser) == whole
        await browser.evaluate("document.querySelector('#graph .graph-canvas').focus()")
        await browser.press("+")
        zoomed = await view_box(browser)
        assert zoomed["width"] < whole["width"], "+ zooms in"
        await browser.press("ArrowRight")
        assert (await view_box(browser))["x"] > zoomed["x"], "the arrow keys move the view"
        await browser.press("0")
        assert await view_box(browser) == whole, "0 fits the whole graph"
        await browser.press("Tab")  # from the graph to its first task, by keyboard only
        assert await browser.evaluate(
            "document.activeElement.matches('button.task') && document.activeElement.dataset.id"
        )
        await browser.press("Enter")
        await browser.wait_for("document.querySelector('#details h3')?.textContent.includes('fetch sources')")
        await browser.call("Input.dispatchMouseEvent", type="mouseWheel", deltaX=0, deltaY=-300, **middle)
        await browser.wait_for(f"{GRAPH}.view().width < {whole['width']}")
        before = await view_box(browser)
        await drag(browser, middle, 120)
        assert (await view_box(browser))["x"] < before["x"], "dragging right shows what lies left"

        await browser.evaluate(
            "const s = document.querySelector('.dim-filter'); s.value = '=RUNNING';"
            " s.dispatchEvent(new Event('change'))"
        )
        assert await browser.evaluate("document.querySelectorAll('button.task.dim').length") == 2
        assert await browser.evaluate("document.querySelectorAll('button.task:not(.dim)').length") == 60
        assert await browser.evaluate(f"{GRAPH}.marks().dimmed") == 2
        await browser.screenshot(tmp_path / "graph.png")

        await browser.click("[data-view=timeline]")
        bars = await browser.wait_for(
            f"{texts_of('.timeline .bar text')}.length === 2 && {texts_of('.timeline .bar text')}"
        )
        assert "fetch sources" in bars[0] and "slow integration" in bars[1], "by stage, then start"
        assert await browser.evaluate(texts_of(".timeline text.stage")) == ["Stage 0", "Stage 1"]
        assert "60 tasks without a start time (not on the time axis)" in await browser.evaluate(
            "document.getElementById('graph').textContent"
        )
        widths = await browser.evaluate(
            "[...document.querySelectorAll('.timeline .bar rect')].map(r => r.width.baseVal.value)"
        )
        assert widths[1] > 30 * widths[0], "59 minutes against 1"
        await browser.click(".timeline .bar:nth-of-type(1) rect")
        await browser.wait_for("document.querySelector('#details h3')?.textContent.includes('fetch sources')")
        await browser.screenshot(tmp_path / "timeline.png")
        await browser.click("[data-view=graph]")
        await browser.wait_for("document.querySelectorAll('button.task').length === 62")


async def test_a_job_over_the_graph_limit_is_a_live_filtered_table(base_url, raw_db, tmp_path):
    three = {"name": "a special.three", "status": "READY"}
    two = {"name": "special two", "status": "RUNNING", "nexts": {"tasks": [three]}}
    special = [{"job-id": "huge", "name": "Special one", "status": "READY", "nexts": {"tasks": [two]}}]
    now = datetime.now(UTC)  # the bulk written straight into MongoDB: faster than through REST
    bulk = [task_doc(90_000_000 + i, "huge", now, name="bulk", status="READY") for i in range(GRAPH_LIMIT)]
    await raw_db.tasks.insert_many(bulk)
    await create(base_url, special)  # one chain: stages 0, 1 and 2
    rows = texts_of("tr.task")
    async with Browser(tmp_path) as browser:
        await browser.open(f"{base_url}/ui/#token={PAGES_TOKEN}&job=huge")
        await browser.wait_for("document.querySelectorAll('tr.task').length === 100")
        assert await browser.evaluate("document.querySelector('#graph .graph-canvas')") is None
        assert f"{GRAPH_LIMIT + 3} tasks" in await browser.evaluate("document.getElementById('head').textContent")
        assert "row" in await browser.evaluate("document.getElementById('hint').textContent"), "the table's legend"
        cells = "[...document.querySelectorAll('table.levels tbody tr')].map(r => [...r.cells].map(c => c.textContent))"
        stages = await browser.wait_for(f"{cells}.length === 3 && {cells}")
        assert [(stage[0], stage[1]) for stage in stages] == [("0", str(GRAPH_LIMIT + 1)), ("1", "1"), ("2", "1")], (
            stages
        )
        stages = [" ".join(stage[3].split()) for stage in stages]
        assert f"READY {GRAPH_LIMIT + 1}" in stages[0] and "RUNNING 1" in stages[1], stages
        await browser.click("#next")
        await browser.wait_for("!document.getElementById('previous').disabled")

        await browser.type("#table-filter input[name=name]", "SPECIAL")  # any case, a part of the name
        await browser.click("#table-filter button")
        found = await browser.wait_for(f"{rows}.length === 3 && {rows}")
        assert all("pecial" in row for row in found), found
        assert await browser.evaluate("document.getElementById('previous').disabled"), "a new filter starts at page 1"
        await browser.evaluate(
            "document.querySelector('#table-filter select').value = 'in:RUNNING'"
        )  # fmt: skip
        await browser.click("#table-filter button")
        found = await browser.wait_for(f"{rows}.length === 1 && {rows}")
        assert "special two" in found[0] and "RUNNING" in found[0]
        await browser.evaluate("document.querySelector('#table-filter select').value = 'not:RUNNING'")
        await browser.click("#table-filter button")
        await browser.wait_for(f"{rows}.length === 2")

        await browser.click("tr.task:first-child td:nth-child(2)")
        await browser.wait_for("document.querySelector('#details h3')?.textContent.includes('Special one')")
        assert await browser.evaluate("document.querySelector('tr.task:first-child').classList.contains('selected')")

        await browser.wait_for("document.getElementById('live').classList.contains('on')")
        row_ids = await browser.evaluate("[...document.querySelectorAll('tr.task')].map(r => r.dataset.id)")
        async with httpx.AsyncClient(base_url=base_url, headers=HEADERS) as http:
            assert (await http.put(f"/tracking/task/{row_ids[1]}", json={"status": "DONE"})).status_code == 200
        await browser.wait_for(
            f"document.querySelector('tr.task[data-id=\"{row_ids[1]}\"]')?.textContent.includes('DONE')", 3
        )
        assert await browser.evaluate("document.querySelector('tr.task:first-child').classList.contains('selected')"), (
            "the selection survives the live update"
        )
        await browser.wait_for(f"{texts_of('table.levels tbody tr')}[2].includes('DONE 1')", 60)  # stages: every 5 s
        options = await browser.evaluate(texts_of("#table-filter option"))
        assert "DONE" in options and "not RUNNING" in options, "a status that appeared joins the choices"
        assert await browser.evaluate("document.querySelector('#table-filter select').value") == "not:RUNNING"
        await browser.screenshot(tmp_path / "table.png")


def pipeline(job: str, stages: int, width: int) -> dict:
    """`stages` stages of `width` tasks with long real-looking names, each task feeding the next stage's same
    position; one REST create."""
    later: list[dict] = []
    for stage in reversed(range(stages)):
        later = [{"name": f"stage {stage} · provision network slice {i} for tenant blue-{i}.example.net",
                  "status": ("DONE", "RUNNING", "READY", "FAILED")[(stage + i) % 4],
                  **({"nexts": {"tasks": [later[i]]}} if later else {})} for i in range(width)]  # fmt: skip
    return {"name": f"start {job}", "status": "DONE", "job-id": job, "nexts": {"tasks": later}}


@pytest.mark.parametrize(("stages", "width"), [(4, 10), (10, 20)])  # about 40 and 200 tasks
async def test_a_small_graph_is_readable_as_first_shown(base_url, tmp_path, stages, width):
    job = f"readable-{stages * width}"
    await create(base_url, [pipeline(job, stages, width)])
    async with Browser(tmp_path) as browser:
        await browser.open(f"{base_url}/ui/#token={PAGES_TOKEN}&job={job}")
        await browser.wait_for(f"document.querySelectorAll('button.task').length === {stages * width + 1}")
        canvas = await canvas_box(browser)
        zoom = canvas["width"] / (await view_box(browser))["width"]
        assert zoom >= 0.75, "labels are drawn (12 px text at 9 px or more)"
        await browser.screenshot(tmp_path / f"readable-{stages * width}.png")


async def test_a_graph_too_tall_to_read_whole_opens_with_its_first_root_in_view(base_url, tmp_path):
    job = "tall-roots"
    roots = []
    for row in range(14):  # fourteen roots, each a chain of four: too tall to fit at a readable zoom
        chain: dict = {"name": f"last of row {row}", "status": "READY"}
        for stage in (2, 1):
            chain = {"name": f"stage {stage} of row {row}", "status": "RUNNING", "nexts": {"tasks": [chain]}}
        roots.append({"name": f"root {row}", "status": "DONE", "job-id": job, "nexts": {"tasks": [chain]}})
    await create(base_url, roots)
    async with Browser(tmp_path) as browser:
        await browser.open(f"{base_url}/ui/#token={PAGES_TOKEN}&job={job}")
        await browser.wait_for("document.querySelectorAll('button.task').length === 56")
        root_ids = await browser.evaluate(
            "[...document.querySelectorAll('button.task')].filter(b => b.textContent.includes('root'))"
            ".map(b => b.dataset.id)"
        )
        places = [await browser.evaluate(f"{GRAPH}.at({json.dumps(root)})") for root in root_ids]
        canvas = await canvas_box(browser)
        zoom = canvas["width"] / (await view_box(browser))["width"]
        await browser.screenshot(tmp_path / "tall-roots.png")
    assert zoom == pytest.approx(1, rel=0.01), "too tall to fit readably: shown at full size"
    first = min(places, key=lambda place: place["y"])
    assert canvas["top"] < first["y"] < canvas["bottom"], ("the first root is in view", first, canvas)
    assert all(canvas["left"] < place["x"] < canvas["right"] for place in places), "the roots' column is in view"


async def insert_layered(raw_db, first_id: int, count: int, job: str) -> None:
    """A job of 20 equal stages, each task linked to two of the next stage, written straight into MongoDB
    (bench.data.layered_job: task i is READY, RUNNING, DONE or FAILED as i % 4 is 0 to 3; named "task i")."""
    await raw_db.tasks.insert_many(layered_job(first_id, count, 20, job, datetime.now(UTC)))


async def test_a_6000_task_graph_goes_to_a_task_filters_and_pans(base_url, raw_db, tmp_path):
    first = 70_000_000
    await insert_layered(raw_db, first, 6000, "six-k")
    wanted = first + 10 * 300 + 17  # stage 10: RUNNING (id % 4 == 1)
    async with Browser(tmp_path) as browser:
        await browser.open(f"{base_url}/ui/#token={PAGES_TOKEN}&job=six-k")
        await browser.wait_for(f"{GRAPH}?.tasks === 6000", timeout_s=60)
        assert await browser.evaluate("performance.getEntriesByName('graph-drawn').length") == 1
        canvas = await canvas_box(browser)
        middle = {"x": canvas["x"] + canvas["width"] / 2, "y": canvas["y"] + canvas["height"] / 2}

        await browser.type(".goto input", f"task {wanted}")
        await browser.press("Enter")
        await browser.wait_for(f"document.querySelector('#details h3')?.textContent.includes('task {wanted}')")
        await browser.wait_for(f"{GRAPH}.marks().selected === '{wanted}'")
        at = await browser.evaluate(f"{GRAPH}.at('{wanted}')")
        assert abs(at["x"] - middle["x"]) < 5 and abs(at["y"] - middle["y"]) < 5, "centred"
        assert sum(await browser.evaluate(pixel_beside(wanted, -110 - 5))) < 150, "outlined in black"
        assert await browser.evaluate(pixel_beside(wanted, -106)) == [0x00, 0x72, 0xB2], "RUNNING's fill"
        blocking = await browser.evaluate(f"{GRAPH}.marks().blocking")
        assert str(wanted - 300) in blocking, "the task before it, not done, is outlined as blocking"

        await browser.evaluate(
            "const s = document.querySelector('.dim-filter'); s.value = '=FAILED'; s.dispatchEvent(new Event('change'))"
        )
        assert await browser.evaluate(f"{GRAPH}.marks().dimmed") == 4500
        await browser.wait_for(f"{pixel_beside(wanted, -106)}[0] > 200", timeout_s=60)  # RUNNING is pale now
        failed = wanted + 2
        assert await browser.evaluate(f"{GRAPH}.at('{failed}')")
        await browser.evaluate("document.querySelector('.goto input').value = ''")
        await browser.type(".goto input", str(failed))  # by id
        await browser.press("Enter")
        await browser.wait_for(f"{GRAPH}.marks().selected === '{failed}'")
        assert await browser.evaluate(pixel_beside(failed, -106)) == [0xD5, 0x5E, 0x00], "FAILED stays bright"
        await browser.screenshot(tmp_path / "six-k.png")

        before = await view_box(browser)
        await drag(browser, middle, 150, 40)
        after = await view_box(browser)
        assert after["x"] < before["x"] and after["y"] < before["y"], "dragging moves the view"
        await browser.evaluate("document.querySelector('#graph .graph-canvas').focus()")
        await browser.press("ArrowDown")
        assert (await view_box(browser))["y"] > after["y"], "the arrow keys move the view"
        await browser.press("0")  # the canvas has the focus: its key for Fit (the button is clicked above)
        await browser.wait_for(f"{GRAPH}.view().height >= 300 * 66", timeout_s=60)  # every stage's 300 tasks
        await browser.screenshot(tmp_path / "six-k-fit.png")


async def test_the_neighbourhood_of_a_task_in_a_job_over_the_limit(base_url, raw_db, tmp_path):
    first = 80_000_000
    await insert_layered(raw_db, first, 10_200, "big")  # 20 stages of 510
    async with Browser(tmp_path) as browser:
        await browser.open(f"{base_url}/ui/#token={PAGES_TOKEN}&job=big")
        await browser.wait_for("document.querySelectorAll('tr.task').length > 0", timeout_s=60)
        assert await browser.evaluate("document.querySelector('#graph .graph-canvas')") is None, "a table, no graph"
        await browser.click(f'tr.task[data-id="{first}"] td:nth-child(2)')
        await browser.wait_for(f"document.querySelector('#details h3')?.textContent.includes('task {first}')")
        await browser.click("#details .open-hood")
        await browser.wait_for(f"{HOOD}?.tasks === 6")  # itself, 2 next tasks, 3 after those (depth 2)
        assert "Neighbourhood of task" in await browser.evaluate("document.querySelector('.hood-head').textContent")
        await browser.wait_for(f"{HOOD}.marks().selected === '{first}'")

        deeper = first + 2 * 510 + 1  # two stages on
        await click_task(browser, deeper, HOOD)
        await browser.wait_for(f"document.querySelector('#details h3')?.textContent.includes('task {deeper}')")
        await browser.click("#details .open-hood")  # the neighbourhood of the task chosen in it
        await browser.wait_for(f"{HOOD}?.tasks === 11")  # 2 + 3 before, 2 + 3 after
        await browser.wait_for(f"{HOOD}.marks().selected === '{deeper}'")
        await browser.evaluate(
            "const s = document.querySelector('.hood-depth'); s.value = '1'; s.dispatchEvent(new Event('change'))"
        )
        await browser.wait_for(f"{HOOD}?.tasks === 5 && {HOOD}.marks().selected === '{deeper}'")
        assert "2 before, 2 after" in await browser.evaluate("document.querySelector('.hood-head').textContent")
        await browser.screenshot(tmp_path / "neighbourhood.png")
        await browser.click(".hood-close")
        await browser.wait_for("!document.querySelector('.hood')")
        assert await browser.evaluate("document.querySelectorAll('tr.task').length") > 0, "the table is still there"


async def test_a_change_of_start_and_finish_times_redraws_the_critical_path(base_url, small_job, tmp_path):
    """No task started, so no critical path and a hint saying so; then tasks get start and finish times through
    REST. Such an update only repainted its box: the hint and the path stayed as first read until some other
    change reloaded the job. Now a change of times reads them again (throttled, like any redraw)."""
    build, test, _ = small_job
    began = datetime.now(UTC) - timedelta(hours=1)
    critical = f"{texts_of('button.task.critical')}.length"
    async with Browser(tmp_path) as browser:
        await browser.open(f"{base_url}/ui/#token={PAGES_TOKEN}&job=release-7")
        await browser.wait_for(f"{GRAPH}?.tasks === 3 && document.getElementById('live').classList.contains('on')")
        assert "no task of this job has a start time yet" in await browser.evaluate(
            "document.getElementById('hint').textContent"
        )
        assert await browser.evaluate(critical) == 0
        async with httpx.AsyncClient(base_url=base_url, headers=HEADERS) as http:
            for task_id, start, finish in ((build, 0, 10), (test, 10, 50)):
                times = {"start-time": (began + timedelta(minutes=start)).isoformat(),
                         "finish-time": (began + timedelta(minutes=finish)).isoformat()}  # fmt: skip
                assert (await http.put(f"/tracking/task/{task_id}", json=times)).status_code == 200
        hint = "document.getElementById('hint').textContent"
        await browser.wait_for(f"{hint}.includes('the critical path (the longest chain by duration)')")
        assert await browser.wait_for(f"{critical} === 3"), "the whole chain starred"
        await browser.screenshot(tmp_path / "critical-after-times.png")
