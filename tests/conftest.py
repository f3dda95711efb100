"""One real MongoDB for the whole test session, a clean database per test: the embedded mongod in a temp dir,
or the replica set TRACKING_TEST_MONGODB_URI names (say, on a machine where the embedded binary cannot run:
macOS, ARM). Tests that are about the embedded mongod, or that need processes of their own, still start them."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from pymongo import AsyncMongoClient

from gateway.embedded import EmbeddedMongo
from models import GraphStore
from models.history import COLLECTIONS
from models.tokens import NamedToken
from tests.helpers import AUTH, gateway_app, lifespan_client, served

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
    for collection in (*COLLECTIONS, NamedToken.Settings.name):
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


@pytest.fixture
async def client(store: GraphStore, tmp_path: Path) -> AsyncIterator[httpx.AsyncClient]:
    """An HTTP client of the gateway in this process (lifespan run), on the test database, sending TOKEN."""
    app, _ = gateway_app(store, tmp_path)
    async with lifespan_client(app, AUTH) as http:
        yield http


@pytest.fixture
async def live(store: GraphStore, tmp_path: Path) -> AsyncIterator[int]:
    """The gateway behind its own uvicorn configuration on a free loopback port, on the test database, accepting
    TOKEN; yields the port."""
    app, settings = gateway_app(store, tmp_path)
    async with served(app, settings) as port:
        yield port
