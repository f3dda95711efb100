"""Headless Chromium (the Debian package) for the tests that render the gateway's pages: external network
blocked, every request it made read back from its net log."""

from __future__ import annotations

import asyncio
import base64
import itertools
import json
import re
import shutil
import tempfile
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import websockets
from websockets.asyncio.client import ClientConnection

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
_LOCAL = re.compile(r"^(https?|wss?)://(127\.0\.0\.1|localhost)(:\d+)?/")


class CspViolation(AssertionError):
    """A page did something its Content-Security-Policy refused (gateway/page_security.py)."""


@dataclass
class Rendered:
    dom: str
    requests: list[str]
    """Every URL the page asked for, itself included (from the net log: Chromium's own background services,
    which have no page as their initiator, are not the page's and are blocked all the same)."""

    @property
    def external(self) -> list[str]:
        return [url for url in self.requests if not _LOCAL.match(url)]


def _page_requests(net_log: Path, page: str) -> list[str]:
    log = json.loads(net_log.read_text())
    start_job = log["constants"]["logEventTypes"]["URL_REQUEST_START_JOB"]
    urls = []
    for event in log["events"]:
        params = event.get("params") or {}
        if event["type"] != start_job or "url" not in params:
            continue
        initiator = str(params.get("initiator", ""))
        if initiator.startswith("http") or params["url"].split("#")[0] == page.split("#")[0]:
            urls.append(params["url"])
    return urls


def _chromium(workdir: Path) -> list[str]:
    """Chromium without GPU, background services or any host but loopback."""
    assert CHROMIUM, "chromium is not installed (make test installs the Debian package)"
    return [
        CHROMIUM,
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--disable-default-apps",
        "--disable-extensions",
        f"--user-data-dir={workdir / 'profile'}",
        # Nothing but loopback resolves or routes: a page that needs the internet shows it.
        "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1, EXCLUDE localhost",
        "--proxy-server=http://127.0.0.1:9",
        "--proxy-bypass-list=127.0.0.1;localhost",
        "--window-size=1400,900",
    ]


_CONSOLE_CSP = re.compile(r":CONSOLE[^\]]*\] (\".*Content Security Policy.*)$", re.MULTILINE)
"""A console line of Chromium's log (--enable-logging=stderr) reporting a refusal by the page's policy."""


async def render(url: str, workdir: Path, wait_ms: int = 8000, screenshot: Path | None = None) -> Rendered:
    """The page's DOM after its scripts ran, with every host but loopback unreachable. Raises CspViolation if
    the page's Content-Security-Policy refused anything (read from the console lines of Chromium's log)."""
    net_log = workdir / "net-log.json"
    command = [
        *_chromium(workdir),
        f"--log-net-log={net_log}",
        f"--virtual-time-budget={wait_ms}",
        "--enable-logging=stderr",
        "--v=0",
    ]
    command += [f"--screenshot={screenshot}"] if screenshot else ["--dump-dom"]
    process = await asyncio.create_subprocess_exec(
        *command, url, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    stdout, stderr = await asyncio.wait_for(process.communicate(), 120)
    assert process.returncode == 0, f"chromium exited with {process.returncode}"
    violations = _CONSOLE_CSP.findall(stderr.decode(errors="replace"))
    if violations:
        raise CspViolation(f"{url}: the page's Content-Security-Policy refused: " + "; ".join(violations))
    return Rendered(stdout.decode(errors="replace"), _page_requests(net_log, url))


_KEY_CODES = {"Tab": 9, "Enter": 13, " ": 32, "ArrowLeft": 37, "ArrowUp": 38, "ArrowRight": 39, "ArrowDown": 40,
              "+": 187, "-": 189, "0": 48}  # fmt: skip
"""Windows virtual key codes, which Chromium needs to act on a key (move the focus on Tab)."""


def _csp_violation(event: dict[str, Any]) -> str | None:
    """What a DevTools event says the page's policy refused, if it is such a report: Chromium files every
    refusal as a ContentSecurityPolicyIssue (blocked scripts, styles, connections, workers, eval alike) and also
    writes it to the console log."""
    params = event.get("params") or {}
    if event.get("method") == "Audits.issueAdded":
        issue = params.get("issue") or {}
        if issue.get("code") == "ContentSecurityPolicyIssue":
            return json.dumps(issue.get("details", {}).get("contentSecurityPolicyIssueDetails", issue))
    if event.get("method") == "Log.entryAdded":
        text = str((params.get("entry") or {}).get("text", ""))
        if "Content Security Policy" in text:
            return text
    return None


class Browser:
    """A page kept open in headless Chromium, driven over the DevTools protocol: for pages that change while
    the test acts (live updates), which a one-shot --dump-dom cannot show.

    Every refusal by a page's Content-Security-Policy is collected (`csp_violations`), and leaving the block
    raises CspViolation if there was any: every test that drives a page checks that the page's policy lets it
    work, without a line of its own."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self._process: asyncio.subprocess.Process | None = None
        self._socket: ClientConnection | None = None
        self._ids = itertools.count(1)
        self.csp_violations: list[str] = []

    async def __aenter__(self) -> Browser:
        port_file = self.workdir / "profile" / "DevToolsActivePort"
        self._process = await asyncio.create_subprocess_exec(
            *_chromium(self.workdir), "--remote-debugging-port=0", "about:blank",
            stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL,
        )  # fmt: skip
        for _ in range(300):
            if port_file.exists() and port_file.read_text().count("\n") >= 1:
                break
            await asyncio.sleep(0.1)
        port = port_file.read_text().split()[0]
        async with httpx.AsyncClient() as http:
            targets = (await http.get(f"http://127.0.0.1:{port}/json/list")).json()
        page = next(target for target in targets if target["type"] == "page")
        self._socket = await websockets.connect(page["webSocketDebuggerUrl"], max_size=None)
        await self.call("Audits.enable")
        await self.call("Log.enable")
        return self

    async def __aexit__(self, error: type[BaseException] | None, *_: object) -> None:
        """Chromium closes itself (with its helper processes); killed only if it does not within 10 s. A block
        that ended well then fails if the page's policy refused anything meanwhile."""
        if error is None and self._socket is not None:
            await self.evaluate("0")  # the reports sent before now are read
        try:
            await self._close()
        finally:
            if error is None and self.csp_violations:
                raise CspViolation("the page's Content-Security-Policy refused: " + "; ".join(self.csp_violations))

    async def _close(self) -> None:
        if self._socket is not None:
            await self._socket.send(json.dumps({"id": next(self._ids), "method": "Browser.close"}))
            await self._socket.close()
        if self._process is not None:
            try:
                await asyncio.wait_for(self._process.wait(), 10)
            except TimeoutError:
                self._process.kill()
                await self._process.wait()

    async def call(self, method: str, **params: Any) -> dict[str, Any]:
        assert self._socket is not None
        message_id = next(self._ids)
        await self._socket.send(json.dumps({"id": message_id, "method": method, "params": params}))
        while True:
            reply = json.loads(await self._socket.recv())
            violation = _csp_violation(reply)
            if violation is not None:
                self.csp_violations.append(violation)
            if reply.get("id") == message_id:
                assert "error" not in reply, reply
                result: dict[str, Any] = reply["result"]
                return result

    async def open(self, url: str) -> None:
        await self.call("Page.navigate", url=url)

    async def evaluate(self, expression: str) -> Any:
        reply = await self.call("Runtime.evaluate", expression=expression, returnByValue=True, awaitPromise=True)
        assert "exceptionDetails" not in reply, reply
        return reply["result"].get("value")

    async def wait_for(self, expression: str, timeout_s: float = 60) -> Any:
        """The value of `expression` once it is truthy (polled; the page's own timing decides)."""
        deadline = asyncio.get_running_loop().time() + timeout_s
        while True:
            value = await self.evaluate(expression)
            if value:
                return value
            if asyncio.get_running_loop().time() > deadline:
                raise AssertionError(f"never true within {timeout_s:g}s: {expression}")
            await asyncio.sleep(0.05)

    async def click(self, selector: str) -> None:
        """A person's click: the element scrolled into view (as a person would scroll to it), then the mouse
        pressed and released on its middle."""
        box = await self.wait_for(
            f"(() => {{ const e = document.querySelector({json.dumps(selector)}); if (!e) return null;"
            " e.scrollIntoView({block: 'nearest', inline: 'nearest'});"
            " const r = e.getBoundingClientRect(); return r.width && r.height &&"
            " {x: r.x + r.width / 2, y: r.y + r.height / 2}; })()"
        )
        for kind in ("mousePressed", "mouseReleased"):
            await self.call("Input.dispatchMouseEvent", type=kind, x=box["x"], y=box["y"], button="left", clickCount=1)

    async def press(self, key: str) -> None:
        """One key pressed and released on the focused element (`key` as KeyboardEvent.key names it: "+",
        "ArrowLeft"); a printable key also types its character."""
        text = {"text": "\r" if key == "Enter" else key} if len(key) == 1 or key == "Enter" else {}
        code = _KEY_CODES.get(key, ord(key.upper()) if len(key) == 1 else 0)
        for kind in ("keyDown", "keyUp"):
            await self.call("Input.dispatchKeyEvent", type=kind if text or kind == "keyUp" else "rawKeyDown", key=key,
                            windowsVirtualKeyCode=code, **(text if kind == "keyDown" else {}))  # fmt: skip

    async def type(self, selector: str, text: str) -> None:
        """Clicks into the element, then types `text` as a keyboard would insert it."""
        await self.click(selector)
        await self.call("Input.insertText", text=text)

    async def screenshot(self, path: Path) -> None:
        shot = await self.call("Page.captureScreenshot", format="png")
        await asyncio.to_thread(path.write_bytes, base64.b64decode(shot["data"]))


@asynccontextmanager
async def live_view(base_url: str, token: str, job: str, ready: str) -> AsyncIterator[Browser]:
    """Headless Chromium, in a temporary directory of its own, showing `job` in the live view (/ui) once the
    JavaScript expression `ready` is true (60 s at most)."""
    with tempfile.TemporaryDirectory(prefix="bench-ui-", ignore_cleanup_errors=True) as workdir:
        async with Browser(Path(workdir)) as browser:
            await browser.open(f"{base_url}/ui/#token={token}&job={job}")
            await browser.wait_for(ready, timeout_s=60)
            yield browser


def mark_set(name: str) -> str:
    """A JavaScript expression true once the page has set the performance mark `name`."""
    return f"performance.getEntriesByName('{name}').length"


PAGE_MARKS = "Object.fromEntries(performance.getEntriesByType('mark').map(m => [m.name, m.startTime]))"
"""A JavaScript expression: every performance mark the page set, by name, in ms from navigation."""
