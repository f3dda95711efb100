"""The legacy Tracking API through HTTP on the real MongoDB: every operation, both media types, every error of
its bodies and paths (the protocol: tokens, negotiation, limits, is in test_rest_protocol.py)."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

import pytest
import xmltodict
from bson.int64 import Int64

from models.task import RESPONSE_FIELD_ORDER
from tests.helpers import assert_link_invariant
from tests.rest.api import assert_error, create, ids

XML = {"Content-Type": "application/xml", "Accept": "application/xml"}

EVERY_FIELD = {
    "status": "RUNNING",
    "job-id": "job-1",
    "root": True,
    "name": "deploy",
    "description": "deploy the VNF",
    "start-time": "2026-11-22T18:00:00.000Z",
    "finish-time": "2026-11-22T18:30:00.250Z",
    "lock": "L",
    "workflow-id": "wf",
    "match-id": "m",
    "rollback-status": "NONE",
    "execution-code": "0",
    "execution-description": "ok",
    "initial-artifact-status": "NEW",
    "type": "execution-task",
    "main-artifact": "vnf",
    "final-status": "DONE",
    "condition": "c",
    "path": "/p",
    "running-status": "R",
    "workflow": "w",
    "behaviour-on-error": "STOP",
    "number-of-retries": 3,
    "wait-between-retries": 1000,
    "codes-to-do-rollback": "1,2",
    "rollback-workflow": "rw",
    "mapping-list": "ml",
    "output-mapping-list": "oml",
    "order-by": "name",
    "definition-id": "def",
}


# ---- POST /task ------------------------------------------------------------------------------------------------


async def test_create_returns_tasks_in_request_order_with_nested_after_parent(client, raw_db):
    tasks = await create(
        client,
        {"name": "a", "type": "navigable-execution-task", "nexts": {"tasks": [{"name": "a1"}, {"name": "a2"}]}},
        {"name": "b", "id": 50},
    )
    # the client's id 50 raises the counter first, so server-assigned ids never collide with it
    assert [(t["id"], t["name"]) for t in tasks] == [(51, "a"), (52, "a1"), (53, "a2"), (50, "b")]
    assert tasks[0]["nexts"] == {"tasks": [tasks[1], tasks[2]]}
    assert "nexts" not in tasks[1], "only navigable tasks show their nexts"
    assert [t["root"] for t in tasks] == [True, False, False, True]
    assert await assert_link_invariant(raw_db) == {(51, 52), (51, 53)}


async def test_every_documented_field_round_trips_in_json(client):
    (created,) = await create(client, {"id": 7, **EVERY_FIELD})
    fetched = (await client.get("/tracking/task/7")).json()
    assert fetched == created
    assert {
        k: v for k, v in fetched.items() if k not in ("id", "creation-timestamp", "update-timestamp")
    } == EVERY_FIELD
    assert fetched["creation-timestamp"].endswith("Z") and len(fetched["creation-timestamp"]) == 24


async def test_every_documented_field_round_trips_in_xml(client):
    body = xmltodict.unparse({"tasks": {"task": [{"id": 8, **EVERY_FIELD}]}})
    response = await client.post("/tracking/task", content=body, headers=XML)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/xml"
    fetched = (await client.get("/tracking/task/8")).json()
    assert {
        k: v for k, v in fetched.items() if k not in ("id", "creation-timestamp", "update-timestamp")
    } == EVERY_FIELD
    xml = xmltodict.parse((await client.get("/tracking/task/8", headers={"Accept": "application/xml"})).content)
    assert xml["task"]["number-of-retries"] == "3"
    assert xml["task"]["root"] == "true"
    assert xml["task"]["start-time"] == "2026-11-22T18:00:00.000Z"


async def test_xml_one_task_list_and_nested_nexts(client):
    body = (
        b"<tasks><task><name>p</name><type>navigable-execution-task</type>"
        b"<nexts><task><name>c</name></task></nexts></task></tasks>"
    )
    response = await client.post("/tracking/task", content=body, headers=XML)
    parsed = xmltodict.parse(response.content, force_list=("task",))
    parent, child = parsed["tasks"]["task"]
    assert (parent["name"], child["name"]) == ("p", "c")
    assert [child["name"] for child in parent["nexts"]["task"]] == ["c"]
    assert ids(await client.get("/tracking/task/1/next")) == [2]


async def test_dates_accept_offsets_and_epoch_milliseconds(client):
    (task,) = await create(client, {"start-time": "2026-11-22T19:00:00.5+01:00", "finish-time": 1763834400123})
    assert task["start-time"] == "2026-11-22T18:00:00.500Z"
    assert task["finish-time"] == "2025-11-22T18:00:00.123Z"


async def test_server_timestamps_from_clients_are_ignored(client):
    (task,) = await create(client, {"creation-timestamp": "2000-01-01T00:00:00Z", "update-timestamp": 0})
    assert not task["creation-timestamp"].startswith("2000")


async def test_nulls_and_server_timestamps_are_left_out_at_every_nesting_level(client, raw_db):
    nested = {"id": 2, "name": None, "type": None, "creation-timestamp": "2000-01-01T00:00:00Z", "nexts": None}
    parent = {"id": 1, "type": "navigable-execution-task", "status": None, "nexts": {"tasks": [nested]}}
    await create(client, parent, {"id": 3, "nexts": {}})
    stored = {doc["_id"]: doc async for doc in raw_db.tasks.find()}
    assert None not in [value for doc in stored.values() for value in doc.values()]
    assert "name" not in stored[2] and stored[2]["type"] == "task"
    assert stored[2]["creation-timestamp"] == stored[1]["creation-timestamp"] > datetime(2001, 1, 1, tzinfo=UTC)
    assert (stored[1]["nexts"], stored[2]["previous"], stored[3]["nexts"]) == ([2], [1], [])


async def test_creating_an_existing_id_is_400_and_creates_nothing(client, raw_db):
    await create(client, {"id": 5})
    response = await client.post("/tracking/task", json={"tasks": [{"id": 6}, {"id": 5}]})
    assert_error(response, 400, "task 5 already exists")
    assert await raw_db.tasks.count_documents({}) == 1


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        ({"tasks": [{"colour": "red"}]}, "tasks[0].colour: unknown field"),
        ({"tasks": [{"number-of-retries": "3"}]}, "tasks[0].number-of-retries"),
        ({"tasks": [{"number-of-retries": 2**31}]}, "tasks[0].number-of-retries"),
        ({"tasks": [{"id": 0}]}, "tasks[0].id"),
        ({"tasks": [{"id": 2**63}]}, "tasks[0].id"),
        ({"tasks": [{"root": "yes"}]}, "tasks[0].root"),
        ({"tasks": [{"start-time": "yesterday"}]}, "tasks[0].start-time: expected an ISO 8601"),
        ({"tasks": [{"nexts": {"tasks": [{"name": 5}]}}]}, "tasks[0].nexts.tasks[0].name"),
        ({"task": []}, "task: unknown field"),
        ([], "expected a tasks object"),
        ({"tasks": [{"id": 3}, {"id": 3}]}, "task id 3 appears more than once"),
    ],
)
async def test_invalid_create_bodies_name_the_field(client, raw_db, body, fragment):
    assert_error(await client.post("/tracking/task", json=body), 400, fragment)
    assert await raw_db.tasks.count_documents({}) == 0


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        (b"<tasks><task><name>x</task></tasks>", "malformed XML"),
        (b"<task><name>x</name></task>", "expected a <tasks> root element"),
        (b"<tasks><task><number-of-retries>three</number-of-retries></task></tasks>", "number-of-retries"),
        (b"<tasks><task><root>yes</root></task></tasks>", "tasks[0].root: expected true or false"),
        (b"<tasks><task><colour>red</colour></task></tasks>", "colour: unknown field"),
        (b"<tasks><task><name>a</name><name>b</name></task></tasks>", "tasks[0].name: appears more than once"),
        (b'<tasks><task id="1"></task></tasks>', "unexpected XML attribute"),
        (b"<tasks><thing/></tasks>", "expected only <task> elements"),
        (b"", "malformed XML"),
    ],
)
async def test_invalid_xml_bodies_are_400(client, raw_db, body, fragment):
    response = await client.post("/tracking/task", content=body, headers=XML)
    assert response.status_code == 400, response.text
    error = xmltodict.parse(response.content)["error"]
    assert error["code"] == "400"
    assert fragment in error["message"]
    assert await raw_db.tasks.count_documents({}) == 0


BILLION_LAUGHS = b"""<?xml version="1.0"?>
<!DOCTYPE lolz [
 <!ENTITY lol "lol">
 <!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
 <!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">
 <!ENTITY lol9 "&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;">
]>
<tasks><task><name>&lol9;</name></task></tasks>"""
XXE = b"""<?xml version="1.0"?>
<!DOCTYPE tasks [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>
<tasks><task><name>&xxe;</name></task></tasks>"""
EXTERNAL_DTD = b"""<?xml version="1.0"?>
<!DOCTYPE tasks SYSTEM "http://127.0.0.1:9/evil.dtd">
<tasks><task><name>x</name></task></tasks>"""
PARAMETER_ENTITY = b"""<?xml version="1.0"?>
<!DOCTYPE tasks [<!ENTITY % p SYSTEM "file:///etc/passwd"> %p;]>
<tasks/>"""


@pytest.mark.parametrize("body", [BILLION_LAUGHS, XXE, EXTERNAL_DTD, PARAMETER_ENTITY])
async def test_hostile_xml_is_refused(client, raw_db, body):
    response = await client.post("/tracking/task", content=body, headers={"Content-Type": "application/xml"})
    assert_error(response, 400, "DOCTYPE")
    assert "root:" not in response.text
    assert await raw_db.tasks.count_documents({}) == 0


@pytest.mark.parametrize("body", [b"{", b"", b'{"tasks": [}'])
async def test_malformed_json_is_400(client, body):
    response = await client.post("/tracking/task", content=body, headers={"Content-Type": "application/json"})
    assert response.status_code == 400


# ---- GET -------------------------------------------------------------------------------------------------------


async def test_get_task_found_unknown_and_malformed(client):
    await create(client, {"name": "x"})
    assert (await client.get("/tracking/task/1")).json()["name"] == "x"
    for same in ("0001", "%31"):  # leading zeros, percent-encoded digits: the same id
        assert (await client.get(f"/tracking/task/{same}")).json() == (await client.get("/tracking/task/1")).json()
    assert_error(await client.get("/tracking/task/2"), 404, "task 2 not found")
    as_xml = await client.get("/tracking/task/2", headers={"Accept": "application/xml"})
    assert as_xml.status_code == 404 and as_xml.headers["content-type"] == "application/xml"
    assert b"<code>404</code>" in as_xml.content and b"task 2 not found" in as_xml.content
    for bad in ("0", "-1", "abc", "1.0", "+1", "1e3", "9223372036854775808", "%D9%A3", "1%2F"):
        assert_error(await client.get(f"/tracking/task/{bad}"), 400, "taskId")


async def test_get_next_and_previous_with_repeated_status_and_type(client):
    await create(
        client,
        {"id": 1, "type": "navigable-execution-task"},
        {"id": 2, "status": "DONE"},
        {"id": 3, "status": "FAILED", "type": "execution-task"},
        {"id": 4, "status": "RUNNING"},
    )
    assert ids(await client.put("/tracking/task/1/next?nextTaskId=4&nextTaskId=2&nextTaskId=3")) == [2, 3, 4]
    assert ids(await client.get("/tracking/task/1/next")) == [2, 3, 4]
    assert ids(await client.get("/tracking/task/1/next?status=DONE&status=FAILED")) == [2, 3]
    assert ids(await client.get("/tracking/task/1/next?type=execution-task")) == [3]
    assert ids(await client.get("/tracking/task/1/next?status=DONE&type=execution-task")) == []
    previous = await client.get("/tracking/task/3/previous")
    assert ids(previous) == [1]
    assert [t["id"] for t in previous.json()["tasks"][0]["nexts"]["tasks"]] == [2, 3, 4]
    assert ids(await client.get("/tracking/task/3/previous?status=X")) == []
    assert_error(await client.get("/tracking/task/9/next"), 404)
    assert_error(await client.get("/tracking/task/9/previous"), 404)


async def test_job_tasks_with_and_without_roots(client):
    await create(client, {"id": 3, "job-id": "J", "nexts": {"tasks": [{"id": 1}]}}, {"id": 2, "job-id": "K"})
    assert ids(await client.get("/tracking/J/task/roots")) == [1, 3]
    assert ids(await client.get("/tracking/J/task/roots?root=true")) == [1, 3]
    assert ids(await client.get("/tracking/J/task/roots?root=false")) == [1]
    assert ids(await client.get("/tracking/nobody/task/roots")) == []
    assert_error(await client.get("/tracking/J/task/roots?root=maybe"), 400, "root")
    empty = await client.get("/tracking/nobody/task/roots", headers={"Accept": "application/xml"})
    assert xmltodict.parse(empty.content) == {"tasks": None}


# ---- PUT /task/{id} --------------------------------------------------------------------------------------------


async def test_update_merges_and_clears(client):
    (before,) = await create(client, {"name": "n", "description": "d", "status": "READY"})
    response = await client.put("/tracking/task/1", json={"id": 1, "status": "DONE", "description": None})
    assert response.status_code == 200, response.text
    after = response.json()
    assert after["status"] == "DONE" and after["name"] == "n" and "description" not in after
    assert after["creation-timestamp"] == before["creation-timestamp"]
    assert (await client.get("/tracking/task/1")).json() == after


async def test_update_in_xml(client):
    await create(client, {"name": "n"})
    response = await client.put(
        "/tracking/task/1",
        content=b"<task><status>DONE</status><number-of-retries>2</number-of-retries></task>",
        headers=XML,
    )
    task = xmltodict.parse(response.content)["task"]
    assert (task["status"], task["number-of-retries"], task["name"]) == ("DONE", "2", "n")


@pytest.mark.parametrize(
    ("body", "status", "fragment"),
    [
        ({"id": 2}, 400, "body id 2 does not match path id 1"),
        ({"nexts": {"tasks": []}}, 400, "nexts: links change only through"),
        ({"previous": [2]}, 400, "previous: unknown field"),
        ({"wait-between-retries": 1.5}, 400, "wait-between-retries"),
    ],
)
async def test_invalid_updates_change_nothing(client, body, status, fragment):
    (before,) = await create(client, {"name": "n"})
    assert_error(await client.put("/tracking/task/1", json=body), status, fragment)
    assert (await client.get("/tracking/task/1")).json() == before


async def test_updating_an_unknown_task_is_404(client):
    assert_error(await client.put("/tracking/task/4", json={"status": "X"}), 404, "task 4 not found")


# ---- links -----------------------------------------------------------------------------------------------------


async def test_add_and_remove_links_both_ways(client, raw_db):
    await create(client, {"id": 1}, {"id": 2}, {"id": 3})
    assert ids(await client.put("/tracking/task/1/next?nextTaskId=2")) == [2]
    assert ids(await client.put("/tracking/task/1/next?nextTaskId=2&nextTaskId=3")) == [2, 3]
    assert ids(await client.put("/tracking/task/3/previous?prevTaskId=2")) == [1, 2]
    assert await assert_link_invariant(raw_db) == {(1, 2), (1, 3), (2, 3)}
    assert (await client.delete("/tracking/task/1/next?nextTaskId=3&nextTaskId=2")).status_code == 204
    assert (await client.delete("/tracking/task/1/next?nextTaskId=3")).status_code == 204  # no such link
    assert (await client.delete("/tracking/task/3/previous?prevTaskId=2")).status_code == 204
    assert await assert_link_invariant(raw_db) == set()


async def test_link_errors_change_nothing(client, raw_db):
    await create(client, {"id": 1}, {"id": 2})
    await client.put("/tracking/task/1/next?nextTaskId=2")
    assert_error(await client.put("/tracking/task/1/next?nextTaskId=9&nextTaskId=2"), 404, "task 9 not found")
    assert_error(await client.put("/tracking/task/9/previous?prevTaskId=1"), 404, "task 9 not found")
    assert_error(await client.put("/tracking/task/1/next?nextTaskId=1"), 400, "itself")
    assert_error(await client.put("/tracking/task/2/next?nextTaskId=1"), 400, "cycle")
    assert_error(await client.put("/tracking/task/1/previous?prevTaskId=2"), 400, "cycle")
    assert_error(await client.put("/tracking/task/1/next"), 400, "nextTaskId: at least one")
    assert_error(await client.put("/tracking/task/1/next?nextTaskId=x"), 400, "nextTaskId: 'x'")
    assert_error(await client.put("/tracking/task/1/previous?prevTaskId=0"), 400, "prevTaskId")
    assert_error(await client.delete("/tracking/task/1/next"), 400, "nextTaskId: at least one")
    assert_error(await client.delete("/tracking/task/1/previous"), 400, "prevTaskId: at least one")
    assert_error(await client.delete("/tracking/task/7/next?nextTaskId=1"), 404)
    assert_error(await client.delete("/tracking/task/1/previous?prevTaskId=7"), 404)
    assert await assert_link_invariant(raw_db) == {(1, 2)}


async def test_delete_task_removes_its_links(client, raw_db):
    await create(client, {"id": 1, "nexts": {"tasks": [{"id": 2, "nexts": {"tasks": [{"id": 3}]}}]}})
    response = await client.delete("/tracking/task/2")
    assert response.status_code == 204 and response.content == b""
    assert_error(await client.get("/tracking/task/2"), 404)
    assert await assert_link_invariant(raw_db) == set()
    assert_error(await client.delete("/tracking/task/2"), 404)


async def test_concurrent_link_requests_on_one_task_lose_nothing(client, raw_db):
    await create(client, *({"id": i} for i in range(1, 33)))
    responses = await asyncio.gather(
        *(client.put(f"/tracking/task/1/next?nextTaskId={i}") for i in range(2, 18)),
        *(client.put(f"/tracking/task/1/previous?prevTaskId={i}") for i in range(18, 33)),
    )
    assert all(r.status_code == 200 for r in responses), [r.text for r in responses if r.status_code != 200]
    edges = await assert_link_invariant(raw_db)
    assert edges == {(1, i) for i in range(2, 18)} | {(i, 1) for i in range(18, 33)}


async def test_a_tasks_fields_come_in_the_guides_order_whatever_order_they_are_stored_in(client, raw_db):
    """Answers followed the stored order: a create's defaults came last, an update's new fields after them, a
    tool's document in its own order; one task changed shape over its life, and an XML schema fixing the
    elements' order refused some answers."""
    expected = ["id", "status", "creation-timestamp", "update-timestamp", "job-id", "root", "name", "description"]
    created = await client.post("/tracking/task", json={"tasks": [{"name": "a", "job-id": "j1"}]})
    task_id = created.json()["tasks"][0]["id"]
    updated = await client.put(f"/tracking/task/{task_id}", json={"description": "d", "status": "S1"})
    assert list(updated.json())[: len(expected)] == expected, list(updated.json())
    await raw_db.tasks.insert_one(
        {"type": "task", "name": "t", "status": "READY", "_id": Int64(900), "root": True, "nexts": [], "previous": []}
    )
    for task in (task_id, 900):
        fields = list((await client.get(f"/tracking/task/{task}")).json())
        assert fields == sorted(fields, key=RESPONSE_FIELD_ORDER.index), fields
        xml = await client.get(f"/tracking/task/{task}", headers={"Accept": "application/xml"})
        assert list(xmltodict.parse(xml.content)["task"]) == fields
