"""The live view's fixtures."""

from __future__ import annotations

import httpx
import pytest

from tests.ui.pages import HEADERS, create


@pytest.fixture
async def small_job(base_url) -> list[int]:
    """build -> test -> deploy in job "release-7"."""
    deploy = {"name": "deploy"}
    test = {"name": "test", "status": "RUNNING", "nexts": {"tasks": [deploy]}}
    await create(base_url, [{"name": "build", "status": "DONE", "job-id": "release-7", "nexts": {"tasks": [test]}}])
    async with httpx.AsyncClient(base_url=base_url, headers=HEADERS) as http:
        listed = (await http.get("/tracking/release-7/task/roots")).json()["tasks"]
    return [task["id"] for task in listed]  # by id: created depth-first
