"""The pages used as a person uses them, under their Content-Security-Policy (gateway/page_security.py), in
headless Chromium: bench.browser fails a test on any refusal the page reports, so each of these also proves the
policy lets the page work. And the two guards that make a failure here mean something: the browser helpers do
report a refused inline script, and markup stored in a task stays text (were it ever parsed, the policy would
still refuse its handlers, and these tests would fail on both counts). Screenshots go to the test's temp dir."""

from __future__ import annotations

import contextlib
import json
from pathlib import Path

import httpx
import pytest
from fastapi.responses import HTMLResponse

from bench.browser import Browser, CspViolation, render
from tests.conftest import PAGES_TOKEN as TOKEN
from tests.helpers import gateway_app, served

HOSTILE_NAME = '<img src=x onerror="window.pwned = 1">'
HOSTILE_JOB = "<b>bold</b> job"
HOSTILE_NEXT = "<script>window.pwned = 2</script>"
INJECTED = "document.querySelectorAll('main img, main script, main b, .result-window img').length"


@pytest.fixture
async def gateway_with_an_inline_script(store, tmp_path):
    """A gateway with one more page, one holding an inline script and an inline style attribute, as a careless
    change could add: served under the strict policy every page without one of its own gets."""
    app, settings = gateway_app(store, tmp_path)
    page = '<p id="p" style="color: red">page</p><script>document.title = "inline script ran"</script>'
    app.add_api_route("/careless", lambda: HTMLResponse(page))
    async with served(app, settings) as port:
        yield f"http://127.0.0.1:{port}"


async def test_render_fails_on_a_refused_inline_script(gateway_with_an_inline_script, tmp_path):
    with pytest.raises(CspViolation, match="script-src 'self'"):
        await render(f"{gateway_with_an_inline_script}/careless", tmp_path)


async def open_the_careless_page(url: str, workdir: Path) -> None:
    async with Browser(workdir) as browser:
        await browser.open(f"{url}/careless")
        await browser.wait_for("document.getElementById('p') !== null")
        assert await browser.evaluate("document.title") != "inline script ran"
        assert await browser.evaluate("getComputedStyle(document.getElementById('p')).color") == "rgb(0, 0, 0)"


async def test_the_browser_fails_on_a_refused_inline_script_and_style(gateway_with_an_inline_script, tmp_path):
    with pytest.raises(CspViolation) as refused:
        await open_the_careless_page(gateway_with_an_inline_script, tmp_path)
    assert "script-src" in str(refused.value) and "style-src" in str(refused.value)


async def inject_a_script_into_the_live_view(base_url: str, workdir: Path) -> None:
    async with Browser(workdir) as browser:
        await browser.open(f"{base_url}/ui/#token={TOKEN}")
        await browser.wait_for("document.getElementById('main')?.children.length > 0")
        script = "Object.assign(document.createElement('script'), {textContent: 'window.ran = 1'})"
        await browser.evaluate(f"document.body.append({script})")
        assert await browser.evaluate("window.ran") is None


async def test_the_browser_fails_on_a_script_injected_into_a_page_after_it_loaded(base_url, tmp_path):
    with pytest.raises(CspViolation, match="inline"):
        await inject_a_script_into_the_live_view(base_url, tmp_path)


# ---- as a person uses them -------------------------------------------------------------------------------------


@pytest.fixture
async def hostile_job(base_url) -> dict:
    """A job whose id and task names are markup, as any REST caller may store them; the created task."""
    body = {"tasks": [{"job-id": HOSTILE_JOB, "name": HOSTILE_NAME, "status": "RUNNING",
                       "nexts": {"tasks": [{"name": HOSTILE_NEXT, "status": "READY"}]}}]}  # fmt: skip
    async with httpx.AsyncClient(base_url=base_url, headers={"X-Auth-Token": TOKEN}) as http:
        response = await http.post("/tracking/task", json=body)
        assert response.status_code == 200, response.text
    created: dict = response.json()["tasks"][0]
    return created


async def test_markup_stored_in_a_job_and_its_tasks_stays_text_in_the_live_view(base_url, hostile_job, tmp_path):
    async with Browser(tmp_path) as browser:
        await browser.open(f"{base_url}/ui/#token={TOKEN}")
        row = await browser.wait_for("document.querySelector('tr[data-job] a')?.textContent")
        assert row == HOSTILE_JOB
        await browser.screenshot(tmp_path / "jobs-with-markup.png")
        await browser.click("tr[data-job] a")
        await browser.wait_for("document.querySelectorAll('button.task').length === 2")
        buttons = await browser.evaluate("[...document.querySelectorAll('button.task')].map(b => b.textContent)")
        assert any(HOSTILE_NAME in text for text in buttons) and any(HOSTILE_NEXT in text for text in buttons)
        await browser.evaluate("document.querySelector('button.task').click()")
        details = await browser.wait_for("document.querySelector('#details h3')?.textContent")
        assert HOSTILE_NAME in details or HOSTILE_NEXT in details
        assert HOSTILE_JOB in await browser.evaluate("document.querySelector('main h2').textContent")
        await browser.screenshot(tmp_path / "job-with-markup.png")
        assert await browser.evaluate(INJECTED) == 0, "no element was made of the stored markup"
        assert await browser.evaluate("window.pwned") is None


RESULT = "document.querySelector('.result-window .CodeMirror')?.CodeMirror.getValue()"


async def test_markup_stored_in_a_task_stays_text_in_a_graphiql_answer(base_url, hostile_job, tmp_path):
    query = f'{{ task(id: "{hostile_job["id"]}") {{ name jobId }} }}'
    async with Browser(tmp_path) as browser:
        await browser.open(f"{base_url}/graphql#token={TOKEN}")
        await browser.wait_for("document.querySelector('.graphiql-query-editor .CodeMirror') !== null")
        await browser.evaluate(
            f"document.querySelector('.graphiql-query-editor .CodeMirror').CodeMirror.setValue({json.dumps(query)})"
        )
        await browser.click(".graphiql-execute-button")
        shown = await browser.wait_for(f"{RESULT}?.includes('data') && {RESULT}")
        assert json.loads(shown)["data"] == {"task": {"name": HOSTILE_NAME, "jobId": HOSTILE_JOB}}
        await browser.screenshot(tmp_path / "graphiql-markup.png")
        assert await browser.evaluate(INJECTED) == 0
        assert await browser.evaluate("window.pwned") is None


async def test_swagger_ui_try_it_out_executes_a_request_with_the_tabs_token(base_url, hostile_job, tmp_path):
    operation = "#operations-Task-getTask"
    async with Browser(tmp_path) as browser:
        await browser.open(f"{base_url}/docs#token={TOKEN}")
        await browser.wait_for("document.querySelector('.btn.authorize.locked') !== null")
        await browser.click(f"{operation} .opblock-summary-control")
        await browser.click(f"{operation} .try-out__btn")
        await browser.type(f"{operation} .parameters input", str(hostile_job["id"]))
        await browser.click(f"{operation} .execute")
        status = f"document.querySelector('{operation} .live-responses-table .response .response-col_status')"
        assert (await browser.wait_for(f"{status}?.textContent.trim()")) == "200"
        body = await browser.evaluate(f"document.querySelector('{operation} .live-responses-table pre').textContent")
        assert json.loads(body)["name"] == HOSTILE_NAME
        await browser.screenshot(tmp_path / "swagger-try-it-out.png")


async def test_redoc_renders_and_searches_in_its_worker(base_url, tmp_path):
    async with Browser(tmp_path) as browser:
        await browser.open(f"{base_url}/redoc")
        await browser.wait_for("document.querySelector('.api-content h1')?.textContent.includes('NFVD tracking API')")
        nonces = await browser.evaluate("[...document.querySelectorAll('style[data-styled]')].map(s => s.nonce)")
        assert nonces and all(nonces), "the styles ReDoc writes as it renders carry the answer's nonce"
        await browser.type("input.search-input", "previous")
        results = "[...document.querySelectorAll('[data-role=\"search:results\"] li')].map(e => e.textContent)"
        found = await browser.wait_for(f"(r => r.length && r)({results})")
        assert any("previous" in text.lower() for text in found), found
        await browser.screenshot(tmp_path / "redoc-search.png")
        await browser.click('[data-role="search:results"] li')
        await browser.wait_for("location.hash.includes('getPreviousTasks')")
        buttons = "[...document.querySelectorAll('button')]"
        await browser.evaluate(
            f"{buttons}.filter(b => /^(Expand all|200)/.test(b.textContent.trim())).forEach(b => b.click())"
        )
        await browser.screenshot(tmp_path / "redoc-operation.png")


async def test_graphiqls_dialogs_open_with_the_styles_they_write(base_url, tmp_path):
    """GraphiQL's dialogs lock the page's scroll with a <style> element they write: it carries the nonce."""
    async with Browser(tmp_path) as browser:
        await browser.open(f"{base_url}/graphql#token={TOKEN}")
        for dialog in ("Open short keys dialog", "Open settings dialog"):
            await browser.click(f'.graphiql-sidebar button[aria-label="{dialog}"]')
            await browser.wait_for("document.querySelector('.graphiql-dialog') !== null")
            locked = "[...document.querySelectorAll('style[nonce]')].some(s => s.textContent.includes('overflow'))"
            assert await browser.evaluate(locked), "the scroll lock's <style> was written with the nonce"
            await browser.screenshot(tmp_path / f"graphiql-{dialog.split()[1]}.png")
            await browser.click(".graphiql-dialog-close")
            await browser.wait_for("document.querySelector('.graphiql-dialog') === null")


async def change_until_shown(browser: Browser, base_url: str, task_id: int) -> str:
    """Sets the task FAILED through REST until GraphiQL's result shows the event: a change made before the
    page's subscription is live is not its to see, and each write (its update-timestamp changes) is an event."""
    async with httpx.AsyncClient(base_url=base_url, headers={"X-Auth-Token": TOKEN}) as http:
        for _ in range(60):
            if "not over HTTP" in (await browser.evaluate(RESULT) or ""):
                # GraphiQL applies an edit made through its editor's API a moment later: run it again, as a
                # person would whose first click went out with the example still in the editor's state
                await browser.click(".graphiql-execute-button")
            response = await http.put(f"/tracking/task/{task_id}", json={"status": "FAILED"})
            assert response.status_code == 200, response.text
            with contextlib.suppress(AssertionError):  # not shown yet: write again
                shown: str = await browser.wait_for(f"{RESULT}?.includes('FAILED') && {RESULT}", timeout_s=2)
                return shown
    raise AssertionError(f"GraphiQL showed no event of 60 writes: {await browser.evaluate(RESULT)}")


async def test_a_graphiql_subscription_receives_a_rest_change_over_the_websocket(
    base_url, raw_db, hostile_job, tmp_path
):
    """GraphiQL's subscriptions go over a WebSocket to the page's own host: connect-src 'self' lets it through."""
    query = f"subscription {{ taskEvents(jobId: {json.dumps(HOSTILE_JOB)}) {{ kind taskId task {{ status }} }} }}"
    async with Browser(tmp_path) as browser:
        await browser.open(f"{base_url}/graphql#token={TOKEN}")
        await browser.wait_for("document.querySelector('.graphiql-query-editor .CodeMirror') !== null")
        await browser.evaluate(
            f"document.querySelector('.graphiql-query-editor .CodeMirror').CodeMirror.setValue({json.dumps(query)})"
        )
        await browser.click(".graphiql-execute-button")
        shown = await change_until_shown(browser, base_url, hostile_job["id"])
        assert json.loads(shown)["data"]["taskEvents"]["task"] == {"status": "FAILED"}
        await browser.screenshot(tmp_path / "graphiql-subscription.png")
