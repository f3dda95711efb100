"""`beanie migrate` (migrations/, the real CLI in a process of its own) on a real MongoDB holding documents in
the layout of earlier versions: each migration brings them to today's layout, leaves everything else as it is
byte for byte, and is recorded so that it runs once."""

from __future__ import annotations

import asyncio
import sys
from datetime import UTC, datetime
from pathlib import Path

import bson
import pytest
from bson.int64 import Int64
from pymongo import AsyncMongoClient

from models import GraphStore
from models.documents import DOCUMENTS, HistoryEntry, TaskRecord

pytestmark = pytest.mark.slow

PROJECT = Path(__file__).resolve().parent.parent.parent
MIGRATE_DB = "tracking_migrate"
AT = datetime(2026, 12, 1, tzinfo=UTC)


async def _migrate(mongo_uri: str) -> str:
    """Run `beanie migrate` from the project directory (where pyproject.toml names migrations/); its output."""
    beanie = Path(sys.executable).parent / "beanie"
    process = await asyncio.create_subprocess_exec(
        str(beanie), "migrate", "-uri", mongo_uri, "-db", MIGRATE_DB,
        cwd=PROJECT, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
    )  # fmt: skip
    output, _ = await asyncio.wait_for(process.communicate(), timeout=180)
    assert process.returncode == 0, output.decode()
    return output.decode()


@pytest.fixture
async def old_layout(mongo_uri: str):
    """A database the current gateway prepared (validator, indexes), holding tasks written by earlier versions
    and tools, past the validator as they were."""
    client: AsyncMongoClient = AsyncMongoClient(mongo_uri, tz_aware=True)
    await client.drop_database(MIGRATE_DB)
    store = await GraphStore.open(mongo_uri, MIGRATE_DB)
    await store.close()
    database = client[MIGRATE_DB]
    yield database
    await client.drop_database(MIGRATE_DB)
    await client.close()


async def test_link_arrays_are_added_where_an_earlier_layout_left_them_out(mongo_uri, old_layout):
    tasks = old_layout[TaskRecord.Settings.name]
    old = [
        {"_id": Int64(1), "status": "DONE"},  # no link arrays at all
        {"_id": Int64(2), "nexts": None, "previous": [Int64(3)]},  # a null one
        {"_id": Int64(3), "nexts": [Int64(2)], "previous": []},  # already in today's layout
        {"_id": 4.0, "name": "mongosh wrote the id as a double"},
        {"_id": "not-a-task", "note": "no task: left as it is"},
        {"_id": Int64(5), "nexts": "a tool's string"},  # another type: for a person to decide (check reports it)
    ]
    await tasks.insert_many(old, bypass_document_validation=True)
    before = {repr(doc["_id"]): bson.encode(doc) async for doc in tasks.find()}

    output = await _migrate(mongo_uri)

    after = {repr(doc["_id"]): doc async for doc in tasks.find()}
    assert after["1"] == {"_id": 1, "status": "DONE", "nexts": [], "previous": []}
    assert after["2"] == {"_id": 2, "nexts": [], "previous": [3]}
    assert after["4.0"] == {"_id": 4.0, "name": "mongosh wrote the id as a double", "nexts": [], "previous": []}
    for unchanged in ("3", "'not-a-task'"):
        assert bson.encode(after[unchanged]) == before[unchanged], unchanged
    assert after["5"] == {"_id": 5, "nexts": "a tool's string", "previous": []}
    assert "20261206_01_link_arrays_on_every_task.py" in await applied(old_layout), output

    # Recorded: a second run changes nothing, and what it would change (a task added since) is left alone.
    await tasks.insert_one({"_id": Int64(6)}, bypass_document_validation=True)
    await _migrate(mongo_uri)
    assert await tasks.find_one({"_id": 6}) == {"_id": 6}


async def applied(database) -> list[str]:
    """The migrations `migrations_log` records as run."""
    return [entry["name"] async for entry in database["migrations_log"].find({}, {"name": 1})]


async def test_history_entries_no_longer_name_a_job_stored_as_no_string(mongo_uri, old_layout):
    """Entries written before the rule named the number 7 as job "7": a caller scoped to `7` read them."""
    tasks, history = old_layout[TaskRecord.Settings.name], old_layout[HistoryEntry.Settings.name]
    await tasks.insert_many(
        [
            {"_id": Int64(1), "job-id": 7, "nexts": [], "previous": []},
            {"_id": 2.0, "job-id": True, "nexts": [], "previous": []},  # mongosh's id, a boolean job
            {"_id": Int64(3), "job-id": "7", "nexts": [], "previous": []},  # the string: its entries stay
            {"_id": Int64(4), "job-id": 7.5, "nexts": [], "previous": []},
        ],
        bypass_document_validation=True,
    )
    entries = [
        ("e1", 1, "7"),
        ("e2", 2, "true"),
        ("e3", 3, "7"),
        ("e4", 4, "7.5"),
        ("e5", 1, "other"),  # another job the task held then: the task's job-id does not name it
        ("e6", 9, "7"),  # a task deleted since: which type its job had is unknown
    ]
    await history.insert_many(
        [
            {"_id": key, "task": Int64(task), "job": job, "kind": "UPDATED", "fields": [], "at": AT}
            for key, task, job in entries
        ]
    )

    output = await _migrate(mongo_uri)

    jobs = {entry["_id"]: entry["job"] async for entry in history.find()}
    assert jobs == {"e1": None, "e2": None, "e3": "7", "e4": None, "e5": "other", "e6": "7"}, output
    assert "20261207_01_history_of_jobs_stored_as_no_string.py" in await applied(old_layout)
    store = await GraphStore.open(mongo_uri, MIGRATE_DB)
    try:
        seven = store.scoped(("7",))
        read = {task: [change.cursor for change in (await seven.task_history(task, 10)).changes] for task in (1, 3)}
        assert read == {1: [], 3: ["e3"]}
    finally:
        await store.close()


async def test_a_migrated_task_reads_as_the_store_always_read_it(mongo_uri, old_layout):
    """The migration changes what is stored, never what readers are served: an absent array read as []."""
    await old_layout[TaskRecord.Settings.name].insert_one(
        {"_id": Int64(7), "status": "READY"}, bypass_document_validation=True
    )
    store = await GraphStore.open(mongo_uri, MIGRATE_DB)
    try:
        served_before = await store.get_task(7)
        assert (await store.check()).problems_left > 0  # the absent arrays, as check reports them
        await _migrate(mongo_uri)
        assert await store.get_task(7) == served_before == {"_id": 7, "status": "READY", "nexts": [], "previous": []}
        report = await store.check()
        assert report.problems_left == 0, report.lines()
    finally:
        await store.close()


async def test_every_index_the_documents_declare_is_created_at_start(mongo_uri, old_layout):
    """At start-up (GraphStore.open), on a database that had none; `job-id_status` and `status_job-id` both
    (the same fields in the other order, which Beanie's own index creation collapses into one)."""
    declared = {
        document.Settings.name: {index.document["name"] for index in getattr(document.Settings, "indexes", [])}
        for document in DOCUMENTS
    }
    assert declared[TaskRecord.Settings.name]  # the declarations are read, not an empty list
    for name, indexes in declared.items():
        present = set(await old_layout[name].index_information())
        assert indexes <= present, name
