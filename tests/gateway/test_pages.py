"""The pages a person opens (GraphiQL, Swagger UI, ReDoc) rendered in headless Chromium with every host but
loopback unreachable, as in a network without internet: each renders, and no request it makes leaves. GraphiQL
is used as a person would (type the token, click run, read the answer), and the token given on one page is known
on the others of the same tab. Screenshots go to the test's temp dir."""

from __future__ import annotations

import json
import re

import httpx
import pytest

from bench.browser import Browser, render
from tests.conftest import PAGES_TOKEN as TOKEN

TOKEN_KEY = "tracking-token"  # gateway/static/token.js: one sessionStorage key for every page


@pytest.mark.parametrize(
    ("path", "rendered"),
    [
        (f"/graphql#token={TOKEN}", "graphiql-container"),
        ("/docs", "btn authorize"),  # Swagger UI, with its Authorize button for X-Auth-Token
        ("/redoc", "api-content"),
    ],
)
async def test_each_page_renders_offline(base_url, tmp_path, path, rendered):
    page = await render(f"{base_url}{path}", tmp_path)
    assert rendered in page.dom, page.dom[:2000]
    assert page.external == [], "no request may leave the machine"
    assert any("/static/vendor/" in url for url in page.requests)


async def test_graphiql_loads_the_schema_with_the_token_from_the_link(base_url, tmp_path):
    page = await render(f"{base_url}/graphql#token={TOKEN}", tmp_path)
    schema_requests = [url for url in page.requests if url == f"{base_url}/graphql"]
    assert schema_requests, "GraphiQL asked the gateway for the schema"
    assert TOKEN not in "".join(url for url in page.requests if "#" not in url), "the token never goes in a URL"
    editor_text = re.sub(r"<[^>]+>", "", page.dom.split('class="graphiql-container"', 1)[-1])
    assert "jobs(first: 10)" in editor_text, "the example query is in the editor"  # as text, whatever the markup


async def test_graphiql_asks_for_the_token_when_it_has_none(base_url, tmp_path):
    page = await render(f"{base_url}/graphql", tmp_path, wait_ms=3000)
    assert re.search(r'<form id="token-form"(?![^>]*hidden)', page.dom), "the token form is shown"
    assert 'class="graphiql-container"' not in page.dom


async def test_no_page_references_another_host(base_url):
    async with httpx.AsyncClient(base_url=base_url) as http:
        for path in ("/graphql", "/docs", "/redoc"):
            html = (await http.get(path, headers={"Accept": "text/html"})).text
            assert not re.findall(r"(?:src|href)=[\"']?(?:https?:)?//", html), path


# ---- GraphiQL as a person uses it ------------------------------------------------------------------------------

RESULT = "document.querySelector('.result-window .CodeMirror')?.CodeMirror.getValue()"


@pytest.fixture
async def a_job(base_url) -> str:
    async with httpx.AsyncClient(base_url=base_url, headers={"X-Auth-Token": TOKEN}) as http:
        response = await http.post("/tracking/task", json={"tasks": [{"job-id": "first-job", "status": "RUNNING"}]})
        assert response.status_code == 200, response.text
    return "first-job"


async def run_the_example_query(browser: Browser) -> dict:
    """Clicks GraphiQL's run button; the answer shown in the result pane."""
    await browser.click(".graphiql-execute-button")
    shown = await browser.wait_for(f"{RESULT}?.includes('data') && {RESULT}")
    answer: dict = json.loads(shown)
    return answer


async def test_graphiql_from_a_fresh_tab_asks_for_the_token_at_the_top_then_runs_its_example(base_url, a_job, tmp_path):
    async with Browser(tmp_path) as browser:
        await browser.open(f"{base_url}/graphql")
        await browser.wait_for("document.getElementById('token-form')?.hidden === false")
        form = await browser.evaluate(
            "(() => { const r = document.getElementById('token-form').getBoundingClientRect();"
            " const hit = document.elementFromPoint(r.x + r.width / 2, r.y + 10);"
            " return {top: r.top, height: innerHeight, onTop: hit?.closest('#token-form') != null}; })()"
        )
        assert form["top"] < form["height"] / 3 and form["onTop"], f"the token form is seen at the top: {form}"
        await browser.screenshot(tmp_path / "graphiql-token-form.png")
        await browser.type("#token", TOKEN)
        await browser.click("#token-form button")
        answer = await run_the_example_query(browser)
        await browser.screenshot(tmp_path / "graphiql-answer.png")
        assert "errors" not in answer, answer
        assert [edge["node"]["id"] for edge in answer["data"]["jobs"]["edges"]] == [a_job]
        assert await browser.evaluate(f"sessionStorage.getItem('{TOKEN_KEY}')") == TOKEN
        await browser.click('.graphiql-sidebar button[aria-label*="Documentation"]')
        explorer = await browser.wait_for("document.querySelector('.graphiql-doc-explorer')?.textContent")
        assert "Root Types" in explorer and "query: Query" in explorer, "the schema was loaded with the token"
        await browser.evaluate(
            "[...document.querySelectorAll('.graphiql-editor-tools button')].find(b => b.textContent === 'Headers')"
            ".click()"
        )
        headers = await browser.wait_for(
            "(e => e && e.offsetHeight > 0 && [e.CodeMirror.getValue()])"
            "(document.querySelector('.graphiql-editor-tool .CodeMirror:not(.graphiql-variables *)'))"
        )
        assert headers == [""], "no header is set that would replace the token"
    assert (tmp_path / "graphiql-answer.png").stat().st_size > 10_000


async def test_graphiql_from_the_live_view_link_needs_no_token_again(base_url, a_job, tmp_path):
    async with Browser(tmp_path) as browser:
        await browser.open(f"{base_url}/ui/#token={TOKEN}")
        await browser.wait_for(f"document.querySelector('tr[data-job=\"{a_job}\"]') !== null")
        await browser.click('nav a[href="/graphql"]')
        await browser.wait_for(
            "location.pathname === '/graphql' && document.querySelector('.graphiql-container') !== null"
        )
        assert await browser.evaluate("document.getElementById('token-form').hidden") is True
        answer = await run_the_example_query(browser)
        assert [edge["node"]["id"] for edge in answer["data"]["jobs"]["edges"]] == [a_job]
        await browser.screenshot(tmp_path / "graphiql-from-live-view.png")


async def test_a_refused_token_in_graphiql_asks_again(base_url, tmp_path):
    async with Browser(tmp_path) as browser:
        await browser.open(f"{base_url}/graphql#token=wrong")
        message = await browser.wait_for(
            "document.getElementById('token-form')?.hidden === false && "
            "document.getElementById('token-error').textContent"
        )
        assert "refused" in message
        assert await browser.evaluate(f"sessionStorage.getItem('{TOKEN_KEY}')") is None
        await browser.screenshot(tmp_path / "graphiql-refused.png")


async def test_swagger_ui_takes_the_link_token_and_shares_it_with_graphiql(base_url, tmp_path):
    async with Browser(tmp_path) as browser:
        await browser.open(f"{base_url}/docs#token={TOKEN}")
        await browser.wait_for("document.querySelector('.btn.authorize.locked') !== null")
        assert await browser.evaluate("location.hash") == "", "the token leaves the address bar"
        assert await browser.evaluate("ui.authSelectors.authorized().toJS().apiKey.value") == TOKEN
        await browser.screenshot(tmp_path / "swagger-authorized.png")
        await browser.open(f"{base_url}/graphql")
        await browser.wait_for("document.querySelector('.graphiql-container') !== null")
        assert await browser.evaluate("document.getElementById('token-form').hidden") is True
        await browser.open(f"{base_url}/docs")
        await browser.wait_for("document.querySelector('.btn.authorize.locked') !== null")  # the same tab: still known
        await browser.evaluate("ui.authActions.logout(['apiKey'])")  # Logout in Authorize's dialog
        assert await browser.evaluate(f"sessionStorage.getItem('{TOKEN_KEY}')") is None
