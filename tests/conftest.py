"""One real MongoDB for the whole test session, a clean database per test: the embedded mongod in a temp dir,
or the replica set TRACKING_TEST_MONGODB_URI names (say, on a machine where the embedded binary cannot run:
macOS, ARM). Tests that are about the embedded mongod, or that need processes of their own, still start them."""

from __future__ import annotations

import contextlib
import os
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, settings
from pymongo import AsyncMongoClient

from gateway.embedded import EmbeddedMongo
from models import GraphStore
from models.documents import COLLECTIONS
from tests.helpers import AUTH, eventually, gateway_app, lifespan_client, no_open_subscriptions, served

# Hypothesis's deadline and its too_slow health check judge wall time, which a loaded machine stretches (CI
# shares its machine): a test would fail for being slow, not wrong. Off for every property test; a test's own
# suppress_health_check list replaces this one, so those lists name too_slow again.
settings.register_profile("loaded-machine", deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.load_profile("loaded-machine")

TEST_DB = "tracking_test"
PAGES_TOKEN = "pages-token"


@pytest.fixture(scope="session")
async def mongo_uri(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[str]:
    given = os.environ.get("TRACKING_TEST_MONGODB_URI")
    if given:
        yield given
        return
    # 1 GB of WiredTiger cache: the poison tests write 8-16 MB tasks with their change-stream images, which a
    # smaller cache, slow to evict on a loaded machine, refuses as TransactionTooLargeForCache.
    mongo = EmbeddedMongo(tmp_path_factory.mktemp("mongo-data"), cache_size_gb=1.0)
    uri = await mongo.start()
    yield uri
    await mongo.stop()


@pytest.fixture(scope="session")
async def session_store(mongo_uri: str) -> AsyncIterator[GraphStore]:
    store = await GraphStore.open(mongo_uri, TEST_DB)
    yield store
    await store.close()


@pytest.fixture(scope="session")
async def other_store(mongo_uri: str) -> AsyncIterator[GraphStore]:
    """A second gateway process's worth of state on the same database: its own client and in-process queues."""
    store = await GraphStore.open(mongo_uri, TEST_DB)
    yield store
    await store.close()


@pytest.fixture(scope="session")
async def raw_db(mongo_uri: str) -> AsyncIterator:
    """Direct access to what is stored, as ops tooling sees it (tests read and write it to check layout)."""
    client: AsyncMongoClient = AsyncMongoClient(
        mongo_uri, tz_aware=True, datetime_conversion="DATETIME_AUTO", unicode_decode_error_handler="replace"
    )
    yield client[TEST_DB]
    await client.close()


@pytest.fixture
async def store(session_store: GraphStore, raw_db) -> GraphStore:
    """A clean database, and no subscription of an earlier test still open in this process: one that ends while
    this test runs would move the gauges and counts this test reads."""
    await eventually(no_open_subscriptions, timeout=60, what="the subscriptions of earlier tests to end")
    for collection in COLLECTIONS:
        await raw_db[collection].delete_many({})
    return session_store


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    return tmp_path / "var"


@pytest.fixture
async def base_url(store: GraphStore, tmp_path: Path) -> AsyncIterator[str]:
    """A gateway on a real server (for browsers), on the test database, with PAGES_TOKEN."""
    app, settings = gateway_app(store, tmp_path, api_tokens=PAGES_TOKEN)
    async with served(app, settings) as port:
        yield f"http://127.0.0.1:{port}"


GatewayClients = Callable[..., Awaitable[httpx.AsyncClient]]
ServedGateways = Callable[..., Awaitable[int]]


@pytest.fixture
async def gateway_client(store: GraphStore, tmp_path: Path) -> AsyncIterator[GatewayClients]:
    """A factory of HTTP clients of a gateway in this process (lifespan run), on the test database, accepting
    TOKEN: `await gateway_client(headers=AUTH, **settings)`, `settings` as `gateway_app` takes them. Each is
    closed (its lifespan ended) after the test."""
    async with contextlib.AsyncExitStack() as opened:

        async def make(headers: dict[str, str] | None = AUTH, **settings: Any) -> httpx.AsyncClient:
            app, _ = gateway_app(store, tmp_path, **settings)
            return await opened.enter_async_context(lifespan_client(app, headers))

        yield make


@pytest.fixture
async def served_gateway(store: GraphStore, tmp_path: Path) -> AsyncIterator[ServedGateways]:
    """A factory of gateways behind their own uvicorn configuration on a free loopback port, on the test
    database, accepting TOKEN: `await served_gateway(**settings)` gives the port. Each stops after the test."""
    async with contextlib.AsyncExitStack() as opened:

        async def serve(**settings: Any) -> int:
            app, loaded = gateway_app(store, tmp_path, **settings)
            return await opened.enter_async_context(served(app, loaded))

        yield serve


@pytest.fixture
async def client(gateway_client: GatewayClients) -> httpx.AsyncClient:
    """An HTTP client of the gateway in this process (lifespan run), on the test database, sending TOKEN."""
    return await gateway_client()


@pytest.fixture
async def live(served_gateway: ServedGateways) -> int:
    """The gateway behind its own uvicorn configuration on a free loopback port, on the test database, accepting
    TOKEN; its port."""
    return await served_gateway()
