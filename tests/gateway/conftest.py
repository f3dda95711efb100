"""Fixtures of the gateway tests."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from gateway import observability
from tests.gateway.tracing_setup import traced_gateway
from tests.gateway.wire import BODY_TIMEOUT_MS
from tests.helpers import AUTH, lifespan_client
from tests.otlp import Receiver, otlp_receiver


@pytest.fixture
async def live(served_gateway) -> int:
    """The gateway behind its own uvicorn configuration (one-second head and body deadlines); its port."""
    return await served_gateway(header_timeout_ms=1000, body_timeout_ms=BODY_TIMEOUT_MS)


@pytest.fixture
async def http(live) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{live}", headers=AUTH, timeout=30) as client:
        yield client


@pytest.fixture
def receiver() -> Any:
    with otlp_receiver() as running:
        yield running


@pytest.fixture
async def traced(store, mongo_uri, data_dir, receiver) -> AsyncIterator[tuple[httpx.AsyncClient, Receiver]]:
    async with (
        traced_gateway(mongo_uri, data_dir, receiver.endpoint) as (app, *_),
        lifespan_client(app, AUTH) as http,
    ):
        yield http, receiver


@pytest.fixture
def no_earlier_secrets(monkeypatch):
    """The log redacts every token configured in this process so far (gateway.observability.never_log), and
    other tests configure short ones ("t"), which would redact parts of the lines these tests read."""
    monkeypatch.setattr(observability, "_secrets", [])
    monkeypatch.setattr(observability, "_tokens", [])
