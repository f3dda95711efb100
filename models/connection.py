"""Connecting to MongoDB: client options, the transactions check, Beanie initialisation, admin helpers."""

from __future__ import annotations

import asyncio
import logging
import time
from datetime import UTC

from beanie import init_beanie
from bson.codec_options import CodecOptions
from pymongo import AsyncMongoClient, ReadPreference
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import OperationFailure, PyMongoError
from pymongo.read_concern import ReadConcern
from pymongo.write_concern import WriteConcern

from models.errors import StorageUnavailable
from models.task import Counter, Task

log = logging.getLogger(__name__)
MAJORITY_WRITES = WriteConcern("majority")
MAJORITY_READS = ReadConcern("majority")
CODEC_OPTIONS: CodecOptions = CodecOptions(tz_aware=True, tzinfo=UTC)


class TransactionsUnsupported(Exception):
    """The server is a standalone mongod: multi-document transactions are impossible there."""


def make_client(uri: str, *, server_selection_timeout_ms: int = 10_000) -> AsyncMongoClient:
    """One client for the whole process, with majority reads and writes set explicitly."""
    return AsyncMongoClient(
        uri,
        w="majority",
        readConcernLevel="majority",
        tz_aware=True,
        tzinfo=UTC,
        serverSelectionTimeoutMS=server_selection_timeout_ms,
        appname="tracking-gateway",
    )


async def require_transactions(client: AsyncMongoClient) -> None:
    """Refuse to run on a standalone server: every multi-document change needs a transaction."""
    try:
        hello = await client.admin.command("hello")
    except PyMongoError as error:
        raise StorageUnavailable(f"MongoDB did not answer: {error}") from error
    if hello.get("setName") or hello.get("msg") == "isdbgrid":
        return
    raise TransactionsUnsupported(
        "MongoDB at TRACKING_MONGODB_URI is a standalone server, but the gateway needs transactions: "
        "run it as a replica set (mongod --replSet rs0, then rs.initiate()) or a sharded cluster, "
        "or unset TRACKING_MONGODB_URI to use the embedded MongoDB"
    )


async def init_database(client: AsyncMongoClient, db_name: str) -> None:
    """Bind the Beanie documents to the database and create the indexes every query needs."""
    database = client.get_database(
        db_name,
        codec_options=CODEC_OPTIONS,
        read_concern=MAJORITY_READS,
        write_concern=MAJORITY_WRITES,
        read_preference=ReadPreference.PRIMARY,
    )
    await init_beanie(database=database, document_models=[Task, Counter])
    await _keep_pre_images(database)


async def _keep_pre_images(database: AsyncDatabase) -> None:
    """Change streams then carry a deleted task's last state, so job subscribers learn of its deletion."""
    try:
        await database.command("collMod", Task.Settings.name, changeStreamPreAndPostImages={"enabled": True})
    except OperationFailure as error:
        log.warning(
            "cannot enable change stream pre-images on %s (%s): subscriptions filtered by job will miss deletions",
            Task.Settings.name,
            error,
        )


async def ping(client: AsyncMongoClient) -> bool:
    try:
        await client.admin.command("ping")
    except PyMongoError:
        return False
    return True


async def initiate_single_node_replica_set(uri: str, host: str, set_name: str, timeout: float = 60) -> None:
    """Make the mongod at `uri` the primary of a one-member replica set named `set_name` reachable at `host`.

    A data directory from an earlier run may carry a config naming another port; it is forced to `host`.
    """
    client: AsyncMongoClient = AsyncMongoClient(uri, directConnection=True, serverSelectionTimeoutMS=5_000)
    try:
        await _initiate_or_repoint(client, host, set_name, timeout)
        await _wait_until_primary(client, timeout)
    finally:
        await client.close()


async def _initiate_or_repoint(client: AsyncMongoClient, host: str, set_name: str, timeout: float) -> None:
    # The stored config tells a fresh data dir from a restarted one; replSetGetConfig cannot, as it answers
    # NotYetInitialized while mongod is still loading the stored config at start-up.
    if await client.local["system.replset"].find_one() is None:
        members = [{"_id": 0, "host": host}]
        await client.admin.command("replSetInitiate", {"_id": set_name, "members": members})
        return
    config = await _loaded_config(client, timeout)
    if [member["host"] for member in config["members"]] != [host]:
        config["members"] = [{"_id": 0, "host": host}]
        config["version"] += 1
        await client.admin.command("replSetReconfig", config, force=True)


async def _loaded_config(client: AsyncMongoClient, timeout: float) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        try:
            return (await client.admin.command("replSetGetConfig"))["config"]
        except OperationFailure as error:
            if error.code != 94 or time.monotonic() > deadline:  # 94: NotYetInitialized
                raise
        await asyncio.sleep(0.1)


async def _wait_until_primary(client: AsyncMongoClient, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while True:
        hello = await client.admin.command("hello")
        if hello.get("isWritablePrimary"):
            return
        if time.monotonic() > deadline:
            raise StorageUnavailable(f"embedded MongoDB did not become primary within {timeout:.0f}s")
        await asyncio.sleep(0.1)
