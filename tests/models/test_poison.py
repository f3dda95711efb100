"""Documents and changes that tools write with PyMongo (raw BSON where needed) stop nothing but themselves:
REST and GraphQL reads, subscriptions on any job, resuming, the history writer and `check` all go on."""

from __future__ import annotations

import asyncio
import contextlib
import string
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
import xmltodict
from bson.binary import Binary
from bson.code import Code
from bson.datetime_ms import DatetimeMS
from bson.dbref import DBRef
from bson.decimal128 import Decimal128
from bson.int64 import Int64
from bson.max_key import MaxKey
from bson.min_key import MinKey
from bson.objectid import ObjectId
from bson.regex import Regex
from bson.timestamp import Timestamp
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pymongo.errors import WriteError

from gateway.app import create_app
from gateway.backend import Backend
from gateway.settings import load_settings
from models import HistoryWriter
from models.check import NON_ARRAY_LINKS, REPEATED_IDS, UNDECODABLE, WRONG_TYPES
from models.check_ids import NO_TASK_IDS, NOT_INT64_IDS
from models.stored_task import FIELD_KINDS
from tests.helpers import (
    AUTH,
    TOKEN,
    eventually,
    gateway_app,
    lifespan_client,
    next_message,
    served,
    subscription,
    writing_history,
)
from tests.models.poison_corpus import (
    BEFORE_YEAR_1,
    MB,
    NEVER,
    assert_every_read_answers,
    assert_graphql_ok,
    plant_corpus,
    raw_task,
    recorded,
    with_invalid_utf8,
)

pytestmark = pytest.mark.hostile  # an attack on what it tests (pyproject.toml, markers)

EVENT = "kind taskId cursor changedFields task { id status name startTime }"


@pytest.fixture
async def gateway(store, tmp_path) -> AsyncIterator[tuple[int, httpx.AsyncClient]]:
    app, settings = gateway_app(store, tmp_path)
    async with (
        served(app, settings) as port,
        httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", headers=AUTH, timeout=60) as http,
    ):
        yield port, http


def events_of(port: int, variables: dict[str, Any], raw_db) -> contextlib.AbstractAsyncContextManager[Any]:
    return subscription(port, variables, TOKEN, EVENT, until_live=True)


async def events_until(ws, task_id: str, status: str, timeout: float = 30) -> list[dict[str, Any]]:
    """The events up to the first one showing `task_id` with `status`; fails on any error message."""
    seen: list[dict[str, Any]] = []
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        remaining = deadline - asyncio.get_running_loop().time()
        assert remaining > 0, f"no event for {task_id} {status}; got {[(e['kind'], e['taskId']) for e in seen]}"
        message = await next_message(ws, remaining)
        assert message["type"] == "next" and "errors" not in message["payload"], message
        event = message["payload"]["data"]["taskEvents"]
        seen.append(event)
        if event["taskId"] == task_id and (event["task"] or {}).get("status") == status:
            return seen


# ---- decoding ------------------------------------------------------------------------------------------------------


async def test_dates_python_cannot_hold_are_served_as_absent_and_bad_utf8_with_replacements(gateway, raw_db):
    _, http = gateway
    dates = {"job-id": "j", "start-time": NEVER, "finish-time": BEFORE_YEAR_1}
    await raw_db.tasks.insert_one(raw_task(1, **dates), bypass_document_validation=True)  # stored before validation
    await raw_db.tasks.insert_one(with_invalid_utf8(raw_task(2, **{"job-id": "j", "name": "XXpadded"}), "XXpadded"))

    first = (await http.get("/tracking/task/1")).json()
    assert first["id"] == 1 and "start-time" not in first and "finish-time" not in first
    second = (await http.get("/tracking/task/2")).json()
    assert second["name"] == "\ufffd\ufffdpadded"
    xml = xmltodict.parse((await http.get("/tracking/task/2", headers={"Accept": "application/xml"})).content)
    assert xml["task"]["name"] == "\ufffd\ufffdpadded"

    data = await assert_graphql_ok(http, '{ a: task(id: "1") { startTime finishTime } b: task(id: "2") { name } }')
    assert data == {"a": {"startTime": None, "finishTime": None}, "b": {"name": "\ufffd\ufffdpadded"}}
    job = await assert_graphql_ok(http, '{ job(id: "j") { summary { firstStart lastFinish } } }')
    assert job["job"]["summary"] == {"firstStart": None, "lastFinish": None}


async def test_the_validator_refuses_dates_outside_years_1_to_9999(raw_db, store):
    for date in (NEVER, BEFORE_YEAR_1):
        with pytest.raises(WriteError) as refused:
            await raw_db.tasks.insert_one(raw_task(1, **{"start-time": date}))
        assert refused.value.code == 121  # DocumentValidationFailure
    await raw_db.tasks.insert_one(raw_task(1, **{"start-time": datetime(9999, 12, 31, tzinfo=UTC)}))
    assert await raw_db.tasks.count_documents({}) == 1


# ---- the corpus, with everything running -------------------------------------------------------------------------


async def test_a_poison_corpus_stops_no_subscriber_no_resume_no_history_and_no_read(gateway, raw_db, store):
    port, http = gateway
    created = await http.post("/tracking/task", json={"tasks": [{"id": 1, "job-id": "calm", "status": "READY"}]})
    assert created.status_code == 200
    writer = HistoryWriter(store._database, "poison-writer", flush_s=0.2)
    async with (
        writing_history(raw_db, writer),
        events_of(port, {"jobId": "calm"}, raw_db) as calm,
        events_of(port, {}, raw_db) as everything,
    ):
        await http.put("/tracking/task/1", json={"status": "RUNNING"})
        before = (await events_until(everything, "1", "RUNNING"))[-1]["cursor"]
        await events_until(calm, "1", "RUNNING")

        planted = await plant_corpus(raw_db)
        # About the largest task the API accepts (its JSON body just under TRACKING_MAX_BODY_BYTES, 16 MiB).
        big = {"id": 2, "job-id": "big", "status": "NEW", "description": "x" * (16 * MB - 1000)}
        assert (await http.post("/tracking/task", json={"tasks": [big]})).status_code == 200
        assert (await http.put("/tracking/task/2", json={"status": "RUNNING"})).status_code == 200
        await http.put("/tracking/task/1", json={"status": "DONE"})

        await events_until(calm, "1", "DONE")
        seen = await events_until(everything, "1", "DONE", timeout=60)
        big_events = [(e["kind"], (e["task"] or {}).get("status")) for e in seen if e["taskId"] == "2"]
        assert big_events == [("CREATED", "NEW"), ("UPDATED", "RUNNING")]
        async with events_of(port, {"after": before}, raw_db) as resumed:
            await events_until(resumed, "1", "DONE", timeout=60)
        await eventually(lambda: recorded(raw_db, 1, "DONE"), what="the history of a change after the corpus")
        assert await recorded(raw_db, 2, "RUNNING")

        await assert_every_read_answers(http, [1, 2, *planted["poison"], 9200], ["calm", "big", *planted])
        assert (await http.get("/tracking/task/9301")).status_code == 404  # a Decimal128 _id is no task
        taken = await http.post("/tracking/task", json={"tasks": [{"id": 9301}]})
        assert taken.status_code == 400 and "already exists" in taken.text  # it holds the id (MongoDB's index)
        report = await store.check(repair=True)
    lines = "\n".join(report.lines())
    for finding in (WRONG_TYPES, NON_ARRAY_LINKS, REPEATED_IDS, UNDECODABLE):
        assert report.findings[finding].count, (finding, lines)
    assert "outside years 1-9999" in lines
    assert (await raw_db.tasks.find_one({"_id": 9006}))["previous"] == [9005]  # nothing linked to the id -5


async def test_check_tells_a_date_from_a_string_and_flags_ids_that_are_no_task_ids(raw_db, store):
    bypass = {"bypass_document_validation": True}
    await raw_db.tasks.insert_one(raw_task(1, **{"start-time": DatetimeMS(2**62)}), **bypass)
    await raw_db.tasks.insert_one(raw_task(-5, nexts=[Int64(2)]), **bypass)
    await raw_db.tasks.insert_one(raw_task(2))
    report = await store.check(repair=True)
    assert report.findings[UNDECODABLE].count == 0
    assert report.findings[WRONG_TYPES].count == 1
    assert report.findings[NO_TASK_IDS].count == 1  # -5: an int64, but no task id
    assert report.findings[NOT_INT64_IDS].count == 0
    assert (await raw_db.tasks.find_one({"_id": 2}))["previous"] == []


async def test_a_replacement_names_the_fields_it_changed_and_removed(gateway, raw_db, store):
    port, _ = gateway
    await raw_db.tasks.insert_one(raw_task(1, **{"job-id": "r", "name": "n", "status": "NEW"}))
    async with writing_history(raw_db, HistoryWriter(store._database, "replace", flush_s=0.2)):
        async with events_of(port, {"jobId": "r"}, raw_db) as ws:
            await raw_db.tasks.replace_one({"_id": 1}, raw_task(1, **{"job-id": "r", "status": "DONE"}))
            event = (await events_until(ws, "1", "DONE"))[-1]
        assert event["changedFields"] == ["status", "name"]
        await eventually(lambda: recorded(raw_db, 1, "DONE"), what="the replacement's history")
    entry = await raw_db.task_history.find_one({"task": 1, "status": "DONE"})
    assert entry["fields"] == ["status", "name"]


# ---- events MongoDB cannot deliver -----------------------------------------------------------------------------------


async def test_an_event_over_16_mib_is_skipped_for_live_and_resuming_subscribers_and_recorded(gateway, raw_db, store):
    """Moving a task between two 8.1 MB job ids: the event must carry the new job (the task) and the old one
    (for that job's subscribers), which together exceed what MongoDB can deliver."""
    port, http = gateway
    await http.post("/tracking/task", json={"tasks": [{"id": 1, "job-id": "calm", "status": "READY"}]})
    await raw_db.tasks.insert_one(raw_task(5, **{"job-id": "a" * int(8.1 * MB)}))
    writer = HistoryWriter(store._database, "skip-writer", flush_s=0.2)
    async with writing_history(raw_db, writer), events_of(port, {}, raw_db) as everything:
        await http.put("/tracking/task/1", json={"status": "RUNNING"})
        before = (await events_until(everything, "1", "RUNNING"))[-1]["cursor"]
        await raw_db.tasks.update_one({"_id": 5}, {"$set": {"job-id": "b" * int(8.1 * MB)}})
        await http.put("/tracking/task/1", json={"status": "DONE"})
        seen = await events_until(everything, "1", "DONE", timeout=60)
        assert [(e["kind"], e["taskId"], e["task"]) for e in seen[:-1]] == [("SKIPPED", "5", None)]
        async with events_of(port, {"after": before}, raw_db) as resumed:
            again = await events_until(resumed, "1", "DONE", timeout=60)
        assert [(e["kind"], e["taskId"], e["cursor"]) for e in again] == [
            (e["kind"], e["taskId"], e["cursor"]) for e in seen
        ]
        await eventually(lambda: recorded(raw_db, 1, "DONE"), what="the history after the skipped change")
    skipped = await raw_db.task_history.find_one({"task": 5, "kind": "SKIPPED"})
    assert skipped is not None and "16 MiB" in skipped["reason"]
    history = await assert_graphql_ok(http, '{ taskHistory(id: "5") { kind } }')
    assert history["taskHistory"][-1] == {"kind": "SKIPPED"}


# ---- the history writer ----------------------------------------------------------------------------------------------


async def test_a_history_writer_restarted_after_a_poison_change_goes_on_past_it(raw_db, store):
    await raw_db.tasks.insert_one(raw_task(5, **{"job-id": "a" * int(8.1 * MB)}))
    first = HistoryWriter(store._database, "first-run", flush_s=0.2)
    async with writing_history(raw_db, first):
        await raw_db.tasks.insert_one(raw_task(6, status="BEFORE"))
        await eventually(lambda: recorded(raw_db, 6, "BEFORE"), what="a first entry")
    # Stopped: the poison change and a later one happen while no writer runs; the next one starts from the token.
    await raw_db.tasks.update_one({"_id": 5}, {"$set": {"job-id": "b" * int(8.1 * MB)}})
    await raw_db.tasks.update_one({"_id": 6}, {"$set": {"status": "AFTER"}})
    second = HistoryWriter(store._database, "second-run", flush_s=0.2)
    async with writing_history(raw_db, second):
        await eventually(lambda: recorded(raw_db, 6, "AFTER"), what="the change after the poison one")
        assert second.failure is None
    assert await raw_db.task_history.count_documents({"task": 5, "kind": "SKIPPED"}) == 1


async def test_a_failing_history_writer_says_so_in_readyz_and_metrics_and_hands_the_lease_over(raw_db, store, tmp_path):
    """A writer whose every write fails (here, MongoDB refuses the history collection's inserts through a
    validator a tool installed) records nothing, but says why and lets another instance take over."""
    await raw_db.command("collMod", "task_history", validator={"never": {"$exists": True}})
    try:
        settings = load_settings(api_tokens=TOKEN, data_dir=tmp_path)
        backend = Backend(store=store)
        app = create_app(settings, backend)
        async with lifespan_client(app, AUTH) as http:
            backend.write_history()
            assert backend.history_writer is not None
            backend.history_writer.give_up_s = 1.0
            await eventually(lambda: raw_db.task_history_lease.find_one({"resumeToken": {"$ne": None}}), what="lead")
            await raw_db.tasks.insert_one(raw_task(7, status="NEW"))

            async def not_ready() -> bool:
                return (await http.get("/readyz")).status_code == 503

            await eventually(not_ready, what="readyz reporting the writer")
            assert "task history writer failing" in (await http.get("/readyz")).json()["reason"]

            async def failing_for_3s() -> bool:  # across several attempts, each taking the lease again
                reason = (await http.get("/readyz")).json()["reason"]
                return int(reason.split("failing for ")[1].split("s")[0]) >= 3

            await eventually(failing_for_3s, what="three seconds of failing")
            metrics = (await http.get("/metrics")).text
            lag = next(line for line in metrics.splitlines() if line.startswith("tracking_history_lag_seconds "))
            assert float(lag.split()[1]) >= 2.5  # the reason rounds to whole seconds
            standby = HistoryWriter(store._database, "standby", lease_s=1.0)
            async with writing_history(raw_db, standby):

                async def handed_over() -> bool:
                    lease = await raw_db.task_history_lease.find_one({"_id": "writer"})
                    return lease["owner"] == "standby"

                await eventually(handed_over, what="the lease handed over")
            await backend.stop_writing_history()
    finally:
        await raw_db.command("collMod", "task_history", validator={})


async def test_a_standby_writer_that_failed_is_ready_again_once_it_finds_another_writer_leading(raw_db, store):
    """A writer that does not lead and could not reach the lease for a while (here a validator a tool put on the
    lease collection refuses it; in production, MongoDB out of reach) says so once it has failed for `give_up_s`;
    once MongoDB answers it again and another writer leads, it is a healthy standby: no failure for /readyz (which
    would keep the gateway out of service for good). Never having led, it reports no lag of its own meanwhile."""
    leader = HistoryWriter(store._database, "leader", flush_s=0.2)
    standby = HistoryWriter(store._database, "standby", give_up_s=0.5)

    async def standby_failing() -> bool:
        return standby.failure is not None

    async def standby_well() -> bool:
        return standby.failure is None

    async with writing_history(raw_db, leader):
        await raw_db.command("collMod", "task_history_lease", validator={"owner": {"$ne": "standby"}})
        running = asyncio.create_task(standby.run())
        try:
            await eventually(standby_failing, what="the standby saying it fails")
            assert "failing for" in (standby.failure or "")
            assert standby.lag_seconds() == 0.0  # it never led: the history's lag is the leader's, not its uptime
            await raw_db.command("collMod", "task_history_lease", validator={})
            await eventually(standby_well, what="the standby well again")
            assert standby.lag_seconds() == 0.0
            assert (await raw_db.task_history_lease.find_one({"_id": "writer"}))["owner"] == "leader"
        finally:
            await raw_db.command("collMod", "task_history_lease", validator={})
            running.cancel()
            await asyncio.gather(running, return_exceptions=True)


# ---- check -----------------------------------------------------------------------------------------------------------


async def test_check_repairs_around_non_array_links_and_repeated_ids_and_reports_them(raw_db, store):
    bypass = {"bypass_document_validation": True}
    await raw_db.tasks.insert_one(raw_task(1, nexts="2"), **bypass)  # not an array: reported, left alone
    await raw_db.tasks.insert_one(raw_task(2, previous=[Int64(1)]))  # one-sided towards 1's broken array
    await raw_db.tasks.insert_one(raw_task(3, nexts=[Int64(4), Int64(4)]), **bypass)
    await raw_db.tasks.insert_one(raw_task(4, previous=[Int64(3)]))
    await raw_db.tasks.insert_one(raw_task(5, nexts=[Int64(6)]))  # unrelated one-sided link: repaired
    await raw_db.tasks.insert_one(raw_task(6))

    report = await store.check(repair=True)
    assert report.findings[NON_ARRAY_LINKS].count == 1
    assert report.findings[REPEATED_IDS].count == 1 and report.findings[REPEATED_IDS].repaired == 1
    assert (await raw_db.tasks.find_one({"_id": 3}))["nexts"] == [4]
    assert (await raw_db.tasks.find_one({"_id": 6}))["previous"] == [5]
    assert (await raw_db.tasks.find_one({"_id": 1}))["nexts"] == "2"
    assert report.problems_left


async def test_readers_serve_a_repeated_id_once(gateway, raw_db):
    _, http = gateway
    await raw_db.tasks.insert_one(
        raw_task(3001, **{"job-id": "r", "nexts": [Int64(3002), Int64(3002)]}), bypass_document_validation=True
    )
    await raw_db.tasks.insert_one(raw_task(3002, **{"job-id": "r", "previous": [Int64(3001)]}))
    data = await assert_graphql_ok(http, '{ job(id: "r") { edges { from to } } task(id: "3001") { nexts { id } } }')
    assert data["job"]["edges"] == [{"from": "3001", "to": "3002"}]
    assert data["task"]["nexts"] == [{"id": "3002"}]


# ---- any value in any field ------------------------------------------------------------------------------------------

BSON_VALUES = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**63), max_value=2**63 - 1).map(Int64),
    st.integers(min_value=-(2**31), max_value=2**31 - 1),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=20),
    st.binary(max_size=10).map(Binary),
    st.integers(min_value=-(2**63), max_value=2**63 - 1).map(DatetimeMS),
    st.sampled_from([NEVER, BEFORE_YEAR_1, DatetimeMS(0), MinKey(), MaxKey(), ObjectId(), Timestamp(5, 1)]),
    st.sampled_from([Decimal128("NaN"), Decimal128("1E+6000"), Code("f()"), Regex("^a", "i"), DBRef("x", 1)]),
    st.lists(st.integers(min_value=-5, max_value=5), max_size=3),
    st.dictionaries(st.sampled_from(string.ascii_lowercase), st.integers(-(2**31), 2**31 - 1), max_size=2),
)
FIELDS = [*FIELD_KINDS, "nexts", "previous"]


@settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck))
@given(values=st.dictionaries(st.sampled_from(FIELDS), BSON_VALUES, min_size=1))
async def test_any_bson_value_in_any_task_field_is_read_without_a_server_error(gateway, raw_db, values):
    _, http = gateway
    await raw_db.tasks.delete_many({})
    doc = raw_task(42, **{"job-id": "any"}) | values
    if not isinstance(doc.get("job-id"), str):
        doc["job-id"] = "any"  # to find the task through its job too
    await raw_db.tasks.insert_one(doc, bypass_document_validation=True)
    await assert_every_read_answers(http, [42], ["any"])
    await assert_graphql_ok(http, '{ job(id: "any") { criticalPath { id } } }')
