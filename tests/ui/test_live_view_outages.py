"""The live view's header when live updates cannot flow: MongoDB frozen under a gateway of the test's own (its
own mongod, so the shared test database is not disturbed), and the gateway gone. The header says "● live" only
once events can flow, and otherwise since when they cannot and why. Screenshots go to the test's temp dir."""

from __future__ import annotations

import itertools

import httpx

from bench.browser import Browser
from tests.conftest import PAGES_TOKEN
from tests.gateway.test_outages import doomed, frozen
from tests.helpers import gateway_app, served
from tests.ui.pages import HEADERS

__all__ = ["doomed"]  # the fixture, used by name

LIVE = "document.getElementById('live')"
LIVE_ON = f"{LIVE}.classList.contains('on')"

# Every text the header's mark shows and when each WebSocket was opened, recorded in the page.
RECORD = (
    "window.marks = []; new MutationObserver(() => window.marks.push(document.getElementById('live').textContent))"
    ".observe(document.getElementById('live'), { childList: true, characterData: true, subtree: true });"
    "window.sockets = []; { const Opened = WebSocket; window.WebSocket = class extends Opened {"
    " constructor(...given) { super(...given); window.sockets.push(performance.now()); } }; }"
)


async def test_with_mongodb_frozen_the_header_says_since_when_never_live(doomed, tmp_path):
    """mongod frozen: the subscription ends with UNAVAILABLE, and each reconnect is acknowledged at once (the
    handshake needs no MongoDB). The page said "● live" after every ack and reset its back-off, and showed the
    error nowhere. Now it says since when MongoDB is unavailable, never "live" meanwhile, backs off more and more,
    and is live again (events flowing) once mongod answers."""
    mongo, store = doomed
    app, settings = gateway_app(store, tmp_path, api_tokens=PAGES_TOKEN, subscription_resume_ms=1000)
    async with served(app, settings) as port, Browser(tmp_path) as browser:
        base_url = f"http://127.0.0.1:{port}"
        await browser.open(f"{base_url}/ui/#token={PAGES_TOKEN}&job=j")
        await browser.wait_for(f"document.querySelectorAll('.task').length === 3 && {LIVE_ON}")
        await browser.evaluate(RECORD)
        async with frozen(mongo):
            down = f"/^○ MongoDB unavailable since \\d/.test({LIVE}.textContent) && {LIVE}.textContent"
            text = await browser.wait_for(down, timeout_s=60)
            await browser.wait_for("window.sockets.length >= 4", timeout_s=90)
            await browser.screenshot(tmp_path / "mongodb-frozen.png")
            marks, sockets = await browser.evaluate("[window.marks, window.sockets]")
            assert await browser.evaluate(LIVE + ".textContent") == text, "since when: the first failure's time"
        assert "● live" not in marks, marks
        gaps = [later - earlier for earlier, later in itertools.pairwise(sockets)]
        assert gaps[-1] > gaps[0] + 1500, f"the back-off grows (ms between attempts: {gaps})"
        await browser.wait_for(LIVE_ON, timeout_s=120)  # back, with its own MongoDB reads answered
        async with httpx.AsyncClient(base_url=base_url, headers=HEADERS) as http:
            assert (await http.put("/tracking/task/2", json={"status": "FAILED"})).status_code == 200
        await browser.wait_for("document.querySelector('.task[data-id=\"2\"]').textContent.includes('FAILED')")
        await browser.screenshot(tmp_path / "mongodb-back.png")


async def test_with_the_gateway_gone_the_header_says_since_when(store, small_job, tmp_path):
    app, settings = gateway_app(store, tmp_path, api_tokens=PAGES_TOKEN)
    async with Browser(tmp_path) as browser:
        async with served(app, settings) as port:
            await browser.open(f"http://127.0.0.1:{port}/ui/#token={PAGES_TOKEN}&job=release-7")
            await browser.wait_for(f"document.querySelectorAll('.task').length === 3 && {LIVE_ON}")
        down = f"/^○ not live since \\d.*: the gateway is not answering/.test({LIVE}.textContent)"
        await browser.wait_for(down, timeout_s=60)
        await browser.screenshot(tmp_path / "gateway-gone.png")
        assert "read before then" in await browser.evaluate(f"{LIVE}.title")
