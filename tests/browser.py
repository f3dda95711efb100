"""Headless Chromium (the Debian package) for the tests that render the gateway's pages: external network
blocked, every request it made read back from its net log."""

from __future__ import annotations

import asyncio
import json
import re
import shutil
from dataclasses import dataclass
from pathlib import Path

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
_LOCAL = re.compile(r"^(https?|wss?)://(127\.0\.0\.1|localhost)(:\d+)?/")


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


async def render(url: str, workdir: Path, wait_ms: int = 8000, screenshot: Path | None = None) -> Rendered:
    """The page's DOM after its scripts ran, with every host but loopback unreachable."""
    assert CHROMIUM, "chromium is not installed (make test installs the Debian package)"
    net_log = workdir / "net-log.json"
    command = [
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
        f"--log-net-log={net_log}",
        f"--virtual-time-budget={wait_ms}",
        "--window-size=1400,900",
    ]
    command += [f"--screenshot={screenshot}"] if screenshot else ["--dump-dom"]
    process = await asyncio.create_subprocess_exec(
        *command, url, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.DEVNULL
    )
    stdout, _ = await asyncio.wait_for(process.communicate(), 120)
    assert process.returncode == 0, f"chromium exited with {process.returncode}"
    return Rendered(stdout.decode(errors="replace"), _page_requests(net_log, url))
