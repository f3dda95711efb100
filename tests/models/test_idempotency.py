"""Idempotency keys of creates (IETF draft "The Idempotency-Key HTTP Header Field"): `Idempotency-Key` on
`POST /tracking/task`, `idempotencyKey` on GraphQL `createTasks` (models.idempotency, rest.idempotency)."""

from __future__ import annotations

import asyncio
import hashlib
import json
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import xmltodict
from hypothesis import given
from hypothesis import strategies as st

from models import GraphStore, InvalidOperation
from models.documents import IdempotencyRecord
from models.idempotency import IDEMPOTENCY_KEY_MAX, IdempotencyRecords
from rest.idempotency import sf_string
from tests.conftest import TEST_DB
from tests.helpers import AUTH, TOKEN, gateway_app, lifespan_client
from web.auth import Access, Caller, caller_identity

KEY = {"Idempotency-Key": '"8e03978e-40d5-43e8-bc93-6894a57f9324"'}
CREATE = (
    "mutation($tasks: [TaskInput!]!, $key: String) { createTasks(tasks: $tasks, idempotencyKey: $key) { id name } }"
)


def _body(*names: str, job: str = "idem") -> dict[str, Any]:
    return {"tasks": [{"name": name, "job-id": job, "nexts": {"tasks": [{"name": f"{name}-next"}]}} for name in names]}


async def _stored_count(raw_db: Any) -> int:
    return int(await raw_db.tasks.count_documents({}))


async def test_the_same_key_and_tasks_answer_what_the_first_answered_and_store_nothing_again(client, raw_db):
    first = await client.post("/tracking/task", json=_body("a", "b"), headers=KEY)
    assert first.status_code == 200, first.text
    assert await _stored_count(raw_db) == 4
    counter = await raw_db.counters.find_one({"_id": "tasks"})
    for _ in range(2):
        again = await client.post("/tracking/task", json=_body("a", "b"), headers=KEY)
        assert (again.status_code, again.headers["content-type"], again.content) == (
            first.status_code,
            first.headers["content-type"],
            first.content,
        )
    assert await _stored_count(raw_db) == 4
    assert await raw_db.counters.find_one({"_id": "tasks"}) == counter  # no id was even reserved


async def test_a_replay_is_rendered_as_negotiated_now_and_as_the_tasks_were_created(client, raw_db):
    """The answer is rebuilt from the key's record and the request's own tasks: in the format asked for now,
    and as the tasks were created, whatever happened to them since (documented)."""
    first = await client.post("/tracking/task", json=_body("x"), headers=KEY)
    created = first.json()["tasks"]
    parent = int(created[0]["id"])
    await client.put(f"/tracking/task/{parent}", json={"name": "renamed"})
    xml = await client.post(
        "/tracking/task",
        content=b"<tasks><task><name>x</name><job-id>idem</job-id><nexts><task><name>x-next</name></task></nexts>"
        b"</task></tasks>",
        headers={**KEY, "Content-Type": "application/xml", "Accept": "application/xml"},
    )
    assert xml.status_code == 200, xml.text
    replayed = xmltodict.parse(xml.content)["tasks"]["task"]
    assert [replayed[0]["id"], replayed[0]["name"]] == [str(parent), "x"]
    assert replayed[0]["creation-timestamp"] == created[0]["creation-timestamp"]
    await client.delete(f"/tracking/task/{parent}")
    again = await client.post("/tracking/task", json=_body("x"), headers=KEY)
    assert again.content == first.content
    assert await _stored_count(raw_db) == 1  # the deleted task is not created again


async def test_the_same_key_with_other_tasks_is_a_422_and_changes_nothing(client, raw_db):
    assert (await client.post("/tracking/task", json=_body("a"), headers=KEY)).status_code == 200
    for other in (_body("b"), _body("a", job="other"), {"tasks": [{"name": "a", "job-id": "idem"}]}):
        response = await client.post("/tracking/task", json=other, headers=KEY)
        assert response.status_code == 422, response.text
        assert response.json() == {
            "code": 422,
            "message": "idempotency key '8e03978e-40d5-43e8-bc93-6894a57f9324' was already used for a create "
            "with other tasks: use a new key for a new create",
        }
    assert await _stored_count(raw_db) == 2


async def test_a_failed_create_records_no_key(client, raw_db):
    """A key is recorded exactly when its create committed: after a refusal, the same key creates."""
    await client.post("/tracking/task", json={"tasks": [{"id": 7}]})
    refused = await client.post("/tracking/task", json={"tasks": [{"id": 7}, {"id": 8}]}, headers=KEY)
    assert refused.status_code == 400
    assert await raw_db.idempotency_keys.count_documents({}) == 0
    await client.delete("/tracking/task/7")
    created = await client.post("/tracking/task", json={"tasks": [{"id": 7}, {"id": 8}]}, headers=KEY)
    assert created.status_code == 200, created.text
    assert await raw_db.idempotency_keys.count_documents({}) == 1


async def test_keys_belong_to_the_caller_and_the_record_holds_a_hash_of_its_name_never_the_token(
    store, tmp_path: Path, raw_db
):
    app, _ = gateway_app(store, tmp_path, api_tokens=f"{TOKEN},other-token")
    async with lifespan_client(app, AUTH) as mine, lifespan_client(app, {"X-Auth-Token": "other-token"}) as theirs:
        first = await mine.post("/tracking/task", json=_body("a"), headers=KEY)
        second = await theirs.post("/tracking/task", json=_body("a"), headers=KEY)
    assert first.status_code == second.status_code == 200
    assert first.json() != second.json()
    assert await _stored_count(raw_db) == 4
    records = await raw_db.idempotency_keys.find().to_list(None)
    callers = {record["_id"]["caller"] for record in records}
    names = ("env-api-1", "env-api-2")  # the environment's tokens, by their place
    assert callers == {hashlib.sha256(json.dumps([None, name]).encode()).hexdigest() for name in names}
    assert not any(TOKEN in repr(record) or "other-token" in repr(record) for record in records)


async def test_the_record_is_small_expires_after_the_setting_and_has_its_ttl_index(mongo_uri, tmp_path, raw_db, store):
    short = await GraphStore.open(mongo_uri, TEST_DB, idempotency_hours=2)
    try:
        app, _ = gateway_app(short, tmp_path)
        async with lifespan_client(app, AUTH) as http:
            body = {"tasks": [{"name": f"t{i}"} for i in range(5_000)]}
            response = await http.post("/tracking/task", json=body, headers=KEY)
    finally:
        await short.close()
    assert response.status_code == 200
    record = await raw_db.idempotency_keys.find_one()
    ids = [int(task["id"]) for task in response.json()["tasks"]]
    assert record["ids"] == [[ids[0], 5_000]]  # one run of consecutive server ids
    assert record["expires"] - record["created"] == timedelta(hours=2)
    indexes = await raw_db.idempotency_keys.index_information()
    ttl = indexes[IdempotencyRecord.Settings.indexes[0].document["name"]]
    assert ttl["key"] == [("expires", 1)] and ttl["expireAfterSeconds"] == 0


@pytest.mark.parametrize(
    ("value", "named"),
    [
        ("8e03978e", "expected a quoted string"),
        ('""', "must not be empty"),
        ('"' + "k" * (IDEMPOTENCY_KEY_MAX + 1) + '"', f"at most {IDEMPOTENCY_KEY_MAX} characters"),
        ('"a";p=1', "expected a quoted string"),
        ('"a\\b"', 'only \\" and \\\\ are escapes'),
        ('"tab\there"', "U+0009 is not allowed"),
        ('"a", "b"', "one quoted string expected"),
    ],
)
async def test_a_malformed_key_is_a_400_naming_the_header_and_changes_nothing(client, raw_db, value, named):
    response = await client.post("/tracking/task", json=_body("a"), headers={"Idempotency-Key": value})
    assert response.status_code == 400, response.text
    message = response.json()["message"]
    assert message.startswith("Idempotency-Key: ") and named in message, message
    assert await _stored_count(raw_db) == 0


async def test_a_browser_dashboard_may_send_a_key(store, tmp_path: Path):
    app, _ = gateway_app(store, tmp_path, cors_origins="https://dash.example")
    async with lifespan_client(app, AUTH) as http:
        preflight = await http.options(
            "/tracking/task",
            headers={
                "Origin": "https://dash.example",
                "Access-Control-Request-Method": "POST",
                "Access-Control-Request-Headers": "X-Auth-Token, Content-Type, Idempotency-Key",
            },
        )
    assert preflight.status_code == 200
    assert "idempotency-key" in preflight.headers["access-control-allow-headers"].lower()


async def test_two_key_headers_are_refused(client, raw_db):
    headers = [("Idempotency-Key", '"a"'), ("Idempotency-Key", '"b"')]
    response = await client.post("/tracking/task", json=_body("a"), headers=headers)
    assert response.status_code == 400
    assert "one quoted string expected" in response.json()["message"]
    assert await _stored_count(raw_db) == 0


async def test_concurrent_requests_with_one_key_create_once(client, raw_db):
    """Eight requests with one key at once: exactly one create is stored; each answer is that create's (the
    same body) or a 409 while it was in flight."""
    body = {"tasks": [{"name": f"c{i}", "job-id": "together"} for i in range(2_000)]}
    answers = await asyncio.gather(*(client.post("/tracking/task", json=body, headers=KEY) for _ in range(8)))
    statuses = sorted(answer.status_code for answer in answers)
    assert set(statuses) <= {200, 409}, statuses
    created = [answer.content for answer in answers if answer.status_code == 200]
    assert created and len(set(created)) == 1
    for answer in answers:
        if answer.status_code == 409:
            assert "still in progress" in answer.json()["message"]
    assert await raw_db.tasks.count_documents({"job-id": "together"}) == 2_000
    again = await client.post("/tracking/task", json=body, headers=KEY)
    assert again.status_code == 200 and again.content == created[0]


async def test_a_retry_whose_given_ids_the_first_create_committed_meanwhile_gets_its_answer(
    client, raw_db, monkeypatch
):
    """A retry sent while the first create (with given ids) was committing looked the key up before that commit,
    then found the ids taken: it answered 400 "already exists", which a client reads as its own fault. The first
    create commits here between the retry's look-up and its ids' check (the look-up made to miss it once)."""
    body = {"tasks": [{"id": 7001, "name": "given", "job-id": "retried"}]}
    first = await client.post("/tracking/task", json=body, headers=KEY)
    assert first.status_code == 200, first.text
    recorded_for = IdempotencyRecords.recorded_for
    missed: list[bool] = []

    async def before_the_commit(self: IdempotencyRecords, *args: Any) -> Any:
        if not missed:
            missed.append(True)
            return None
        return await recorded_for(self, *args)

    monkeypatch.setattr(IdempotencyRecords, "recorded_for", before_the_commit)
    retried = await client.post("/tracking/task", json=body, headers=KEY)
    assert (retried.status_code, retried.content) == (200, first.content), retried.text
    other = await client.post("/tracking/task", json=body, headers={"Idempotency-Key": '"another"'})
    assert other.status_code == 400 and "already exists" in other.json()["message"], other.text
    assert await raw_db.tasks.count_documents({"job-id": "retried"}) == 1


async def test_a_key_held_by_a_create_in_progress_is_a_409_and_free_again_once_that_create_is_aborted(client, raw_db):
    """Another gateway's create holds the key's record uncommitted: 409, nothing stored; once its transaction
    ends without a commit (its gateway died, MongoDB aborted it), the key creates."""
    caller = caller_identity(Caller("env-api-1", Access.WRITE))
    other = raw_db.client.start_session()
    try:
        await other.start_transaction()
        record = {"_id": {"caller": caller, "key": "held"}, "fingerprint": "x", "ids": [], "created": 0, "expires": 0}
        await raw_db.idempotency_keys.insert_one(record, session=other)
        headers = {"Idempotency-Key": '"held"'}
        held = await client.post("/tracking/task", json=_body("a"), headers=headers)
        assert held.status_code == 409, held.text
        assert held.json()["message"] == (
            "a create with idempotency key 'held' is still in progress: send the request again once it has "
            "answered, with the same key, to get its answer"
        )
        assert await _stored_count(raw_db) == 0
        await other.abort_transaction()
    finally:
        await other.end_session()
    created = await client.post("/tracking/task", json=_body("a"), headers=headers)
    assert created.status_code == 200, created.text
    assert await _stored_count(raw_db) == 2


async def test_a_create_with_given_ids_sent_twice_without_a_key_is_refused_and_changes_nothing(client, raw_db):
    """What legacy callers (no key) get: a create giving its ids is safe to send again. The second answers
    400 naming the ids that exist, and stores nothing (docs/reference/retries.md)."""
    body = {"tasks": [{"id": 11, "name": "a"}, {"id": 12, "name": "b"}]}
    assert (await client.post("/tracking/task", json=body)).status_code == 200
    before = await raw_db.tasks.find().to_list(None)
    again = await client.post("/tracking/task", json=body)
    assert again.status_code == 400
    assert again.json() == {"code": 400, "message": "tasks 11, 12 already exist"}
    assert await raw_db.tasks.find().to_list(None) == before


async def _graphql(http: Any, tasks: list[dict[str, Any]], key: str | None) -> dict[str, Any]:
    response = await http.post("/graphql", json={"query": CREATE, "variables": {"tasks": tasks, "key": key}})
    return dict(response.json())


async def test_graphql_create_tasks_with_an_idempotency_key(client, raw_db):
    tasks = [{"name": "g1", "jobId": "gql"}, {"name": "g2", "jobId": "gql"}]
    first = await _graphql(client, tasks, "gql-key")
    assert "errors" not in first, first
    assert await _graphql(client, tasks, "gql-key") == first
    assert await raw_db.tasks.count_documents({"job-id": "gql"}) == 2
    reused = await _graphql(client, [{"name": "other", "jobId": "gql"}], "gql-key")
    assert [error["extensions"]["code"] for error in reused["errors"]] == ["IDEMPOTENCY_KEY_REUSED"]
    for bad, named in (("", "must not be empty"), ("k" * 256, "at most 255"), ("é", "U+00E9")):
        refused = await _graphql(client, tasks, bad)
        error = refused["errors"][0]
        assert error["extensions"]["code"] == "BAD_USER_INPUT" and error["message"].startswith("idempotencyKey: ")
        assert named in error["message"]
    assert await raw_db.tasks.count_documents({"job-id": "gql"}) == 2


async def test_a_key_is_the_callers_across_rest_and_graphql(client, raw_db):
    """One caller, one key: the same tasks created through REST are answered, not created again, by GraphQL."""
    rest = await client.post("/tracking/task", json={"tasks": [{"name": "both", "job-id": "both"}]}, headers=KEY)
    answer = await _graphql(client, [{"name": "both", "jobId": "both"}], "8e03978e-40d5-43e8-bc93-6894a57f9324")
    assert answer["data"]["createTasks"] == [{"id": str(rest.json()["tasks"][0]["id"]), "name": "both"}]
    assert await raw_db.tasks.count_documents({"job-id": "both"}) == 1


_KEY_CHARACTERS = st.characters(min_codepoint=0x20, max_codepoint=0x7E)


@given(st.text(_KEY_CHARACTERS, min_size=1, max_size=IDEMPOTENCY_KEY_MAX))
def test_every_key_written_as_an_sf_string_reads_back_as_itself(key: str) -> None:
    quoted = '"' + key.replace("\\", "\\\\").replace('"', '\\"') + '"'
    assert sf_string(quoted) == key
    assert sf_string(f"  {quoted} ") == key


@given(st.text(max_size=40))
def test_a_header_value_reads_as_one_sf_string_or_is_refused_naming_the_header(value: str) -> None:
    try:
        key = sf_string(value)
    except InvalidOperation as error:
        assert error.message.startswith("Idempotency-Key: ")
        return
    text = value.strip(" ")
    assert text.startswith('"') and text.endswith('"') and len(key) <= len(text) - 2


async def test_a_graphql_document_answers_what_each_of_its_creates_committed(client, raw_db):
    """A document's mutations run one after another. The second reuses the first's key with other tasks: its
    field is null with its error, while `data` still shows what the first stored, and the third still runs."""
    document = """mutation {
      first: createTasks(tasks: [{name: "one", jobId: "doc"}], idempotencyKey: "doc-key") { id name }
      second: createTasks(tasks: [{name: "two", jobId: "doc"}], idempotencyKey: "doc-key") { id name }
      third: createTasks(tasks: [{name: "three", jobId: "doc"}]) { name }
    }"""
    body = (await client.post("/graphql", json={"query": document})).json()
    stored = {doc["name"]: doc["_id"] async for doc in raw_db.tasks.find({"job-id": "doc"})}
    assert body["data"] == {
        "first": [{"id": str(stored["one"]), "name": "one"}],
        "second": None,
        "third": [{"name": "three"}],
    }
    assert [(error["path"], error["extensions"]["code"]) for error in body["errors"]] == [
        (["second"], "IDEMPOTENCY_KEY_REUSED")
    ]
    assert set(stored) == {"one", "three"}


async def test_a_failing_mutation_nulls_its_own_field_only(client, raw_db):
    """Any mutation field, not only createTasks: an update of a missing task is null with NOT_FOUND beside the
    delete that ran before it."""
    created = await client.post("/tracking/task", json={"tasks": [{"id": 71, "name": "gone"}]})
    assert created.status_code == 200, created.text
    document = 'mutation { deleteTask(id: "71") missing: updateTask(id: "72", patch: {name: "x"}) { id } }'
    body = (await client.post("/graphql", json={"query": document})).json()
    assert body["data"] == {"deleteTask": True, "missing": None}
    assert [(error["path"], error["extensions"]["code"]) for error in body["errors"]] == [(["missing"], "NOT_FOUND")]
    assert await raw_db.tasks.count_documents({"_id": 71}) == 0


async def test_a_create_sending_the_defaults_is_the_same_create_as_one_leaving_them_out(client, raw_db):
    """`type` "task", `root` true on a task of the list and a nested task's parent's `job-id` are what the
    gateway stores anyway: sent or not, the same key answers the first create and stores nothing again."""
    bare = {"tasks": [{"name": "d", "job-id": "defaults", "nexts": {"tasks": [{"name": "d-next"}]}}]}
    explicit = {
        "tasks": [
            {
                "type": "task",
                "root": True,
                "name": "d",
                "job-id": "defaults",
                "nexts": {"tasks": [{"name": "d-next", "job-id": "defaults", "type": "task", "root": False}]},
            }
        ]
    }
    first = await client.post("/tracking/task", json=bare, headers=KEY)
    assert first.status_code == 200, first.text
    again = await client.post("/tracking/task", json=explicit, headers=KEY)
    assert (again.status_code, again.json()) == (200, first.json())  # its fields in this request's order
    assert await raw_db.tasks.count_documents({"job-id": "defaults"}) == 2
    xml = await client.post(
        "/tracking/task",
        content=b"<tasks><task><root>true</root><name>d</name><type>task</type><job-id>defaults</job-id><nexts>"
        b"<task><job-id>defaults</job-id><name>d-next</name></task></nexts></task></tasks>",
        headers={**KEY, "Content-Type": "application/xml"},
    )
    assert (xml.status_code, xml.json()) == (200, first.json())
    graphql = await _graphql(
        client,
        [{"name": "d", "jobId": "defaults", "type": "task", "nexts": [{"name": "d-next", "root": False}]}],
        KEY["Idempotency-Key"].strip('"'),
    )
    assert "errors" not in graphql, graphql
    assert [task["id"] for task in graphql["data"]["createTasks"]] == [str(t["id"]) for t in first.json()["tasks"]]
    other = await client.post("/tracking/task", json={"tasks": [{**bare["tasks"][0], "root": False}]}, headers=KEY)
    assert other.status_code == 422, other.text
    assert await raw_db.tasks.count_documents({"job-id": "defaults"}) == 2
