"""The data lifecycle on the real MongoDB: archive, purge and restore of whole jobs (byte-exact BSON round trip,
the link invariant across job boundaries, history, subscribers' DELETED events), the CLI commands as processes,
and the TRACKING_RETENTION_DAYS background purge with its lease."""

from __future__ import annotations

import asyncio
import gzip
import json
import signal
import subprocess
import sys
from datetime import UTC, datetime, timedelta

import bson
import pytest
from bson.datetime_ms import DatetimeMS
from bson.decimal128 import Decimal128
from bson.int64 import Int64
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gateway.app import create_app
from gateway.backend import Backend
from gateway.embedded import free_port
from gateway.settings import SettingsError, load_settings
from models import InvalidOperation, TaskAlreadyExists, TaskNotFound
from models.archive import ARCHIVE_FORMAT, read_archive, write_archive
from models.retention import RetentionWorker
from tests.conftest import TEST_DB
from tests.helpers import assert_link_invariant, eventually, next_event, served, subscription, task

OLD = datetime(2020, 1, 1, tzinfo=UTC)
TOKEN = "lifecycle-token"


async def make_old(raw_db, job_id: str | None) -> None:
    """As if nobody had changed the job's tasks since 2020 (the purge reads the stored update-timestamp)."""
    await raw_db.tasks.update_many({"job-id": job_id}, {"$set": {"update-timestamp": OLD}})


async def stored(raw_db, query: dict) -> dict[int, bytes]:
    return {doc["_id"]: bson.encode(doc) async for doc in raw_db.tasks.find(query)}


async def seed(store, raw_db) -> None:
    """Job "old" (1 -> 2 -> 3, and 3 -> 10 into job "live"), job "live" (10 -> 11, and 12 -> 1 into "old"),
    odd values a tool stored, and history entries."""
    await store.create_tasks(
        [
            task(id=1, job_id="old", nexts={"tasks": [{"id": 2, "nexts": {"tasks": [{"id": 3}]}}]}),
            task(id=10, job_id="live", nexts={"tasks": [{"id": 11}]}),
            task(id=12, job_id="live"),
        ]
    )
    await store.add_nexts(3, [10])
    await store.add_nexts(12, [1])
    odd = {
        "never": DatetimeMS(2**62),  # beyond year 9999: decoded as DatetimeMS
        "amount": Decimal128("1.10"),
        "small": 7,  # int32
        "blob": bson.Binary(b"\x00\x01", 0),
        "nested": {"a": [1, 2.5, None, True], "b": Int64(5)},
        "text": "ünïcode ✓",
    }
    await raw_db.tasks.update_one({"_id": 2}, {"$set": odd})
    await make_old(raw_db, "old")
    # Recent entries: old ones would be removed by the TTL index (TRACKING_HISTORY_DAYS) at any moment.
    at = datetime.now(UTC).replace(microsecond=0)
    history = [
        {"_id": f"h{task_id}-{n}", "task": Int64(task_id), "job": "old", "kind": "UPDATED", "fields": [], "at": at}
        for task_id in (1, 2, 3)
        for n in range(2)
    ]
    await raw_db.task_history.insert_many([*history, {"_id": "h10", "task": Int64(10), "kind": "CREATED", "at": at}])


async def test_archive_purge_restore_gives_the_same_bson(store, raw_db, tmp_path):
    await seed(store, raw_db)
    before = await stored(raw_db, {"job-id": "old"})
    history_before = [bson.encode(e) async for e in raw_db.task_history.find({"task": {"$in": [1, 2, 3]}}).sort("_id")]
    lifecycle = store.lifecycle()

    archive = await lifecycle.archive_job("old")
    path = tmp_path / "old.jsonl.gz"
    write_archive(archive, path)
    with gzip.open(path, "rt") as lines:
        header = json.loads(lines.readline())
    assert header["format"] == ARCHIVE_FORMAT
    assert (header["version"], header["job"], header["tasks"], header["history"]) == (1, "old", 3, 6)
    assert {task_id: bson.encode(doc) for task_id, doc in ((d["_id"], d) for d in read_archive(path).tasks)} == before

    report = await lifecycle.purge(30)
    assert [(unit.job_id, unit.task_ids) for unit in report.units] == [("old", [1, 2, 3])]
    assert await raw_db.tasks.count_documents({"job-id": "old"}) == 0
    assert await raw_db.task_history.count_documents({"task": {"$in": [1, 2, 3]}}) == 0
    assert await raw_db.task_history.count_documents({"task": 10}) == 1  # other tasks' history stays
    assert (await raw_db.tasks.find_one({"_id": 10}))["previous"] == []
    assert (await raw_db.tasks.find_one({"_id": 12}))["nexts"] == []
    await assert_link_invariant(raw_db)

    result = await lifecycle.restore(read_archive(path))
    assert (result.tasks, result.history, result.links_left_out) == (3, 6, [])
    assert await stored(raw_db, {"job-id": "old"}) == before  # every field, type, link and date exactly
    history_after = [bson.encode(e) async for e in raw_db.task_history.find({"task": {"$in": [1, 2, 3]}}).sort("_id")]
    assert history_after == history_before
    assert (await raw_db.tasks.find_one({"_id": 10}))["previous"] == [3]  # the other side is linked back
    assert (await raw_db.tasks.find_one({"_id": 12}))["nexts"] == [1]
    await assert_link_invariant(raw_db)


async def test_restore_refuses_ids_in_use_and_changes_nothing(store, raw_db, tmp_path):
    await seed(store, raw_db)
    path = tmp_path / "old.jsonl"
    write_archive(await store.lifecycle().archive_job("old"), path)
    await store.delete_task(1)
    await store.delete_task(3)
    everything = await stored(raw_db, {})
    with pytest.raises(TaskAlreadyExists) as refused:
        await store.lifecycle().restore(read_archive(path))
    assert refused.value.message == "task 2 already exists"
    assert await stored(raw_db, {}) == everything


async def test_restore_refuses_a_link_that_would_close_a_cycle(store, raw_db):
    await seed(store, raw_db)
    archive = await store.lifecycle().archive_job("old")
    await store.lifecycle().purge(30)
    await store.add_nexts(10, [12])  # 3 -> 10 and 12 -> 1 come back with the archive: 1 -> 2 -> 3 -> 10 -> 12 -> 1
    everything = await stored(raw_db, {})
    with pytest.raises(InvalidOperation) as refused:
        await store.lifecycle().restore(archive)
    assert refused.value.message == (
        "the archive: restoring would close a cycle: 1 -> 2 -> 3 -> 10 -> 12 -> 1; nothing was restored"
    )
    assert await stored(raw_db, {}) == everything


async def test_restore_leaves_out_links_to_tasks_that_exist_nowhere(store, raw_db, tmp_path):
    await seed(store, raw_db)
    path = tmp_path / "old.jsonl"
    await make_old(raw_db, "live")
    report = await store.lifecycle().purge(30, archive_dir=tmp_path / "archives")
    assert sorted(unit.job_id or "" for unit in report.units) == ["live", "old"]
    old_file = next(unit.archive for unit in report.units if unit.job_id == "old")
    live_file = next(unit.archive for unit in report.units if unit.job_id == "live")
    assert old_file is not None and live_file is not None
    assert old_file.parent == tmp_path / "archives"
    assert await raw_db.tasks.count_documents({}) == 0
    first = await store.lifecycle().restore(read_archive(old_file))
    assert sorted(first.links_left_out) == [(3, 10), (12, 1)]
    await assert_link_invariant(raw_db)
    await store.lifecycle().restore(read_archive(live_file))  # brings the links between the two jobs back
    edges = await assert_link_invariant(raw_db)
    assert edges == {(1, 2), (2, 3), (3, 10), (10, 11), (12, 1)}
    del path


async def test_purge_selects_inactive_jobs_and_old_jobless_tasks_and_dry_run_changes_nothing(store, raw_db):
    await store.create_tasks(
        [task(id=1, job_id="old"), task(id=2, job_id="old"), task(id=3, job_id="mixed"), task(id=4, job_id="mixed")]
    )
    await store.create_tasks([task(id=5), task(id=6), task(id=7, job_id="fresh")])
    await make_old(raw_db, "old")
    await raw_db.tasks.update_one({"_id": 3}, {"$set": {"update-timestamp": OLD}})  # 4 keeps "mixed" alive
    await raw_db.tasks.update_one({"_id": 5}, {"$set": {"update-timestamp": OLD}})  # jobless: on its own
    everything = await stored(raw_db, {})
    planned = await store.lifecycle().purge(30, dry_run=True)
    assert [(unit.job_id, unit.task_ids) for unit in planned.units] == [("old", [1, 2]), (None, [5])]
    assert "would purge job 'old': 2 tasks" in "\n".join(planned.lines())
    assert await stored(raw_db, {}) == everything
    report = await store.lifecycle().purge(30)
    assert [(unit.job_id, unit.task_ids) for unit in report.units] == [("old", [1, 2]), (None, [5])]
    assert sorted(await stored(raw_db, {})) == [3, 4, 6, 7]


async def test_purge_in_small_batches_keeps_whole_jobs(store, raw_db):
    for job in range(5):
        await store.create_tasks([task(job_id=f"j{job}", nexts={"tasks": [{}, {}]})])
    await raw_db.tasks.update_many({}, {"$set": {"update-timestamp": OLD}})
    report = await store.lifecycle().purge(1, batch=2)
    assert sorted(unit.job_id or "" for unit in report.units) == [f"j{job}" for job in range(5)]
    assert all(len(unit.task_ids) == 3 for unit in report.units)
    assert await raw_db.tasks.count_documents({}) == 0


async def test_a_subscriber_sees_one_deleted_event_per_purged_task(store, raw_db, tmp_path):
    await store.create_tasks([task(id=1, job_id="old", nexts={"tasks": [{"id": 2}]})])
    await make_old(raw_db, "old")
    settings = load_settings(api_tokens=TOKEN, data_dir=tmp_path)
    async with (
        served(create_app(settings, Backend(store=store)), settings) as port,
        subscription(port, {"jobId": "old"}, TOKEN, "kind taskId task { id }", until_live=True) as ws,
    ):
        await store.lifecycle().purge(30)
        events = [await next_event(ws), await next_event(ws)]
    assert sorted((event["kind"], event["taskId"]) for event in events) == [("DELETED", "1"), ("DELETED", "2")]
    assert all(event["task"] is None for event in events)


LINKS = st.lists(
    st.tuples(st.sampled_from([1, 2, 3]), st.sampled_from([10, 11, 12]), st.booleans()), min_size=1, max_size=6
)


@settings(max_examples=15, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(links=LINKS)
async def test_purge_racing_link_additions_across_jobs_keeps_the_invariant(store, other_store, raw_db, links):
    """Job "old" (1, 2, 3) is purged while another gateway links tasks of job "live" (10, 11, 12) to and from
    it: every addition either lands before the purge (and is unlinked by it) or finds its task gone."""
    await raw_db.tasks.delete_many({})
    await store.create_tasks([task(id=i, job_id="old") for i in (1, 2, 3)])
    await store.create_tasks([task(id=i, job_id="live") for i in (10, 11, 12)])
    await make_old(raw_db, "old")

    async def link(old: int, live: int, into_old: bool) -> None:
        try:
            if into_old:
                await other_store.add_nexts(live, [old])
            else:
                await other_store.add_previous(live, [old])
        except TaskNotFound:
            pass  # the purge came first
        except InvalidOperation as error:  # the same two tasks linked both ways
            assert "would close a cycle" in error.message

    results = await asyncio.gather(
        store.lifecycle().purge(30), *(link(*item) for item in links), return_exceptions=True
    )
    assert not [result for result in results if isinstance(result, BaseException)], results
    await assert_link_invariant(raw_db)
    remaining = {doc["_id"] async for doc in raw_db.tasks.find({}, {"_id": 1})}
    assert {10, 11, 12} <= remaining
    assert remaining & {1, 2, 3} in (set(), {1, 2, 3})  # whole jobs or nothing (a linked job is active again)


async def test_the_background_purge_runs_on_one_gateway_at_a_time(store, other_store, raw_db):
    await store.create_tasks([task(id=1, job_id="old"), task(id=2, job_id="fresh")])
    await make_old(raw_db, "old")
    workers = [
        RetentionWorker(each.lifecycle(), f"gateway-{n}", days=30, interval_s=3600)
        for n, each in enumerate((store, other_store))
    ]
    running = [asyncio.create_task(worker.run()) for worker in workers]
    try:
        for _ in range(100):
            if sum(worker.runs for worker in workers) and await raw_db.tasks.count_documents({"_id": 1}) == 0:
                break
            await asyncio.sleep(0.1)
        await asyncio.sleep(0.5)
    finally:
        for each in running:
            each.cancel()
        await asyncio.gather(*running, return_exceptions=True)
    assert sum(worker.runs for worker in workers) == 1  # the other one finds the last run recent
    assert [doc["_id"] async for doc in raw_db.tasks.find({})] == [2]
    lease = await raw_db.task_history_lease.find_one({"_id": "retention"})
    assert lease["owner"] in ("gateway-0", "gateway-1")
    assert lease["lastRun"] > datetime.now(UTC) - timedelta(minutes=1)


async def test_a_gateway_whose_purge_fails_gives_the_lease_up_to_one_that_can(store, other_store, raw_db, tmp_path):
    """One gateway's archive directory is unusable (a file stands where it should be): its purges fail. It must not
    hold the lease and fail at every poll while the other, whose directory works, never runs."""
    await store.create_tasks([task(id=1, job_id="old"), task(id=2, job_id="fresh")])
    await make_old(raw_db, "old")
    blocked = tmp_path / "not-a-directory"
    blocked.write_text("a file")
    failing = RetentionWorker(store.lifecycle(), "failing", days=30, interval_s=0.2, archive_dir=blocked / "x")
    running = asyncio.create_task(failing.run())
    try:

        async def failed() -> bool:
            lease = await raw_db.task_history_lease.find_one({"_id": "retention"})
            return lease is not None and lease["owner"] == "failing" and lease["expires"] <= datetime.now(UTC)

        await eventually(failed, what="the failing purge giving its lease up")
        working = RetentionWorker(other_store.lifecycle(), "working", days=30, interval_s=0.2, archive_dir=tmp_path)
        running_too = asyncio.create_task(working.run())
        try:

            async def purged() -> bool:
                return working.runs > 0 and await raw_db.tasks.count_documents({"_id": 1}) == 0

            await eventually(purged, what="the working gateway purging")
        finally:
            running_too.cancel()
            await asyncio.gather(running_too, return_exceptions=True)
    finally:
        running.cancel()
        await asyncio.gather(running, return_exceptions=True)
    assert failing.runs == 0
    assert [doc["_id"] async for doc in raw_db.tasks.find({})] == [2]


async def test_a_gateway_with_retention_days_purges_and_archives(store, raw_db, mongo_uri, tmp_path):
    await store.create_tasks([task(id=1, job_id="old"), task(id=2, job_id="fresh")])
    await make_old(raw_db, "old")
    archives = tmp_path / "archives"
    env = {
        "PATH": "/usr/bin:/bin",
        "TRACKING_MONGODB_URI": mongo_uri,
        "TRACKING_MONGODB_DB": TEST_DB,
        "TRACKING_PORT": str(free_port()),
        "TRACKING_API_TOKENS": TOKEN,
        "TRACKING_DATA_DIR": str(tmp_path / "var"),
        "TRACKING_RETENTION_DAYS": "30",
        "TRACKING_RETENTION_ARCHIVE_DIR": str(archives),
    }
    gateway = subprocess.Popen([sys.executable, "-m", "gateway"], env=env, stderr=subprocess.DEVNULL)  # noqa: ASYNC220
    try:

        async def purged() -> bool:
            return await raw_db.tasks.count_documents({"job-id": "old"}) == 0

        await eventually(purged, timeout=60, what="the background purge")
    finally:
        gateway.send_signal(signal.SIGTERM)
        await asyncio.to_thread(gateway.wait, 30)
    assert [doc["_id"] async for doc in raw_db.tasks.find({})] == [2]
    [archived] = list(archives.iterdir())
    assert archived.name.startswith("job-old.")
    assert [doc["_id"] for doc in read_archive(archived).tasks] == [1]


def test_retention_settings(monkeypatch, tmp_path):
    monkeypatch.setenv("TRACKING_RETENTION_DAYS", "")
    assert load_settings().retention_days is None
    monkeypatch.setenv("TRACKING_RETENTION_DAYS", "90")
    monkeypatch.setenv("TRACKING_RETENTION_ARCHIVE_DIR", str(tmp_path / "archives"))
    settings = load_settings()
    assert (settings.retention_days, settings.retention_archive_dir) == (90, tmp_path / "archives")
    assert (tmp_path / "archives").is_dir() and not list((tmp_path / "archives").iterdir())  # checked, left empty
    monkeypatch.setenv("TRACKING_RETENTION_DAYS", "0")
    with pytest.raises(SettingsError, match="TRACKING_RETENTION_DAYS"):
        load_settings()


def test_an_archive_directory_the_purge_could_not_write_is_refused_at_start(monkeypatch, tmp_path):
    """Found out at the first purge, it would fail every purge (a volume not mounted, a file in the way)."""
    (tmp_path / "a-file").write_text("in the way")
    monkeypatch.setenv("TRACKING_RETENTION_DAYS", "90")
    monkeypatch.setenv("TRACKING_RETENTION_ARCHIVE_DIR", str(tmp_path / "a-file" / "archives"))
    with pytest.raises(SettingsError, match=r"TRACKING_RETENTION_ARCHIVE_DIR .* cannot be written"):
        load_settings()


# ---- the CLI, as processes -------------------------------------------------------------------------------------


def cli(mongo_uri: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = {"PATH": "/usr/bin:/bin", "TRACKING_MONGODB_URI": mongo_uri, "TRACKING_MONGODB_DB": TEST_DB}
    return subprocess.run(
        [sys.executable, "-m", "gateway", *args], env=env, capture_output=True, text=True, timeout=120, check=False
    )


async def test_cli_archive_purge_restore(store, raw_db, mongo_uri, tmp_path):
    await seed(store, raw_db)
    before = await stored(raw_db, {"job-id": "old"})
    out = tmp_path / "old.jsonl.gz"

    archived = await asyncio.to_thread(cli, mongo_uri, "archive", "--job-id", "old", "--out", str(out))
    assert archived.returncode == 0, archived.stderr
    assert f"archived job 'old': 3 tasks, 6 history entries to {out}" in archived.stdout
    again = await asyncio.to_thread(cli, mongo_uri, "archive", "--job-id", "old", "--out", str(out))
    assert again.returncode == 1
    assert "exists already" in again.stderr
    unknown = await asyncio.to_thread(cli, mongo_uri, "archive", "--job-id", "nope", "--out", str(tmp_path / "x"))
    assert unknown.returncode == 1
    assert "job 'nope' has no tasks" in unknown.stderr

    dry = await asyncio.to_thread(cli, mongo_uri, "purge", "--inactive-days", "30", "--dry-run")
    assert dry.returncode == 0, dry.stderr
    assert "would purge job 'old': 3 tasks" in dry.stdout
    assert await raw_db.tasks.count_documents({"job-id": "old"}) == 3

    archives = tmp_path / "archives"
    purged = await asyncio.to_thread(cli, mongo_uri, "purge", "--inactive-days", "30", "--archive-dir", str(archives))
    assert purged.returncode == 0, purged.stderr
    assert "purged 1 jobs and 3 tasks" in purged.stdout
    assert await raw_db.tasks.count_documents({"job-id": "old"}) == 0
    [archive_file] = list(archives.iterdir())

    restored = await asyncio.to_thread(cli, mongo_uri, "restore", str(archive_file))
    assert restored.returncode == 0, restored.stderr
    assert "restored job 'old': 3 tasks, 6 history entries" in restored.stdout
    assert await stored(raw_db, {"job-id": "old"}) == before
    await assert_link_invariant(raw_db)

    refused = await asyncio.to_thread(cli, mongo_uri, "restore", str(out))
    assert refused.returncode == 1
    assert "tasks 1, 2, 3 already exist" in refused.stderr
    assert await stored(raw_db, {"job-id": "old"}) == before

    broken = tmp_path / "broken.jsonl"
    broken.write_text('{"format": "something else"}\n')
    bad = await asyncio.to_thread(cli, mongo_uri, "restore", str(broken))
    assert bad.returncode == 1
    assert "not a tracking-gateway-job-archive header" in bad.stderr
