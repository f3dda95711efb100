"""What a write answers is what MongoDB did (models.transactions): a refusal (any 4xx or 5xx but the "outcome
unknown" 504) means nothing was stored; a 200 means all of it was; once the commit is sent, the request's
deadline no longer turns a commit into a 503; a commit whose outcome cannot be learned within
TRACKING_COMMIT_OUTCOME_WAIT_MS is a 504 (GraphQL: OUTCOME_UNKNOWN) saying how to check; and no transaction of
a failed or cancelled request stays open in MongoDB.

The faults are real: deadlines of a few hundred ms cutting large creates wherever they happen to be, and a TCP
proxy that holds MongoDB's replies once a commit went through it (tests.proxy)."""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pymongo
import pytest
from bson.int64 import Int64

from models import GraphStore, transactions
from tests.conftest import TEST_DB
from tests.helpers import AUTH, eventually, gateway_app, lifespan_client, open_transactions
from tests.proxy import CommitReplyHold, commit_reply_hold


@pytest.fixture
async def no_transaction_left(raw_db: Any) -> AsyncIterator[None]:
    """Kills what a failing test left open, so that later tests (and their index builds) do not wait 60 s."""
    yield
    await raw_db.client.admin.command("killAllSessions", [])


@pytest.fixture
async def proxy(mongo_uri: str) -> AsyncIterator[CommitReplyHold]:
    async with commit_reply_hold(mongo_uri) as holding:
        yield holding


async def _gateway(uri: str, tmp_path: Path, **options: Any) -> GraphStore:
    return await GraphStore.open(uri, TEST_DB, **options)


async def _post(store: GraphStore, tmp_path: Path, path: str, **request: Any) -> httpx.Response:
    """One request to a gateway on `store`, as a client of it would send it."""
    app, _ = gateway_app(store, tmp_path)
    async with lifespan_client(app, AUTH) as http:
        return await http.request(request.pop("method", "POST"), path, **request)


def _tasks(count: int, job: str) -> list[dict[str, Any]]:
    return [{"name": f"{job}-{i}", "job-id": job, "description": "d" * 100} for i in range(count)]


async def _no_transaction_open(raw_db: Any) -> None:
    async def closed() -> bool:
        return await open_transactions(raw_db) == []

    # A few seconds on a quiet machine (MongoDB stops a killed insert within a second or so). On a loaded one an
    # abort may be given up (ABORT_TIMEOUT_S) and the transaction ended by its supersession: the bound stays
    # under MongoDB's transaction lifetime (60 s), so that only the gateway can have ended it.
    await eventually(closed, timeout=50, what="no transaction open in MongoDB")


async def test_a_commit_answered_after_the_request_deadline_is_answered_as_committed(
    store, proxy, raw_db, tmp_path, no_transaction_left
):
    """The deadline bounds the work before the commit: a commit whose answer comes after the request's
    deadline (TRACKING_MONGODB_TIMEOUT_MS) but within the commit's own wait is a 200 with everything stored,
    where it used to be a 503 with everything stored."""
    held = await _gateway(proxy.uri, tmp_path, timeout_ms=1_000, commit_outcome_wait_ms=15_000)
    try:
        proxy.arm(hold_s=2.5)
        started = time.monotonic()
        response = await _post(held, tmp_path, "/tracking/task", json={"tasks": _tasks(50, "late")})
        took = time.monotonic() - started
    finally:
        await held.close()
    assert proxy.commits_held == 1
    assert response.status_code == 200, response.text
    assert took >= 2.5, "the commit's answer was held 2.5 s: the request cannot have answered before"
    answered = sorted(int(task["id"]) for task in response.json()["tasks"])
    stored = sorted([doc["_id"] async for doc in raw_db.tasks.find({"job-id": "late"}, {"_id": 1})])
    assert answered == stored and len(stored) == 50
    await _no_transaction_open(raw_db)


async def test_a_commit_whose_outcome_cannot_be_learned_is_a_504_and_a_retry_with_its_key_stores_it_once(
    store, proxy, client, raw_db, tmp_path, no_transaction_left
):
    """The commit went through, its answer never came within TRACKING_COMMIT_OUTCOME_WAIT_MS: the answer says
    the outcome is unknown, in its own words and status, and how to check; it is no 'try again later'. Sent
    again with the same Idempotency-Key (to a healthy gateway), the create answers its tasks and stores no
    second copy."""
    held = await _gateway(proxy.uri, tmp_path, timeout_ms=5_000, commit_outcome_wait_ms=700)
    body = {"tasks": _tasks(300, "unknown")}
    headers = {"Idempotency-Key": '"retry-after-unknown"'}
    try:
        proxy.arm(hold_s=None)
        response = await _post(held, tmp_path, "/tracking/task", json=body, headers=headers)
    finally:
        proxy.release()
        await held.close()
    assert response.status_code == 504, response.text
    error = response.json()
    assert error["code"] == 504
    assert error["message"].startswith("outcome unknown:"), error
    assert "TRACKING_COMMIT_OUTCOME_WAIT_MS" in error["message"] and "read task" in error["message"]
    assert "idempotency key" in error["message"]
    assert "try again later" not in error["message"]

    async def stored() -> bool:
        return await raw_db.tasks.count_documents({"job-id": "unknown"}) == 300

    await eventually(stored, timeout=10, what="the commit MongoDB received")
    again = await client.post("/tracking/task", json=body, headers=headers)
    assert again.status_code == 200, again.text
    assert await raw_db.tasks.count_documents({"job-id": "unknown"}) == 300
    ids = sorted(int(task["id"]) for task in again.json()["tasks"])
    assert ids == sorted([doc["_id"] async for doc in raw_db.tasks.find({"job-id": "unknown"}, {"_id": 1})])
    await _no_transaction_open(raw_db)


@pytest.mark.parametrize(
    ("method", "path", "applied"),
    [
        ("PUT", "/tracking/task/1/next?nextTaskId=2", lambda doc: doc["nexts"] == [2]),
        ("DELETE", "/tracking/task/1", lambda doc: doc is None),
        ("DELETE", "/tracking/task/3/next?nextTaskId=4", lambda doc: doc["nexts"] == []),
        ("PUT", "/tracking/task/1", lambda doc: doc["name"] == "renamed"),
    ],
)
async def test_every_transactional_write_answers_an_unknown_outcome_as_such(
    store, proxy, raw_db, tmp_path, method, path, applied, no_transaction_left
):
    """Links, unlinks, deletes and updates (even one without a condition, a single write) are transactions too:
    the same 504, and the change is what MongoDB did."""
    await store.create_tasks([{"id": 1}, {"id": 2}, {"id": 3, "nexts": {"tasks": [{"id": 4}]}}])
    held = await _gateway(proxy.uri, tmp_path, timeout_ms=5_000, commit_outcome_wait_ms=500)
    try:
        proxy.arm(hold_s=None)
        body = {"json": {"name": "renamed"}} if path == "/tracking/task/1" and method == "PUT" else {}
        response = await _post(held, tmp_path, path, method=method, **body)
    finally:
        proxy.release()
        await held.close()
    assert response.status_code == 504, response.text
    assert response.json()["message"].startswith("outcome unknown:")
    task_id = int(path.split("/")[3].split("?")[0])

    async def was_applied() -> bool:
        return bool(applied(await raw_db.tasks.find_one({"_id": task_id})))

    await eventually(was_applied, timeout=10, what="the change MongoDB committed")
    await _no_transaction_open(raw_db)


async def test_graphql_create_tasks_with_an_unknown_outcome_has_its_own_code(
    store, proxy, client, raw_db, tmp_path, no_transaction_left
):
    mutation = 'mutation($tasks: [TaskInput!]!) { createTasks(tasks: $tasks, idempotencyKey: "gql-unknown") { id } }'
    body = {"query": mutation, "variables": {"tasks": [{"name": "g", "jobId": "gql"}]}}
    held = await _gateway(proxy.uri, tmp_path, timeout_ms=5_000, commit_outcome_wait_ms=500)
    try:
        proxy.arm(hold_s=None)
        response = await _post(held, tmp_path, "/graphql", json=body)
    finally:
        proxy.release()
        await held.close()
    errors = response.json()["errors"]
    assert [error["extensions"]["code"] for error in errors] == ["OUTCOME_UNKNOWN"], errors
    again = (await client.post("/graphql", json=body)).json()
    assert "errors" not in again, again
    assert await raw_db.tasks.count_documents({"job-id": "gql"}) == 1
    stored = await raw_db.tasks.find_one({"job-id": "gql"})
    assert again["data"]["createTasks"] == [{"id": str(stored["_id"])}]


async def test_creates_cut_by_deadlines_at_random_points_answer_what_is_stored_and_leave_nothing_open(
    store, mongo_uri, client, raw_db, tmp_path, caplog, no_transaction_left
):
    """Creates of 6,000-10,000 tasks under deadlines of a few hundred ms, cut wherever they happen to be
    (planning, the id counter, the insert, the commit). Each answer is what is stored: a 200 all of it, a 503
    none of it, a 504 either; within a few seconds MongoDB holds no transaction of theirs; each create sent
    again with its key to a healthy gateway answers at once with exactly one copy stored."""
    rounds = random.Random(29)  # the same points every run; the machine's load moves them anyway
    seen: set[int] = set()
    healthy = await _gateway(mongo_uri, tmp_path, timeout_ms=60_000)  # healthy even on a loaded machine
    try:
        app, _ = gateway_app(healthy, tmp_path)
        async with lifespan_client(app, AUTH) as http:
            await _cut_and_retry(rounds, seen, mongo_uri, http, raw_db, tmp_path, caplog)
    finally:
        await healthy.close()
    assert 503 in seen, f"no deadline cut a create ({seen}): shorten them"
    assert "mark_dirty" not in caplog.text and "never retrieved" not in caplog.text


async def _cut_and_retry(
    rounds: random.Random,
    seen: set[int],
    mongo_uri: str,
    http: httpx.AsyncClient,
    raw_db: Any,
    tmp_path: Path,
    caplog: Any,
) -> None:
    with caplog.at_level(logging.WARNING):
        for number in range(8):
            job, count = f"cut-{number}", rounds.randrange(6_000, 10_001)
            body, headers = {"tasks": _tasks(count, job)}, {"Idempotency-Key": f'"cut-{number}"'}
            short = await _gateway(mongo_uri, tmp_path, timeout_ms=rounds.randrange(100, 900))
            try:
                first = await _post(short, tmp_path, "/tracking/task", json=body, headers=headers)
            finally:
                await short.close()
            seen.add(first.status_code)
            stored = await raw_db.tasks.count_documents({"job-id": job})
            assert first.status_code in (200, 503, 504), first.text
            if first.status_code == 200:
                assert stored == count
            elif first.status_code == 503:
                assert stored == 0, f"a 503 left {stored} tasks stored"
            await _no_transaction_open(raw_db)
            # A transaction left open would hold the key's record: the retry would answer 409.
            again = await http.post("/tracking/task", json=body, headers=headers)
            assert again.status_code == 200, again.text
            assert await raw_db.tasks.count_documents({"job-id": job}) == count
            if first.status_code == 200:
                assert again.content == first.content


async def test_creates_cancelled_at_random_points_are_whole_or_absent_and_leave_nothing_open(
    store, raw_db, caplog, no_transaction_left
):
    """A request cancelled mid-create (its client went away, its hard deadline fired): cancelled before the
    commit it stores nothing, during the commit all of it, and MongoDB holds no transaction of it within a few
    seconds. The abort runs before the session ends: no failed abort is logged."""
    points = random.Random(7)
    with caplog.at_level(logging.WARNING):
        for number in range(4):
            job = f"cancel-{number}"
            creating = asyncio.create_task(store.create_tasks(_tasks(6_000, job)))
            await asyncio.sleep(points.uniform(0.0, 1.5))
            creating.cancel()
            outcome = (await asyncio.gather(creating, return_exceptions=True))[0]
            await _no_transaction_open(raw_db)
            stored = await raw_db.tasks.count_documents({"job-id": job})
            if isinstance(outcome, list):
                assert stored == 6_000  # finished before the cancellation
            else:
                assert isinstance(outcome, asyncio.CancelledError)
                assert stored in (0, 6_000), stored
    # No abort failed (one after its session ended: "Cannot use ended session"), but for one that MongoDB, loaded,
    # did not answer within ABORT_TIMEOUT_S: its transaction is then superseded, as checked above.
    failed = [record.getMessage() for record in caplog.records if "abort" in record.getMessage()]
    assert not [message for message in failed if "timed out" not in message], failed


async def test_a_write_that_meets_conflicts_until_its_deadline_is_a_503_and_changes_nothing(
    store, mongo_uri, raw_db, tmp_path, no_transaction_left
):
    """Another transaction holds the task: each try meets a write conflict and runs again, until the deadline;
    then 503 (nothing changed), never an internal error."""
    await store.create_tasks([{"id": 1, "name": "before"}])
    other = raw_db.client.start_session()
    short = await _gateway(mongo_uri, tmp_path, timeout_ms=600)
    try:
        await other.start_transaction()
        await raw_db.tasks.update_one({"_id": 1}, {"$set": {"status": "held"}}, session=other)
        response = await _post(short, tmp_path, "/tracking/task/1", method="PUT", json={"name": "after"})
        await other.abort_transaction()
    finally:
        await other.end_session()
        await short.close()
    assert response.status_code == 503, response.text
    assert response.json()["message"] == "MongoDB unavailable: try again later"
    assert (await raw_db.tasks.find_one({"_id": 1}))["name"] == "before"
    await _no_transaction_open(raw_db)


async def test_a_transaction_whose_abort_was_given_up_is_superseded_once_mongodb_answers(
    raw_db, monkeypatch, no_transaction_left
):
    """An interrupted request's abort may be given up (MongoDB frozen) while a command of it that MongoDB had not
    read yet opens the transaction when it wakes: MongoDB then held it, its writes' locks and keys with it, for
    its whole lifetime (60 s), and a retry with the same idempotency key was told it was still in progress. Here
    the abort is given up at once, the transaction already open in MongoDB: it is ended within seconds."""

    async def given_up(session: Any, interrupted: bool) -> None:
        """As when MongoDB does not answer: no time to send the abort (PyMongo ends the transaction locally)."""
        with pymongo.timeout(1e-6):
            await session.abort_transaction()
        assert not session.in_transaction

    monkeypatch.setattr(transactions, "_abort", given_up)
    opened = asyncio.Event()

    async def work(session: Any) -> None:
        await raw_db.tasks.insert_one({"_id": Int64(77), "nexts": [], "previous": []}, session=session)
        opened.set()
        raise TimeoutError("the request's deadline")

    with pytest.raises(TimeoutError):
        await transactions.run_transaction(raw_db.tasks, work, 1.0, lambda: "")
    assert opened.is_set()
    await _no_transaction_open(raw_db)
    assert await raw_db.tasks.count_documents({"_id": 77}) == 0
