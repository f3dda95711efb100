"""Fixtures of the gateway tests."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest

from tests.gateway.wire import BODY_TIMEOUT_MS
from tests.helpers import AUTH


@pytest.fixture
async def live(served_gateway) -> int:
    """The gateway behind its own uvicorn configuration (one-second head and body deadlines); its port."""
    return await served_gateway(header_timeout_ms=1000, body_timeout_ms=BODY_TIMEOUT_MS)


@pytest.fixture
async def http(live) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{live}", headers=AUTH, timeout=30) as client:
        yield client
