"""`tracking-gateway check --repair` on link fields a tool left out, nulled or replaced, on the real MongoDB:
it repairs what it reports as repaired, its counts say what changed, and the next `check` agrees."""

from __future__ import annotations

import asyncio
import subprocess
import sys

import pytest
from bson.int64 import Int64
from pymongo import AsyncMongoClient

from models.check import NON_ARRAY_LINKS, NOT_REPAIRED, ONE_SIDED
from tests.helpers import assert_link_invariant

GATEWAY = [sys.executable, "-m", "gateway"]
BYPASS = {"bypass_document_validation": True}


async def seed_field_less(tasks) -> None:
    """As a tool writing with PyMongo would, past the validator: link fields absent, null, or something else."""
    await tasks.insert_many(
        [
            {"_id": Int64(1), "nexts": [Int64(2)]},  # no previous; 2 has no previous to name 1
            {"_id": Int64(2), "status": "NEW"},  # no link field at all
            {"_id": Int64(3), "nexts": [Int64(4)], "previous": None},
            {"_id": Int64(4), "nexts": None, "previous": None},  # null: 3 -> 4 one-sided
            {"_id": Int64(5), "nexts": [], "previous": [Int64(6)]},  # 6.nexts below is absent: 6 -> 5 one-sided
            {"_id": Int64(6)},
        ],
        **BYPASS,
    )


async def test_repair_completes_links_towards_absent_and_null_fields(store, raw_db):
    await seed_field_less(raw_db.tasks)
    found = await store.check()
    assert found.findings[ONE_SIDED].count == 3
    assert found.findings[NON_ARRAY_LINKS].count == 8  # 1.previous, 3.previous, and both of 2, 4 and 6
    assert "2.nexts is absent" in "\n".join(found.lines()) and "4.nexts is null" in "\n".join(found.lines())

    repaired = await store.check(repair=True)
    assert repaired.findings[ONE_SIDED].repaired == 3
    assert repaired.findings[NON_ARRAY_LINKS].repaired == repaired.findings[NON_ARRAY_LINKS].count
    assert repaired.problems_left == 0
    stored = {doc["_id"]: doc async for doc in raw_db.tasks.find({})}
    assert (stored[2]["previous"], stored[2]["nexts"]) == ([1], [])
    assert (stored[4]["previous"], stored[4]["nexts"]) == ([3], [])
    assert (stored[6]["nexts"], stored[6]["previous"]) == ([5], [])
    assert all(type(i) is Int64 for doc in stored.values() for name in ("nexts", "previous") for i in doc[name])
    assert await assert_link_invariant(raw_db) == {(1, 2), (3, 4), (6, 5)}

    after = await store.check()
    assert {name: finding.count for name, finding in after.findings.items() if finding.count} == {}
    again = await store.check(repair=True)
    assert sum(finding.repaired for finding in again.findings.values()) == 0  # nothing left to change


async def test_a_link_field_of_another_type_is_left_and_not_counted_as_repaired(store, raw_db):
    await raw_db.tasks.insert_many(
        [
            {"_id": Int64(1), "nexts": "2", "previous": []},  # a person must say what "2" meant
            {"_id": Int64(2), "nexts": [], "previous": [Int64(1)]},
            {"_id": Int64(3), "nexts": [Int64(4)], "previous": []},
            {"_id": Int64(4), "nexts": []},
        ],
        **BYPASS,
    )
    report = await store.check(repair=True)
    assert report.findings[ONE_SIDED].count == 2 and report.findings[ONE_SIDED].repaired == 1  # 3 -> 4 only
    assert report.findings[NON_ARRAY_LINKS].count == 2 and report.findings[NON_ARRAY_LINKS].repaired == 1
    assert (await raw_db.tasks.find_one({"_id": 1}))["nexts"] == "2"
    after = await store.check()
    assert after.findings[ONE_SIDED].count == 1 and after.findings[NON_ARRAY_LINKS].count == 1
    assert after.problems_left == 2


async def test_an_array_holding_a_document_still_gets_its_side_of_a_link(store, raw_db):
    await raw_db.tasks.insert_many(
        [
            {"_id": Int64(1), "nexts": [Int64(2)], "previous": []},
            {"_id": Int64(2), "nexts": [], "previous": [{"tool": "note"}, 3.0]},  # a document, and 3 as a double
            {"_id": Int64(3), "nexts": [Int64(2)], "previous": []},
        ],
        **BYPASS,
    )
    report = await store.check(repair=True)
    assert report.findings[ONE_SIDED].count == 1 and report.findings[ONE_SIDED].repaired == 1
    assert (await raw_db.tasks.find_one({"_id": 2}))["previous"] == [{"tool": "note"}, 3.0, 1]


async def test_concurrent_repairs_count_each_change_once(store, other_store, raw_db):
    await seed_field_less(raw_db.tasks)
    first, second = await asyncio.gather(store.check(repair=True), other_store.check(repair=True))
    assert first.findings[ONE_SIDED].repaired + second.findings[ONE_SIDED].repaired == 3
    assert first.findings[NON_ARRAY_LINKS].repaired + second.findings[NON_ARRAY_LINKS].repaired == 8
    assert not first.findings[NOT_REPAIRED].count and not second.findings[NOT_REPAIRED].count
    assert (await store.check()).problems_left == 0


def check_command(mongo_uri: str, database: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = {"PATH": "/usr/bin:/bin", "TRACKING_MONGODB_URI": mongo_uri, "TRACKING_MONGODB_DB": database}
    return subprocess.run([*GATEWAY, "check", *args], env=env, capture_output=True, text=True, timeout=120, check=False)


@pytest.mark.slow
async def test_the_check_command_after_repair_finds_nothing(mongo_uri):
    client: AsyncMongoClient = AsyncMongoClient(mongo_uri)
    try:
        database = client["check_repair_cli"]
        await database.tasks.drop()
        await seed_field_less(database.tasks)
        found = await asyncio.to_thread(check_command, mongo_uri, "check_repair_cli")
        assert found.returncode == 1 and "one-sided links: 3" in found.stdout, found
        repaired = await asyncio.to_thread(check_command, mongo_uri, "check_repair_cli", "--repair")
        assert repaired.returncode == 0, repaired
        assert "one-sided links: 3" in repaired.stdout and "repaired 3" in repaired.stdout
        clean = await asyncio.to_thread(check_command, mongo_uri, "check_repair_cli")
        assert clean.returncode == 0, clean
        assert "one-sided links: 0" in clean.stdout and "link fields that are not arrays: 0" in clean.stdout
    finally:
        await client.drop_database("check_repair_cli")
        await client.close()
