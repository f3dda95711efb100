"""Connecting to MongoDB: client options, the transactions check, the collections' validators and indexes,
admin helpers."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Sequence
from datetime import UTC
from typing import Any

import bson
import pymongo
from beanie import init_beanie
from bson.codec_options import CodecOptions, DatetimeConversion
from opentelemetry.trace import Tracer
from pymongo import AsyncMongoClient, ReadPreference
from pymongo.errors import CollectionInvalid, OperationFailure, PyMongoError
from pymongo.monitoring import CommandListener
from pymongo.read_concern import ReadConcern
from pymongo.write_concern import WriteConcern

from models.defaults import MONGODB_TIMEOUT_MS
from models.documents import DOCUMENTS, TaskCounter, TaskRecord, create_declared_indexes
from models.errors import StorageUnavailable, TransactionsUnsupported
from models.stored_task import Database, MongoClient, TaskDoc, counter_validator, task_validator
from models.tracing import CommandSpans

log = logging.getLogger(__name__)
MAJORITY_WRITES = WriteConcern("majority")
MAJORITY_READS = ReadConcern("majority")
DATETIME_CONVERSION = DatetimeConversion.DATETIME_AUTO
"""A BSON date Python's datetime cannot hold (before year 1 or after 9999: a Java `Long.MAX_VALUE` "never") is
decoded as a `bson.DatetimeMS` instead of raising; readers then leave it out (models.stored_task)."""
UNICODE_DECODE_ERROR_HANDLER = "replace"
"""A string that is not valid UTF-8 (a tool writing raw BSON can store one) is decoded with U+FFFD in place of
each undecodable byte instead of raising."""
CODEC_OPTIONS: CodecOptions[TaskDoc] = CodecOptions(
    tz_aware=True,
    tzinfo=UTC,
    datetime_conversion=DATETIME_CONVERSION,
    unicode_decode_error_handler=UNICODE_DECODE_ERROR_HANDLER,
)
"""How every document, cursor, aggregation and change stream of the gateway is decoded: no stored value raises
(PyMongo's documented options for out-of-range dates and undecodable strings)."""


def make_client(
    uri: str,
    *,
    timeout_ms: int = MONGODB_TIMEOUT_MS,
    event_listeners: Sequence[CommandListener] = (),
    pool_size: int | None = None,
    purpose: str = "",
    tracer: Tracer | None = None,
) -> MongoClient:
    """The client requests use (and, with `pool_size`, one with a pool of its own for another `purpose`), with
    majority reads and writes set explicitly. No operation waits longer than `timeout_ms` for a server (each
    store operation also runs under that deadline as a whole). `event_listeners` see every command it sends (the
    tests and the bench count reads with them). With `tracer`, every command sent under a sampled span is a span
    (models.tracing); without, no listener of tracing: the driver then builds no monitoring events for it."""
    pool: dict[str, Any] = {"maxPoolSize": pool_size} if pool_size is not None else {}
    listeners = [*event_listeners, *([CommandSpans(tracer)] if tracer is not None else [])]
    return AsyncMongoClient(
        uri,
        event_listeners=listeners,
        **pool,
        w="majority",
        readConcernLevel="majority",
        tz_aware=True,
        tzinfo=UTC,
        datetime_conversion=DATETIME_CONVERSION,
        unicode_decode_error_handler=UNICODE_DECODE_ERROR_HANDLER,
        serverSelectionTimeoutMS=timeout_ms,
        connectTimeoutMS=min(timeout_ms, 5_000),
        appname=f"tracking-gateway{purpose and '-' + purpose}",
    )


async def require_transactions(client: MongoClient) -> None:
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


async def prepare_database(
    client: MongoClient, db_name: str, validation_action: str = "error"
) -> tuple[Database, bool]:
    """The database with majority reads and writes; its collections exist with their validators and indexes
    (`init_beanie`, models.documents).
    Also says whether `tasks` keeps change-stream images (see `_keep_images`).

    Several gateways may start at once: every step is idempotent and tolerates another one doing it too.
    """
    database = client.get_database(
        db_name,
        codec_options=CODEC_OPTIONS,
        read_concern=MAJORITY_READS,
        write_concern=MAJORITY_WRITES,
        read_preference=ReadPreference.PRIMARY,
    )
    await _install_validator(database, TaskRecord.Settings.name, task_validator(), validation_action)
    await _install_validator(database, TaskCounter.Settings.name, counter_validator(), validation_action)
    await init_beanie(database=database, document_models=DOCUMENTS, skip_indexes=True)
    await create_declared_indexes(database)
    return database, await _keep_images(database)


async def _install_validator(database: Database, name: str, validator: dict[str, Any], validation_action: str) -> None:
    """`moderate`: documents that were already invalid stay readable and updatable; every new or valid
    document must keep the layout. Without the right to run collMod, the gateway runs on, unvalidated."""
    options: dict[str, Any] = {
        "validator": validator,
        "validationLevel": "moderate",
        "validationAction": validation_action,
    }
    try:
        await database.create_collection(name, **options)
        return
    except CollectionInvalid:
        pass  # it exists (created by an earlier run, another gateway, or a tool): update its validator
    except OperationFailure as error:
        if error.code != 48:  # NamespaceExists
            raise
    current = await _collection_options(database, name)
    if all(_same_bson(current.get(key), value) for key, value in options.items()):
        return  # as wanted already (every start after the first): no collMod, which would wait for every transaction
    try:
        await database.command("collMod", name, **options, maxTimeMS=COLLMOD_WAIT_MS)
    except OperationFailure as error:
        log.warning("cannot install the validator on %s (%s): writes by other tools are not checked", name, error)


COLLMOD_WAIT_MS = 2000
"""How long a start's collMod may wait for its collection's lock: it waits behind every open transaction on the
collection, and every other gateway's reads and writes of it queue behind the collMod meanwhile. Past this the
gateway starts without the change (logged), rather than stall the fleet."""


def _same_bson(stored: object, wanted: object) -> bool:
    """Whether a value MongoDB lists is the one the gateway would send: compared as BSON (a date listed without
    its time zone is the same instant; key order and number types count, as they do to MongoDB)."""
    return bson.encode({"value": stored}) == bson.encode({"value": wanted})


async def _collection_options(database: Database, name: str) -> dict[str, Any]:
    """The options the collection was created or last modified with (validator, images), as MongoDB lists them."""
    found = await (await database.list_collections(filter={"name": name})).to_list()
    options = found[0].get("options") if found else None
    return options if isinstance(options, dict) else {}


async def _keep_images(database: Database) -> bool:
    """Change streams then carry each task as every change left it (replayed events show the state of their
    time) and a deleted task's last state (so job subscribers learn of its deletion)."""
    images = {"enabled": True}
    current = await _collection_options(database, TaskRecord.Settings.name)
    if _same_bson(current.get("changeStreamPreAndPostImages"), images):
        return True
    try:
        await database.command(
            "collMod", TaskRecord.Settings.name, changeStreamPreAndPostImages=images, maxTimeMS=COLLMOD_WAIT_MS
        )
    except OperationFailure as error:
        log.warning(
            "cannot enable change stream images on %s (%s): events show tasks as they are when read, and "
            "subscriptions filtered by job miss deletions",
            TaskRecord.Settings.name,
            error,
        )
        return False
    return True


async def ping(client: MongoClient, timeout_s: float) -> bool:
    """Whether MongoDB answers a ping within `timeout_s`."""
    try:
        async with asyncio.timeout(timeout_s + 0.2):
            with pymongo.timeout(timeout_s):
                await client.admin.command("ping")
    except (PyMongoError, TimeoutError):
        return False
    return True


async def initiate_single_node_replica_set(uri: str, host: str, set_name: str, timeout: float = 60) -> None:
    """Make the mongod at `uri` the primary of a one-member replica set named `set_name` reachable at `host`.

    A data directory from an earlier run may carry a config naming another port; it is forced to `host`.
    """
    client: MongoClient = AsyncMongoClient(uri, directConnection=True, serverSelectionTimeoutMS=5_000)
    try:
        await _initiate_or_repoint(client, host, set_name, timeout)
        await _wait_until_primary(client, timeout)
    finally:
        await client.close()


async def _initiate_or_repoint(client: MongoClient, host: str, set_name: str, timeout: float) -> None:
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


async def _loaded_config(client: MongoClient, timeout: float) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        try:
            config: dict[str, Any] = (await client.admin.command("replSetGetConfig"))["config"]
            return config
        except OperationFailure as error:
            if error.code != 94 or time.monotonic() > deadline:  # 94: NotYetInitialized
                raise
        await asyncio.sleep(0.1)


async def _wait_until_primary(client: MongoClient, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while True:
        hello = await client.admin.command("hello")
        if hello.get("isWritablePrimary"):
            return
        if time.monotonic() > deadline:
            raise StorageUnavailable(f"embedded MongoDB did not become primary within {timeout:.0f}s")
        await asyncio.sleep(0.1)
