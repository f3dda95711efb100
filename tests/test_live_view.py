"""The live view (/ui) in headless Chromium, every host but loopback unreachable: the jobs page, a job's graph,
a change made through REST appearing without a reload, and the table that replaces the graph for big jobs.
Screenshots go to the test's temp dir."""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from pymongo import AsyncMongoClient

from bench.browser import Browser
from bench.data import linked_task_doc, staged_job
from models import GraphStore
from tests.conftest import PAGES_TOKEN
from tests.helpers import gateway_app, served

HEADERS = {"X-Auth-Token": PAGES_TOKEN}
GRAPH_LIMIT = 2000  # ui/job.js


async def create(base_url: str, tasks: list[dict]) -> None:
    async with httpx.AsyncClient(base_url=base_url, headers=HEADERS, timeout=60) as http:
        response = await http.post("/tracking/task", json={"tasks": tasks})
        assert response.status_code == 200, response.text


def texts_of(selector: str) -> str:
    return f"[...document.querySelectorAll({json.dumps(selector)})].map(e => e.textContent.trim())"


@pytest.fixture
async def small_job(base_url) -> list[int]:
    """build -> test -> deploy in job "release-7"."""
    deploy = {"name": "deploy"}
    test = {"name": "test", "status": "RUNNING", "nexts": {"tasks": [deploy]}}
    await create(base_url, [{"name": "build", "status": "DONE", "job-id": "release-7", "nexts": {"tasks": [test]}}])
    async with httpx.AsyncClient(base_url=base_url, headers=HEADERS) as http:
        listed = (await http.get("/tracking/release-7/task/roots")).json()["tasks"]
    return [task["id"] for task in listed]  # by id: created depth-first


async def test_the_jobs_page_lists_a_created_job(base_url, small_job, tmp_path):
    async with Browser(tmp_path) as browser:
        await browser.open(f"{base_url}/ui/#token={PAGES_TOKEN}")
        row = await browser.wait_for("document.querySelector('tr[data-job=\"release-7\"]')?.textContent")
        assert "release-7" in row and "DONE 1" in row and "RUNNING 1" in row
        assert await browser.evaluate("location.hash") == "", "the token leaves the address bar"
        assert await browser.evaluate("sessionStorage.getItem('tracking-token')") == PAGES_TOKEN
        await browser.screenshot(tmp_path / "jobs.png")
        await browser.evaluate("document.querySelector('a[href=\"#job=release-7\"]').click()")
        await browser.wait_for("document.querySelectorAll('.task').length === 3")
    assert (tmp_path / "jobs.png").stat().st_size > 10_000


async def test_the_job_page_shows_every_task_and_a_rest_change_live(base_url, small_job, tmp_path):
    build, test, deploy = small_job
    async with Browser(tmp_path) as browser:
        await browser.open(f"{base_url}/ui/#token={PAGES_TOKEN}&job=release-7")
        await browser.wait_for("document.querySelectorAll('.task').length === 3")
        boxes = await browser.evaluate(
            "Object.fromEntries([...document.querySelectorAll('.task')].map(b => [b.dataset.id, b.textContent]))"
        )
        assert "build · DONE" in boxes[str(build)] and "test · RUNNING" in boxes[str(test)]
        assert "deploy · none" in boxes[str(deploy)]
        assert await browser.evaluate("document.querySelectorAll('.graph svg > path').length") == 2  # the links
        await browser.wait_for("document.getElementById('live').classList.contains('on')")
        async with httpx.AsyncClient(base_url=base_url, headers=HEADERS) as http:
            assert (await http.put(f"/tracking/task/{test}", json={"status": "FAILED"})).status_code == 200
        await browser.wait_for(f"document.querySelector('.task[data-id=\"{test}\"]').textContent.includes('FAILED')")
        assert await browser.evaluate("performance.getEntriesByType('navigation').length") == 1, "no reload"
        await browser.click(f'.task[data-id="{deploy}"] .fill')
        details = await browser.wait_for(
            "document.querySelector('#details h3')?.textContent.includes('deploy') && "
            "document.getElementById('details').textContent"
        )
        assert "History of deploy" in details and "When" in details, "the history table has column headers"
        blocker = f'#details a[data-task="{test}"]'
        assert "test" in await browser.evaluate(f"document.querySelector({json.dumps(blocker)}).textContent"), (
            "deploy waits on test, which is not done: named and linked"
        )
        assert await browser.evaluate(
            f"document.querySelector('.task[data-id=\"{test}\"]').classList.contains('blocking')"
        )
        assert await browser.evaluate(
            f"document.querySelector('.task[data-id=\"{deploy}\"]').classList.contains('selected')"
        )
        hint = await browser.evaluate("document.getElementById('hint').textContent")
        assert "No critical path shown: no task of this job has a start time" in hint
        await browser.screenshot(tmp_path / "job.png")
        await browser.click(blocker)  # follows the link: test is selected now
        await browser.wait_for(
            f"document.querySelector('.task[data-id=\"{test}\"]').classList.contains('selected') && "
            "document.querySelector('#details h3').textContent.includes('test')"
        )
        await browser.screenshot(tmp_path / "job.png")
    assert (tmp_path / "job.png").stat().st_size > 10_000


async def test_the_counts_follow_a_steady_stream_of_status_changes(base_url, tmp_path):
    """20 REST status changes a second for 5 s: the header's done count is never more than 1 s behind."""
    await create(base_url, [{"job-id": "stream", "status": "READY"} for _ in range(100)])
    async with httpx.AsyncClient(base_url=base_url, headers=HEADERS) as http:
        ids = [task["id"] for task in (await http.get("/tracking/stream/task/roots")).json()["tasks"]]
    loop = asyncio.get_running_loop()
    changed_at: list[float] = []  # when each change was stored (its PUT answered)
    seen: list[tuple[float, int]] = []  # (when it was read, the done count the page showed)
    async with Browser(tmp_path) as browser:
        await browser.open(f"{base_url}/ui/#token={PAGES_TOKEN}&job=stream")
        await browser.wait_for("document.getElementById('done-count')?.textContent === '0' && "
                               "document.getElementById('live').classList.contains('on')")  # fmt: skip

        async def change_steadily() -> None:
            start = loop.time()
            async with httpx.AsyncClient(base_url=base_url, headers=HEADERS) as http:
                for number, task_id in enumerate(ids, 1):
                    assert (await http.put(f"/tracking/task/{task_id}", json={"status": "DONE"})).status_code == 200
                    changed_at.append(loop.time())
                    await asyncio.sleep(max(0.0, start + number / 20 - loop.time()))

        async def watch(changing: asyncio.Task[None]) -> None:
            while not changing.done():
                asked = loop.time()
                seen.append((asked, int(await browser.evaluate("document.getElementById('done-count').textContent"))))
                await asyncio.sleep(0.1)

        changing = asyncio.create_task(change_steadily())
        await asyncio.gather(changing, watch(changing))
        await browser.wait_for("document.getElementById('done-count').textContent === '100'", timeout_s=2)
        # every box repainted too, not only the counts
        await browser.wait_for(f"{texts_of('g.task')}.every(text => text.includes('DONE'))", timeout_s=2)
        await browser.screenshot(tmp_path / "stream.png")
    assert changed_at[-1] - changed_at[0] < 6.5, "the stream ran at about 20 changes a second"
    for asked, shown in seen:
        stored_a_second_before = sum(1 for at in changed_at if at < asked - 1.0)
        assert shown >= stored_a_second_before, (asked - changed_at[0], shown, stored_a_second_before)
    assert len({shown for _, shown in seen}) > 5, "the count moved during the stream, not only at its end"


VIEW_BOX = "document.querySelector('.graph svg').viewBox.baseVal"


async def view_box(browser: Browser) -> dict:
    return await browser.evaluate(f"(({{x, y, width, height}}) => ({{x, y, width, height}}))({VIEW_BOX})")


async def test_the_graph_moves_finds_a_task_and_dims_the_other_statuses(base_url, tmp_path):
    """fetch sources -> 60 unit tests and a slow integration test (timed: the critical path)."""
    units = [{"name": f"unit test {i}", "status": "RUNNING"} for i in range(60)]
    slow = {"name": "slow integration", "status": "DONE", "start-time": "2026-11-22T18:01:00Z",
            "finish-time": "2026-11-22T19:00:00Z"}  # fmt: skip
    root = {"name": "fetch sources", "status": "DONE", "job-id": "wide", "start-time": "2026-11-22T18:00:00Z",
            "finish-time": "2026-11-22T18:01:00Z", "nexts": {"tasks": [*units, slow]}}  # fmt: skip
    await create(base_url, [root])
    async with Browser(tmp_path) as browser:
        await browser.open(f"{base_url}/ui/#token={PAGES_TOKEN}&job=wide")
        await browser.wait_for("document.querySelectorAll('g.task').length === 62")
        assert "★ and thick links: the critical path" in await browser.evaluate(
            "document.getElementById('hint').textContent"
        )
        critical = await browser.evaluate(texts_of("g.task.critical"))
        assert len(critical) == 2 and any("slow integration" in text for text in critical), critical
        whole = await view_box(browser)

        await browser.type("#goto input", "INTEGRATION")
        await browser.click("#goto button")
        await browser.wait_for("document.querySelector('#details h3')?.textContent.includes('slow integration')")
        box = await browser.evaluate(
            "document.querySelector('g.task.selected')?.getBoundingClientRect().toJSON() ?? null"
        )  # fmt: skip
        svg = await browser.evaluate("document.querySelector('.graph svg').getBoundingClientRect().toJSON()")
        assert box is not None and "slow integration" in await browser.evaluate(texts_of("g.task.selected") + "[0]")
        assert abs(box["x"] + box["width"] / 2 - (svg["x"] + svg["width"] / 2)) < 5, "centred across"
        assert abs(box["y"] + box["height"] / 2 - (svg["y"] + svg["height"] / 2)) < 5, "centred down"

        await browser.click("[data-act=fit]")
        assert await view_box(browser) == whole
        await browser.evaluate("document.querySelector('.graph svg').focus()")
        await browser.press("+")
        zoomed = await view_box(browser)
        assert zoomed["width"] < whole["width"], "+ zooms in"
        await browser.press("ArrowRight")
        assert (await view_box(browser))["x"] > zoomed["x"], "the arrow keys move the view"
        await browser.press("0")
        assert await view_box(browser) == whole, "0 fits the whole graph"
        await browser.press("Tab")  # from the graph to its first task, by keyboard only
        assert await browser.evaluate("document.activeElement.matches('g.task') && document.activeElement.dataset.id")
        await browser.press("Enter")
        await browser.wait_for("document.querySelector('#details h3')?.textContent.includes('fetch sources')")
        centre = {"x": svg["x"] + svg["width"] / 2, "y": svg["y"] + 5}
        await browser.call("Input.dispatchMouseEvent", type="mouseWheel", deltaX=0, deltaY=-300, **centre)
        await browser.wait_for(f"{VIEW_BOX}.width < {whole['width']}")
        before = await view_box(browser)
        for kind, dx in (("mousePressed", 0), ("mouseMoved", 120), ("mouseReleased", 120)):
            await browser.call("Input.dispatchMouseEvent", type=kind, x=centre["x"] + dx, y=centre["y"],
                               button="left", buttons=1, clickCount=1)  # fmt: skip
        assert (await view_box(browser))["x"] < before["x"], "dragging right shows what lies left"

        await browser.evaluate(
            "const s = document.getElementById('dim'); s.value = 'RUNNING'; s.dispatchEvent(new Event('change'))"
        )
        assert await browser.evaluate("document.querySelectorAll('g.task.dim').length") == 2
        assert await browser.evaluate("document.querySelectorAll('g.task:not(.dim)').length") == 60
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
        await browser.wait_for("document.querySelectorAll('g.task').length === 62")


async def test_a_job_over_the_graph_limit_is_a_live_filtered_table(base_url, tmp_path):
    three = {"name": "a special.three", "status": "READY"}
    two = {"name": "special two", "status": "RUNNING", "nexts": {"tasks": [three]}}
    special = [{"job-id": "huge", "name": "Special one", "status": "READY", "nexts": {"tasks": [two]}}]
    await create(base_url, [{"job-id": "huge", "name": "bulk", "status": "READY"} for _ in range(GRAPH_LIMIT)])
    await create(base_url, special)  # one chain: stages 0, 1 and 2
    rows = texts_of("tr.task")
    async with Browser(tmp_path) as browser:
        await browser.open(f"{base_url}/ui/#token={PAGES_TOKEN}&job=huge")
        await browser.wait_for("document.querySelectorAll('tr.task').length === 100")
        assert await browser.evaluate("document.querySelectorAll('g.task').length") == 0
        assert f"{GRAPH_LIMIT + 3} tasks" in await browser.evaluate("document.getElementById('head').textContent")
        assert "row" in await browser.evaluate("document.getElementById('hint').textContent"), "the table's legend"
        cells = "[...document.querySelectorAll('table.levels tbody tr')].map(r => [...r.cells].map(c => c.textContent))"
        stages = await browser.wait_for(f"{cells}.length === 3 && {cells}")
        assert [(stage[0], stage[1]) for stage in stages] == [("0", "2001"), ("1", "1"), ("2", "1")], stages
        stages = [" ".join(stage[3].split()) for stage in stages]
        assert "READY 2001" in stages[0] and "RUNNING 1" in stages[1], stages
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
        await browser.wait_for(f"{texts_of('table.levels tbody tr')}[2].includes('DONE 1')", 8)  # stages: every 5 s
        options = await browser.evaluate(texts_of("#table-filter option"))
        assert "DONE" in options and "not RUNNING" in options, "a status that appeared joins the choices"
        assert await browser.evaluate("document.querySelector('#table-filter select').value") == "not:RUNNING"
        await browser.screenshot(tmp_path / "table.png")


async def test_a_wrong_token_asks_again(base_url, small_job, tmp_path):
    async with Browser(tmp_path) as browser:
        await browser.open(f"{base_url}/ui/#token=wrong")
        message = await browser.wait_for("document.querySelector('#login .error')?.textContent")
        assert "refused" in message
        assert await browser.evaluate("sessionStorage.getItem('tracking-token')") is None


# ---- big jobs: the overview, the table, the timeline -----------------------------------------------------------

BIG_DB = "tracking_test_big_jobs"
BIG_TASKS, BIG_LEVELS = 100_000, 20
TABLE_TASKS = 12_000  # over the graph limit, whichever it is
T0 = datetime(2026, 11, 22, 22, 0, tzinfo=UTC)


def timed_job(first_id: int, now: datetime) -> list[dict]:
    """fetch (22:00-22:30 on Nov 22) -> 300 builds (from 22:30, 20 min each; the last one still running) ->
    release (after midnight) and one "notes" task that never started: a timeline across two days."""
    builds = range(first_id + 1, first_id + 301)
    release, notes = first_id + 301, first_id + 302
    docs = [linked_task_doc(first_id, "timed", now, list(builds), [])]
    docs[0].update({"name": "fetch", "status": "DONE", "start-time": T0, "finish-time": T0 + timedelta(minutes=30)})
    for number, task_id in enumerate(builds):
        doc = linked_task_doc(task_id, "timed", now, [release], [first_id])
        start = T0 + timedelta(minutes=30, seconds=10 * number)
        doc.update({"name": f"build {number}", "status": "DONE", "start-time": start,
                    "finish-time": start + timedelta(minutes=20)})  # fmt: skip
        docs.append(doc)
    docs[-1].update({"status": "RUNNING", "finish-time": None})
    docs.append(linked_task_doc(release, "timed", now, [], list(builds)))
    docs[-1].update({"name": "release", "status": "DONE", "start-time": T0 + timedelta(hours=3),
                     "finish-time": T0 + timedelta(hours=3, minutes=5)})  # fmt: skip
    docs.append(linked_task_doc(notes, "timed", now, [], []))
    docs[-1].update({"name": "release notes", "status": "READY"})
    return [{key: value for key, value in doc.items() if value is not None} for doc in docs]


@pytest.fixture(scope="module")
async def big_jobs(mongo_uri: str, tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[str]:
    """A gateway on a database of its own, written once for this module with insert_many (the other tests empty
    theirs): "big" (100,000 tasks in 20 stages, work under way in stage 10), "table" (12,000 tasks, one named
    "canary check") and "timed" (a timeline). Yields its address."""
    store = await GraphStore.open(mongo_uri, BIG_DB)  # the collections, their validation and indexes
    client: AsyncMongoClient = AsyncMongoClient(mongo_uri)
    tasks = client[BIG_DB].tasks  # written as bench/data.py writes: straight into `tasks`
    await tasks.delete_many({})
    now = datetime.now(UTC)
    await tasks.insert_many(staged_job(1, BIG_TASKS, BIG_LEVELS, "big", now))
    table = staged_job(200_001, TABLE_TASKS, 12, "table", now)
    table[4321]["name"] = "canary check"
    await tasks.insert_many(table)
    await tasks.insert_many(timed_job(300_001, now))
    app, settings = gateway_app(store, tmp_path_factory.mktemp("big-jobs"), api_tokens=PAGES_TOKEN)
    try:
        async with served(app, settings) as port:
            yield f"http://127.0.0.1:{port}"
    finally:
        await tasks.delete_many({})
        await client.close()
        await store.close()


LEVEL_CELLS = (
    "[...document.querySelectorAll('table.levels tbody tr')].map(r => [...r.cells].map(c => c.textContent.trim()))"
)


async def test_a_100000_task_job_opens_on_its_overview_by_stage(big_jobs, tmp_path):
    async with Browser(tmp_path) as browser:
        await browser.open(f"{big_jobs}/ui/#token={PAGES_TOKEN}&job=big")
        stages = await browser.wait_for(f"{LEVEL_CELLS}.length === {BIG_LEVELS} && {LEVEL_CELLS}", timeout_s=30)
        drawn_ms = await browser.evaluate("performance.getEntriesByName('overview-drawn')[0].startTime")
        asked = await browser.evaluate(
            "performance.getEntriesByType('resource').filter(e => e.name.endsWith('/graphql'))"
            ".map(e => [Math.round(e.startTime), Math.round(e.responseEnd)])"
        )  # fmt: skip
        print(f"\n100,000-task job: overview on screen {drawn_ms:.0f} ms after navigation (goal: under 2,000 ms); "
              f"GraphQL requests [sent, answered] in ms: {asked}")  # fmt: skip
        assert f"{BIG_TASKS} tasks" in await browser.evaluate("document.getElementById('head').textContent")
        assert [(stage[0], stage[1]) for stage in stages] == [(str(d), "5000") for d in range(BIG_LEVELS)]
        columns = {stage[0]: " ".join(stage[3].split()) for stage in stages}
        assert "DONE 5000" in columns["0"] and "READY 5000" in columns["19"]
        assert all(chip in columns["10"] for chip in ("DONE 2500", "FAILED 500", "RUNNING 2000")), columns["10"]
        picked = {stage[0]: stage[4:7] for stage in stages}  # failed, running, blocked
        assert picked["10"] == ["500", "2000", "0"] and picked["11"] == ["0", "0", "2500"], picked
        assert picked["12"] == ["0", "0", "5000"] and picked["9"] == ["0", "0", "0"]
        summary = " ".join((await browser.evaluate("document.querySelector('.picked').textContent")).split())
        assert summary.startswith("500 failed (stage 10) · 2000 running (stage 10) · 42500 blocked (stages 11,")
        assert await browser.evaluate("document.querySelectorAll('g.task').length") == 0, "no task drawn one by one"
        await browser.screenshot(tmp_path / "overview.png")

        await browser.click("table.levels tbody tr:nth-child(11) button.failed")  # stage 10's failed tasks
        rows = texts_of("tr.task")
        failed = f"{rows}.length === 100 && {rows}.every(row => row.includes('FAILED')) && {rows}"
        found = await browser.wait_for(failed, timeout_s=30)
        assert all("stage 10 task" in row for row in found), found[:3]
        assert await browser.evaluate("document.querySelector('#table-filter [name=depth]').value") == "10"
        await browser.screenshot(tmp_path / "overview-failed.png")
        await browser.click("table.levels tbody tr:nth-child(12) button.stage")  # all of stage 11
        eleven = f"{rows}.length === 100 && {rows}.every(row => row.includes('stage 11 task')) && {rows}"
        assert all("READY" in row for row in await browser.wait_for(eleven, timeout_s=30))
        assert await browser.evaluate("document.querySelector('#table-filter select').value") == "", "any status"
    assert drawn_ms < 20_000


async def test_a_12000_task_job_is_searched_filtered_and_selected_in_its_table(big_jobs, tmp_path):
    rows = texts_of("tr.task")
    async with Browser(tmp_path) as browser:
        await browser.open(f"{big_jobs}/ui/#token={PAGES_TOKEN}&job=table")
        await browser.wait_for("document.querySelectorAll('tr.task').length === 100")
        await browser.wait_for("document.querySelector('table.levels') !== null", timeout_s=30)  # settled
        await browser.type("#table-filter input[name=name]", "CANARY")
        await browser.click("#table-filter button")
        found = await browser.wait_for(f"{rows}.length === 1 && {rows}")
        assert "canary check" in found[0] and "DONE" in found[0]
        await browser.click("tr.task td:nth-child(2)")
        await browser.wait_for("document.querySelector('#details h3')?.textContent.includes('canary check')")
        assert await browser.evaluate("document.querySelector('tr.task').classList.contains('selected')")
        canary = await browser.evaluate("document.querySelector('tr.task').dataset.id")
        await browser.wait_for("document.getElementById('live').classList.contains('on')")
        async with httpx.AsyncClient(base_url=big_jobs, headers=HEADERS) as http:
            assert (await http.put(f"/tracking/task/{canary}", json={"status": "FAILED"})).status_code == 200
        await browser.wait_for(f"{rows}.length === 1 && {rows}[0].includes('FAILED')", 5)  # live, no reload
        assert await browser.evaluate("document.querySelector('tr.task').classList.contains('selected')"), (
            "the selected row stays marked"
        )

        await browser.evaluate("document.querySelector('#table-filter input[name=name]').value = ''")
        await browser.evaluate("document.querySelector('#table-filter select').value = 'in:RUNNING'")
        await browser.click("#table-filter button")
        await browser.wait_for(f"{rows}.length === 100 && {rows}.every(row => row.includes('RUNNING'))")
        await browser.click("#next")
        found = await browser.wait_for(f"!document.getElementById('previous').disabled && {rows}")
        assert len(found) == 100 and all("RUNNING" in row for row in found), "the filter holds on the next page"
        await browser.evaluate("document.getElementById('graph').scrollTop = 0")  # the filter in sight
        await browser.screenshot(tmp_path / "table-running.png")
    async with httpx.AsyncClient(base_url=big_jobs, headers=HEADERS) as http:  # as the other tests found it
        assert (await http.put(f"/tracking/task/{canary}", json={"status": "DONE"})).status_code == 200


AXIS = texts_of("#timeline-axis text.tick")
BAR_TITLES = texts_of(".timeline .bar title")


SPAN_MS = (
    "(() => { const [a, b] = document.getElementById('timeline-span').textContent.split(' UTC')[0].split(' → ');"
    " return Date.parse(b.replace(' ', 'T') + 'Z') - Date.parse(a.replace(' ', 'T') + 'Z'); })()"
)


async def span_ms(browser: Browser) -> float:
    """The time window the timeline shows, in ms, as its tools say (to the second)."""
    return await browser.evaluate(SPAN_MS)


async def test_the_timeline_of_a_job_zooms_and_draws_only_the_rows_in_sight(big_jobs, tmp_path):
    async with Browser(tmp_path) as browser:
        await browser.open(f"{big_jobs}/ui/#token={PAGES_TOKEN}&job=timed")
        await browser.wait_for("document.querySelectorAll('g.task').length === 303")
        await browser.click("[data-view=timeline]")
        await browser.wait_for("document.querySelectorAll('.timeline .bar').length > 0")
        drawn = await browser.evaluate("document.querySelectorAll('.timeline .bar').length")
        assert 10 < drawn < 100, f"{drawn} of 302 rows drawn: only those in sight"
        assert await browser.evaluate(texts_of(".timeline text.stage")) == ["Stage 0", "Stage 1"], "those in sight"
        labels = await browser.evaluate(AXIS)
        assert all(re.fullmatch(r"\d\d-\d\d \d\d:\d\d|\d{4}-\d\d-\d\d|UTC", label) for label in labels), labels
        assert any(label.startswith("11-2") or label.startswith("2026-11-2") for label in labels), labels
        untimed = await browser.evaluate("document.getElementById('untimed').textContent")
        assert "1 task without a start time" in untimed and "release notes" in untimed
        assert await browser.evaluate(f"{BAR_TITLES}.find(t => t.includes('build 299')) ?? null") is None, (
            "build 299 is far below: not drawn"
        )
        critical = await browser.evaluate(texts_of(".timeline .bar.critical text"))
        assert critical and all(text.startswith("★") for text in critical), "the critical path is marked"

        whole = await span_ms(browser)
        await browser.click(".timeline-tools [data-act=in]")
        assert await span_ms(browser) < whole * 0.7, "+ zooms in"
        await browser.evaluate("document.getElementById('timeline-rows').focus()")
        for _ in range(8):
            await browser.press("+")
        zoomed = await span_ms(browser)
        assert zoomed < whole / 20
        await browser.press("-")
        assert await span_ms(browser) > zoomed, "- zooms out"
        await browser.press("0")
        assert abs(await span_ms(browser) - whole) < 5000, "0 shows the whole job (which grows: a task runs)"
        axis = await browser.evaluate("document.getElementById('timeline-axis').getBoundingClientRect().toJSON()")
        at = {"x": axis["x"] + 300, "y": axis["y"] + axis["height"] / 2}
        await browser.call("Input.dispatchMouseEvent", type="mouseWheel", deltaX=0, deltaY=-300, **at)
        assert await span_ms(browser) < whole, "the wheel over the axis zooms in"
        build = "document.querySelector('.timeline .bar[data-id=\"300002\"] rect').getBoundingClientRect()"
        await browser.press("0")
        at["x"] = await browser.evaluate(f"{build}.x")
        for _ in range(11):  # into the builds, where the pointer is
            await browser.call("Input.dispatchMouseEvent", type="mouseWheel", deltaX=0, deltaY=-300, **at)
        assert await browser.evaluate(f"{build}.width") > 100, "20 minutes are wide now"
        labels = await browser.evaluate(AXIS)
        assert any(re.fullmatch(r"(\d\d-\d\d )?\d\d:\d\d(:\d\d)?", label) for label in labels), labels
        await browser.click(".timeline .bar[data-id='300002'] rect")
        await browser.wait_for("document.querySelector('#details h3')?.textContent.includes('build 0')")
        await browser.screenshot(tmp_path / "timeline-zoomed.png")
        await browser.click(".timeline-tools [data-act=in]")

        await browser.press("0")  # the keys work on the buttons too, the focus is on the last one clicked
        await browser.wait_for(f"Math.abs({SPAN_MS} - {whole}) < 5000")
        await browser.evaluate("const r = document.getElementById('timeline-rows'); r.scrollTop = r.scrollHeight")
        last = await browser.wait_for(f"{BAR_TITLES}.find(t => t.includes('build 299')) ?? null")
        assert "RUNNING" in last and "running," in last and "so far" in last, "a running bar ends now"
        await browser.click(".timeline .bar:last-of-type rect")
        await browser.wait_for("document.querySelector('#details h3')?.textContent.includes('release')")
        assert await browser.evaluate("document.querySelector('.timeline .bar.selected') !== null")
        await browser.evaluate("document.getElementById('timeline-rows').scrollTop = 0")
        await browser.screenshot(tmp_path / "timeline.png")
