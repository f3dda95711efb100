"""Live updates that never lose an event, and the history of every task, on real MongoDB processes: resuming
after a disconnect, expired cursors, the history writer and its lease, and a subscription that survives the
failover of a three-member replica set."""

from __future__ import annotations

import asyncio
import contextlib
import subprocess
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from bson.int64 import Int64
from pymongo import AsyncMongoClient
from pymongo.errors import PyMongoError
from pymongo.read_concern import ReadConcern
from websockets.asyncio.client import ClientConnection

from gateway.embedded import find_mongod_binary, free_port
from models import GraphStore, HistoryWriter, StorageUnavailable, TaskPatch
from tests.conftest import TEST_DB
from tests.helpers import (
    AUTH,
    TOKEN,
    eventually,
    gateway_app,
    lifespan_client,
    next_event,
    next_message,
    served,
    subscribed,
    task,
    writing_history,
)
from tests.helpers import subscription as _subscription
from tests.models.test_fanout import Inbox, connection, subscribe

STATUS_QUERY = (
    "subscription($jobId: String, $after: String) { taskEvents(jobId: $jobId, after: $after) { task { status } } }"
)


def subscription(port: int, variables: dict[str, Any], until_live: bool = False) -> Any:
    return _subscription(port, variables, TOKEN, EVENT, until_live)


EVENT = "kind taskId cursor at changedFields task { status }"
T_PAST = datetime(2000, 1, 1, tzinfo=UTC)


async def no_event(ws: ClientConnection, within: float = 1.5) -> None:
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(ws.recv(), within)


async def test_resuming_after_a_disconnect_delivers_exactly_the_missed_events_in_order(live, raw_db):
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{live}", headers=AUTH) as rest:
        async with subscription(live, {"jobId": "live"}, until_live=True) as ws:
            await rest.post("/tracking/task", json={"tasks": [{"id": 1, "job-id": "live", "status": "READY"}]})
            first = await next_event(ws)
        assert first["kind"] == "CREATED" and first["taskId"] == "1"
        assert {"status", "jobId", "creationTimestamp", "root", "type", "nexts"} <= set(first["changedFields"])

        # While no one listens: a REST update, a direct write, a change in another job, a deletion.
        await rest.put("/tracking/task/1", json={"status": "DONE"})
        await raw_db.tasks.insert_one({"_id": Int64(2), "job-id": "live", "status": "NEW", "nexts": [], "previous": []})
        await rest.post("/tracking/task", json={"tasks": [{"id": 3, "job-id": "elsewhere"}]})
        await rest.delete("/tracking/task/1")

        async with subscription(live, {"jobId": "live", "after": first["cursor"]}, until_live=True) as ws:
            missed = [await next_event(ws) for _ in range(3)]
            assert [(e["kind"], e["taskId"]) for e in missed] == [("UPDATED", "1"), ("CREATED", "2"), ("DELETED", "1")]
            assert missed[0]["changedFields"] == ["status", "updateTimestamp"]
            assert missed[0]["task"] == {"status": "DONE"} and missed[2]["task"] is None
            assert missed[2]["changedFields"] == []
            await no_event(ws)  # nothing twice at the seam
            await rest.put("/tracking/task/2", json={"status": "RUNNING"})
            live_event = await next_event(ws)
            assert (live_event["kind"], live_event["taskId"], live_event["task"]) == (
                "UPDATED",
                "2",
                {"status": "RUNNING"},
            )
        cursors = [first["cursor"], *(e["cursor"] for e in missed), live_event["cursor"]]
        assert len(set(cursors)) == 5


async def test_a_subscription_after_an_event_cursor_gets_the_changes_made_before_it_started(live, raw_db):
    """A view takes Query.eventCursor, reads, then subscribes with it: a change made between the cursor and the
    subscription (a REST write, a tool's write, a change in another job that must stay out) is delivered."""
    query = "query($job: String) { eventCursor(jobId: $job) }"
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{live}", headers=AUTH) as rest:
        await rest.post("/tracking/task", json={"tasks": [{"id": 1, "job-id": "seen", "status": "READY"}]})
        taken = await rest.post("/graphql", json={"query": query, "variables": {"job": "seen"}})
        cursor = taken.json()["data"]["eventCursor"]
        unfiltered = (await rest.post("/graphql", json={"query": query})).json()["data"]["eventCursor"]
        await rest.put("/tracking/task/1", json={"status": "RUNNING"})
        await rest.post("/tracking/task", json={"tasks": [{"id": 2, "job-id": "other"}]})
        await raw_db.tasks.update_one({"_id": 1}, {"$set": {"status": "DONE"}})
        async with subscription(live, {"jobId": "seen", "after": cursor}) as ws:
            missed = [await next_event(ws) for _ in range(2)]
            await no_event(ws)
        async with subscription(live, {"after": unfiltered}) as ws:
            every = [await next_event(ws) for _ in range(3)]
        # Hex in either case is the same cursor (MongoDB takes both); compared as given, a lowercased one was
        # "before" every event, and its subscription silent for good.
        async with subscription(live, {"jobId": "seen", "after": cursor.lower()}) as ws:
            lowered = [await next_event(ws) for _ in range(2)]
            await no_event(ws)
    assert lowered == missed
    assert [(e["kind"], e["taskId"], e["task"]) for e in missed] == [
        ("UPDATED", "1", {"status": "RUNNING"}),
        ("UPDATED", "1", {"status": "DONE"}),
    ]
    assert [(e["kind"], e["taskId"]) for e in every] == [("UPDATED", "1"), ("CREATED", "2"), ("UPDATED", "1")]


async def test_a_job_s_subscription_resumes_from_the_cursor_of_another_job_s_event(live):
    """A view that followed every job (or another job) opens one job with the last cursor it applied: the
    subscription gets exactly that job's events after it, where MongoDB refuses to resume a job-filtered stream at
    an event its filter drops (it ended with CURSOR_EXPIRED)."""
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{live}", headers=AUTH) as rest:
        async with subscription(live, {}, until_live=True) as ws:
            await rest.post("/tracking/task", json={"tasks": [{"id": 1, "job-id": "watched", "status": "READY"}]})
            await rest.post("/tracking/task", json={"tasks": [{"id": 2, "job-id": "elsewhere"}]})
            other_jobs = [await next_event(ws) for _ in range(2)]
        assert [e["taskId"] for e in other_jobs] == ["1", "2"]
        await rest.put("/tracking/task/1", json={"status": "RUNNING"})
        await rest.put("/tracking/task/2", json={"status": "RUNNING"})
        async with subscription(live, {"jobId": "watched", "after": other_jobs[1]["cursor"]}, until_live=True) as ws:
            caught_up = await next_event(ws)
            await no_event(ws)
            await rest.put("/tracking/task/1", json={"status": "DONE"})
            live_event = await next_event(ws)
    assert (caught_up["kind"], caught_up["taskId"], caught_up["task"]) == ("UPDATED", "1", {"status": "RUNNING"})
    assert (live_event["taskId"], live_event["task"]) == ("1", {"status": "DONE"})


@pytest.mark.parametrize(
    "cursor",
    [
        *["zz", "8200", "8200000001000000012B022C0100296E5A1004", "", "00", "FF" * 20, "A" * 10_000, "82" * 3 + "F"],
        # Of the form of a cursor, refused by MongoDB's resume-token decoding with codes of no name of their own.
        *["82" + "FF" * 50, "822F1EABE28762BB9D", "8207EDBFCAC66094DB2570D56AF0854CE0F2E0E6"],
    ],
)
async def test_an_unknown_or_expired_cursor_ends_the_subscription_with_cursor_expired(live, cursor):
    async with subscription(live, {"after": cursor}) as ws:
        message = await next_message(ws)
    assert message["type"] in ("error", "next"), message
    errors = message["payload"] if message["type"] == "error" else message["payload"]["errors"]
    assert errors[0]["extensions"]["code"] == "CURSOR_EXPIRED"


async def foreign_event_cursor(collection: Any) -> str:
    """The cursor of a change to `collection` (not the tasks): an event cursor of the right form."""
    async with await collection.watch() as stream:
        await collection.insert_one({"x": 1})
        change = await stream.next()
    return str(change["_id"]["_data"])


@pytest.mark.parametrize("where", ["another collection", "another database"])
async def test_a_cursor_of_another_collection_ends_the_subscription_at_once_with_cursor_expired(live, raw_db, where):
    """MongoDB waits for the next change of `tasks` before it refuses such a cursor: no change comes here, and the
    subscription must not wait silently for one."""
    other = raw_db["not_tasks"] if where == "another collection" else raw_db.client[f"{TEST_DB}_other"]["tasks"]
    try:
        cursor = await foreign_event_cursor(other)
        async with subscription(live, {"after": cursor}) as ws:
            message = await next_message(ws)
    finally:
        await other.drop()
    errors = message["payload"] if message["type"] == "error" else message["payload"]["errors"]
    assert errors[0]["extensions"]["code"] == "CURSOR_EXPIRED", message


async def test_a_cursor_of_a_time_to_come_ends_the_subscription_at_once_with_cursor_expired(live):
    """MongoDB resumes from a point later than now without a word, skipping every change until then: a cursor a
    day ahead (made from a real one) is no cursor the gateway gave, and the subscription is told so."""
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{live}", headers=AUTH) as rest:
        taken = await rest.post("/graphql", json={"query": "{ eventCursor }"})
        cursor = taken.json()["data"]["eventCursor"]
        ahead = f"{cursor[:2]}{int(cursor[2:10], 16) + 86_400:08X}{cursor[10:]}"
        async with subscription(live, {"after": ahead}) as ws:
            await rest.post("/tracking/task", json={"tasks": [{"job-id": "meanwhile"}]})
            message = await next_message(ws)
        async with subscription(live, {"after": cursor}) as ws:  # the real one still resumes
            assert (await next_event(ws))["kind"] == "CREATED"
    errors = message["payload"] if message["type"] == "error" else message["payload"]["errors"]
    assert errors[0]["extensions"]["code"] == "CURSOR_EXPIRED", message


# ---- history ---------------------------------------------------------------------------------------------------------


async def history_of(raw_db, task_id: int) -> list[dict[str, Any]]:
    """The task's entries as the gateway reads them (majority read concern): an entry only this test's local
    read already saw is not in a gateway's answer yet on a loaded machine."""
    history = raw_db.task_history.with_options(read_concern=ReadConcern("majority"))
    return [entry async for entry in history.find({"task": task_id}, sort=[("_id", 1)])]


async def test_the_history_of_a_task_through_its_status_changes_and_after_deletion(store, raw_db, tmp_path):
    app, _ = gateway_app(store, tmp_path)
    async with (
        writing_history(raw_db, HistoryWriter(store._database, "solo", flush_s=0.2)),
        lifespan_client(app, AUTH) as http,
    ):
        await http.post("/tracking/task", json={"tasks": [{"id": 7, "status": "READY", "job-id": "h"}]})
        for status in ("RUNNING", "DONE"):
            await http.put("/tracking/task/7", json={"status": status})
        await raw_db.tasks.update_one({"_id": 7}, {"$set": {"name": "renamed by a tool"}})

        async def recorded(count: int) -> bool:
            return len(await history_of(raw_db, 7)) == count

        await eventually(lambda: recorded(4), what="four history entries")
        query = '{ task(id: "7") { history { kind status changedFields at cursor } } }'
        history = (await http.post("/graphql", json={"query": query})).json()["data"]["task"]["history"]
        assert [(h["kind"], h["status"]) for h in history] == [
            ("CREATED", "READY"),
            ("UPDATED", "RUNNING"),
            ("UPDATED", "DONE"),
            ("UPDATED", None),
        ]
        assert history[3]["changedFields"] == ["name"]
        assert history == sorted(history, key=lambda h: h["at"])

        await http.delete("/tracking/task/7")
        await eventually(lambda: recorded(5), what="the deletion recorded")
        body = (await http.post("/graphql", json={"query": '{ taskHistory(id: "7") { kind } }'})).json()
        assert [h["kind"] for h in body["data"]["taskHistory"]] == [
            "CREATED",
            "UPDATED",
            "UPDATED",
            "UPDATED",
            "DELETED",
        ]
    entry = (await history_of(raw_db, 7))[1]
    assert entry["job"] == "h" and entry["fields"] == ["status", "update-timestamp"] and entry["status"] == "RUNNING"


async def test_two_writers_racing_for_the_lease_write_each_change_once(mongo_uri, store, raw_db):
    other = await GraphStore.open(mongo_uri, TEST_DB)
    first = HistoryWriter(store._database, "first", lease_s=1.0, flush_s=0.2)
    second = HistoryWriter(other._database, "second", lease_s=1.0, flush_s=0.2)
    try:
        async with writing_history(raw_db, first, second) as runs:
            await store.create_tasks([task(id=i) for i in range(1, 21)])
            for i in range(1, 21):
                await store.update_task(i, TaskPatch.model_validate({"status": "ONE"}))

            async def all_recorded(expected: int) -> bool:
                return await raw_db.task_history.count_documents({"task": {"$ne": None}}) == expected

            await eventually(lambda: all_recorded(40), what="40 entries")
            # The lease may have moved already (a renewal late on a loaded machine): the holder is whoever the
            # lease document names now, and each change must still have been written once.
            lease = await raw_db.task_history_lease.find_one({"_id": "writer"})
            holder = 0 if lease["owner"] == "first" else 1
            survivor = (first, second)[1 - holder]
            written_before = survivor.written
            runs[holder].cancel()  # the holder dies without letting go; the other takes over after expiry
            for i in range(1, 21):
                await other.update_task(i, TaskPatch.model_validate({"status": "TWO"}))
            await eventually(lambda: all_recorded(60), what="60 entries after the hand-over")
        per_task = [await history_of(raw_db, i) for i in range(1, 21)]
        assert all([e.get("status") for e in entries] == [None, "ONE", "TWO"] for entries in per_task)
        assert survivor.written > written_before, "the survivor wrote the changes made after the hand-over"
    finally:
        await other.close()


async def test_a_lost_resume_point_is_recorded_as_a_gap(store, raw_db, monkeypatch):
    """The changes the oplog no longer holds are a GAP entry; every change from then on is recorded, also one
    made while the gap is being recorded, before the writer reads on."""
    record_gap = HistoryWriter._record_gap

    async def gap_and_a_change_meanwhile(writer: HistoryWriter, token: Any) -> None:
        await record_gap(writer, token)
        await store.create_tasks([task(id=2)])

    monkeypatch.setattr(HistoryWriter, "_record_gap", gap_and_a_change_meanwhile)
    await raw_db.task_history_lease.insert_one(
        {
            "_id": "writer",
            "owner": "gone",
            "expires": T_PAST,
            "resumeToken": {"_data": "8200000001000000012B022C0100296E5A1004"},
        }
    )
    async with writing_history(raw_db, HistoryWriter(store._database, "after-gap", flush_s=0.2)):

        async def gap_recorded() -> bool:
            return await raw_db.task_history.count_documents({"kind": "GAP"}) == 1

        await eventually(gap_recorded, what="a GAP entry")
        await store.create_tasks([task(id=1)])

        async def went_on() -> bool:
            return len(await history_of(raw_db, 1)) == 1 and len(await history_of(raw_db, 2)) == 1

        await eventually(went_on, what="history going on after the gap, from the moment it was recorded")


# ---- failover ------------------------------------------------------------------------------------------------------


@pytest.fixture
def three_members(tmp_path: Path) -> Iterator[str]:
    """A three-member replica set on loopback, from the embedded mongod binary; yields its URI."""
    binary, ports = find_mongod_binary(), [free_port() for _ in range(3)]
    processes = []
    for index, port in enumerate(ports):
        db_path = tmp_path / f"member{index}"
        db_path.mkdir()
        command = [str(binary), "--dbpath", str(db_path), "--port", str(port), "--bind_ip", "127.0.0.1",
                   "--replSet", "rsF", "--wiredTigerCacheSizeGB", "0.25", "--logpath", str(db_path / "l"),
                   # A throwaway set: stopped at once, not after the quiesce period a signalled primary waits.
                   "--setParameter", "shutdownTimeoutMillisForSignaledShutdown=0"]  # fmt: skip
        processes.append(subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
    try:
        asyncio.run(_initiate([f"127.0.0.1:{port}" for port in ports]))
        yield f"mongodb://{','.join(f'127.0.0.1:{port}' for port in ports)}/?replicaSet=rsF"
    finally:
        for process in processes:
            process.terminate()
        for process in processes:
            process.wait(30)


async def _initiate(hosts: list[str]) -> None:
    for host in hosts:  # every member must listen before the set can be initiated
        member: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(host, directConnection=True)
        try:

            async def answers(member: AsyncMongoClient[dict[str, Any]] = member) -> bool:
                try:
                    await member.admin.command("ping")
                    return True
                except PyMongoError:
                    return False

            await eventually(answers, timeout=60, what=f"mongod at {host}")
        finally:
            await member.close()
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(hosts[0], directConnection=True)
    try:
        members = [{"_id": index, "host": host} for index, host in enumerate(hosts)]
        await client.admin.command("replSetInitiate", {"_id": "rsF", "members": members})

        async def primary() -> bool:
            if (await client.admin.command("hello")).get("isWritablePrimary"):
                return True
            # Called to an election now rather than after the election timeout; refused until the others answer.
            with contextlib.suppress(PyMongoError):
                await client.admin.command("replSetStepUp")
            return False

        await eventually(primary, timeout=60, what="a primary elected")
    finally:
        await client.close()


@pytest.mark.slow
async def test_a_subscription_survives_a_failover_and_sees_changes_after_the_election(three_members, tmp_path):
    """Fifty more subscriptions on connections of their own, and 200 more on 5 connections, share the gateway's
    stream meanwhile: each sees the change before and the change after the election, once each."""
    store = await GraphStore.open(three_members, "failover", timeout_ms=20_000)
    app, settings = gateway_app(store, tmp_path, subscription_resume_ms=60_000)
    try:
        await store.create_tasks([task(id=1, job_id="f", status="BEFORE")])
        async with (
            served(app, settings) as port,
            subscription(port, {"jobId": "f"}, until_live=True) as ws,
            contextlib.AsyncExitStack() as others,
        ):
            crowd = []
            for n in range(50):
                variables = {"jobId": "f"} if n % 2 else {}
                crowd.append(await others.enter_async_context(subscription(port, variables, until_live=True)))
            sockets = [await others.enter_async_context(connection(port)) for _ in range(5)]
            inboxes = [Inbox(ws) for ws in sockets]
            async with subscribed(200):
                for n in range(200):
                    await subscribe(sockets[n % 5], str(n), "f" if n % 2 else None, query=STATUS_QUERY)
            await store.update_task(1, TaskPatch.model_validate({"status": "STILL BEFORE"}))
            assert (await next_event(ws))["task"] == {"status": "STILL BEFORE"}
            with contextlib.suppress(PyMongoError):  # the primary drops its connections as it steps down
                await store._client.admin.command("replSetStepDown", 60, secondaryCatchUpPeriodSecs=10)

            async def written() -> bool:
                try:
                    await store.update_task(1, TaskPatch.model_validate({"status": "AFTER"}))
                    return True
                except StorageUnavailable:
                    return False

            await eventually(written, timeout=60, what="a write to the new primary")
            event = await next_event(ws, timeout=60)
            assert event["task"] == {"status": "AFTER"}
            for other in crowd:
                statuses = [(await next_event(other, timeout=60))["task"] for _ in range(2)]
                assert statuses == [{"status": "STILL BEFORE"}, {"status": "AFTER"}]

            async def both() -> bool:
                return all(len(inboxes[n % 5].events[str(n)]) >= 2 for n in range(200))

            await eventually(both, timeout=60, what="the 200 subscriptions' two events")
            await asyncio.sleep(0.5)  # anything extra would have come by now
            for n in range(200):
                inbox = inboxes[n % 5]
                statuses = [event["task"] for event in inbox.events[str(n)]]
                assert statuses == [{"status": "STILL BEFORE"}, {"status": "AFTER"}], (n, inbox.errors[str(n)])
            for inbox in inboxes:
                await inbox.stop()
    finally:
        await store.close()
