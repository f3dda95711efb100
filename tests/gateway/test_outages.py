"""MongoDB gone, mongod dying under a running gateway, two gateways on one data dir or one database, and
`tracking-gateway check` on a collection other tools broke: all on real mongod processes."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator

import httpx
import pytest
from bson.int64 import Int64
from prometheus_client import REGISTRY
from pymongo import AsyncMongoClient

from gateway.app import create_app
from gateway.backend import Backend
from gateway.embedded import EmbeddedMongo, free_port
from gateway.settings import load_settings
from models import GraphStore, StorageUnavailable, TaskPatch
from models.subscriber import Phase, Subscriber
from tests.helpers import AUTH, TOKEN, LoggedProcess, eventually, gateway_app, lifespan_client, task

GATEWAY = [sys.executable, "-m", "gateway"]
DEADLINE_MS = 1500
ANSWER_WITHIN = 5.0  # the deadline, its grace, and a loaded machine's slack; a stalled request takes 120 s


@pytest.fixture
async def doomed(tmp_path) -> AsyncIterator[tuple[EmbeddedMongo, GraphStore]]:
    """A mongod of this test's own (the tests kill it) and a store on it with a short deadline."""
    mongo = EmbeddedMongo(tmp_path / "doomed", cache_size_gb=0.25)
    store = await GraphStore.open(await mongo.start(), "outage", timeout_ms=DEADLINE_MS)
    await store.create_tasks([task(id=1, job_id="j"), task(id=2, job_id="j"), task(id=3, job_id="j")])
    await store.add_nexts(1, [2])
    yield mongo, store
    await store.close()
    await mongo.stop()


def kill(mongo: EmbeddedMongo) -> None:
    mongo.process.kill()
    mongo.process.wait()


def process_state(pid: int) -> str:
    """The state letter of /proc/<pid>/stat (`T`: stopped)."""
    with open(f"/proc/{pid}/stat") as stat:
        return stat.read().rsplit(")", 1)[1].split()[0]


async def is_stopped(pid: int) -> bool:
    """Whether the process is stopped (a signal is delivered when the kernel next schedules its target)."""
    return process_state(pid) == "T"


@contextlib.asynccontextmanager
async def frozen(mongo: EmbeddedMongo) -> AsyncIterator[None]:
    """mongod stopped (SIGSTOP: alive, connected, answering nothing) for the block, then let go on."""
    os.kill(mongo.process.pid, signal.SIGSTOP)
    try:
        await eventually(lambda: is_stopped(mongo.process.pid), what="mongod stopped")
        yield
    finally:
        os.kill(mongo.process.pid, signal.SIGCONT)


async def timed(operation) -> float:
    started = time.monotonic()
    with pytest.raises(StorageUnavailable):
        await operation
    return time.monotonic() - started


@pytest.mark.slow
async def test_with_mongodb_gone_every_operation_fails_fast(doomed):
    mongo, store = doomed
    kill(mongo)
    for operation in (
        store.get_task(1),
        store.list_job_tasks("j"),
        store.create_tasks([task()]),
        store.update_task(1, TaskPatch.model_validate({"status": "X"})),
        store.add_nexts(2, [3]),
        store.remove_nexts(1, [2]),
        store.delete_task(3),
    ):
        assert await timed(operation) < ANSWER_WITHIN


@pytest.mark.slow
@pytest.mark.parametrize("outage", ["killed", "stopped"])
async def test_concurrent_reads_that_share_a_query_each_fail_within_the_deadline(doomed, outage):
    """Reads of single tasks started together share one query (models.coalesce): a dead or frozen mongod still
    fails each of them, with an error of its own, within the deadline."""
    mongo, store = doomed
    if outage == "killed":
        kill(mongo)
    else:
        os.kill(mongo.process.pid, signal.SIGSTOP)  # alive, connected, answering nothing
        await eventually(lambda: is_stopped(mongo.process.pid), what="mongod stopped")
    try:
        started = time.monotonic()
        results = await asyncio.gather(*(store.get_task(i) for i in (1, 2, 3, 1, 99)), return_exceptions=True)
        elapsed = time.monotonic() - started
    finally:
        if outage == "stopped":
            os.kill(mongo.process.pid, signal.SIGCONT)
    assert all(isinstance(result, StorageUnavailable) for result in results), results
    assert len({id(result) for result in results}) == len(results)
    assert elapsed < ANSWER_WITHIN


@pytest.mark.slow
async def test_with_mongodb_gone_rest_answers_503_without_internals_and_queued_links_give_up(doomed, tmp_path):
    mongo, store = doomed
    app, _ = gateway_app(store, tmp_path)
    async with lifespan_client(app, AUTH) as http:
        kill(mongo)
        started = time.monotonic()
        answers = await asyncio.gather(
            *(http.put("/tracking/task/2/next", params={"nextTaskId": "3"}) for _ in range(6))
        )
        assert time.monotonic() - started < ANSWER_WITHIN, "queued link requests wait no longer than the deadline"
        for response in answers:
            assert response.status_code == 503
            assert response.json() == {"code": 503, "message": "MongoDB unavailable: try again later"}
        for response in (
            await http.delete("/tracking/task/1/next", params={"nextTaskId": "2"}),
            await http.delete("/tracking/task/3"),
        ):
            assert response.status_code == 503
            assert str(mongo.port) not in response.text
        started = time.monotonic()
        assert (await http.get("/readyz")).status_code == 503
        assert time.monotonic() - started < 3


def _mongodb_failures() -> float:
    """Store operations that found MongoDB unavailable or timed out, so far (models.metrics)."""
    kinds = ("timeout", "unavailable")
    return sum(REGISTRY.get_sample_value("tracking_mongodb_failures_total", {"kind": kind}) or 0.0 for kind in kinds)


@pytest.mark.slow
@pytest.mark.parametrize(
    "query",
    [
        '{ job(id: "j") { id taskCount statusCounts { status count } summary { progress } } doneStatuses }',
        '{ task(id: "1") { id nexts { id } history { kind } } }',
    ],
)
async def test_with_mongodb_gone_a_compiled_query_waits_for_it_once(doomed, tmp_path, query):
    """The compiled path finds MongoDB out of reach; graphql-core then reports it as always (UNAVAILABLE on the
    field, the same body as with the compiled path off) without waiting out the deadline a second time."""
    mongo, store = doomed
    compiled, _ = gateway_app(store, tmp_path / "a")
    generic, _ = gateway_app(store, tmp_path / "b", graphql_compiled=False)
    async with lifespan_client(compiled, AUTH) as one, lifespan_client(generic, AUTH) as other:
        kill(mongo)
        before = _mongodb_failures()
        answer = await one.post("/graphql", json={"query": query})
        assert _mongodb_failures() - before == 1, "one wait for MongoDB, not one per path"
        assert answer.json()["errors"][0]["extensions"]["code"] == "UNAVAILABLE"
        assert answer.content == (await other.post("/graphql", json={"query": query})).content


@pytest.mark.slow
async def test_the_store_recovers_when_mongodb_comes_back(doomed, tmp_path):
    mongo, store = doomed
    kill(mongo)
    with pytest.raises(StorageUnavailable):
        await store.get_task(1)
    mongo._release_data_dir()
    again = EmbeddedMongo(tmp_path / "doomed", cache_size_gb=0.25)
    await again.start()  # the same port: the store's client finds it again
    try:
        assert again.port == mongo.port

        async def answers() -> bool:
            try:
                return (await store.get_task(1))["_id"] == 1
            except StorageUnavailable:
                return False

        await eventually(answers, what="reads after MongoDB came back")
    finally:
        await again.stop()


# ---- the embedded mongod dying under a running gateway --------------------------------------------------------------


async def test_a_dead_embedded_mongod_is_restarted_then_given_up_on(tmp_path, caplog):
    settings = load_settings(api_tokens=TOKEN, data_dir=tmp_path / "var", mongodb_timeout_ms=2000)
    backend = await Backend.open(settings)
    failures: list[str] = []
    backend.supervise(max_restarts=1, on_failure=failures.append)
    app = create_app(settings, backend)
    try:
        async with lifespan_client(app, AUTH) as http:
            await http.post("/tracking/task", json={"tasks": [{"id": 1}]})
            assert backend.embedded is not None
            first_pid = backend.embedded.process.pid
            kill(backend.embedded)

            async def served_again() -> bool:
                return (await http.get("/tracking/task/1")).status_code == 200

            await eventually(served_again, what="serving after mongod was restarted")

            async def restart_finished() -> bool:  # the client may reconnect before the restart has returned
                return "restarted the embedded mongod" in caplog.text

            await eventually(restart_finished, what="the supervisor done restarting")
            assert backend.embedded.process.pid != first_pid
            assert (await http.get("/healthz")).status_code == 200

            kill(backend.embedded)  # a second death within ten minutes: past the bound of one restart

            async def failed() -> bool:
                return bool(failures)

            await eventually(failed, what="giving up")
            health = await http.get("/healthz")
            assert health.status_code == 503
            assert "died 2 times" in health.json()["reason"]
    finally:
        await backend.close()


# ---- whole processes -----------------------------------------------------------------------------------------------


def gateway_env(**values: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TRACKING_")}
    return {**env, "TRACKING_API_TOKENS": TOKEN, **values}


def start_gateway(**env: str) -> LoggedProcess:
    return LoggedProcess(GATEWAY, gateway_env(**env))


async def wait_until_ready(port: int, process: LoggedProcess) -> None:
    async def ready() -> bool:
        assert process.poll() is None, process.output()
        try:
            async with httpx.AsyncClient() as http:
                return (await http.get(f"http://127.0.0.1:{port}/readyz")).status_code == 200
        except httpx.TransportError:
            return False

    await eventually(ready, timeout=90, what="the gateway answering /readyz")


def stop(process: LoggedProcess) -> str:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
    return process.output()


@pytest.mark.slow
async def test_a_second_gateway_on_the_same_data_dir_refuses_and_the_first_keeps_serving(tmp_path):
    data_dir, port = tmp_path / "var", free_port()
    first = start_gateway(TRACKING_DATA_DIR=str(data_dir), TRACKING_PORT=str(port))
    try:
        await wait_until_ready(port, first)
        second = start_gateway(TRACKING_DATA_DIR=str(data_dir), TRACKING_PORT=str(free_port()))
        stderr = second.output()
        assert second.returncode == 1
        lines = stderr.strip().splitlines()
        assert len(lines) == 1 and "another gateway" in lines[0] and str(first.pid) in lines[0], stderr
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", headers=AUTH) as http:
            assert (await http.get("/readyz")).status_code == 200
            assert (await http.post("/tracking/task", json={"tasks": [{}]})).status_code == 200
    finally:
        stop(first)


@pytest.mark.slow
async def test_a_gateway_that_may_not_restart_its_mongod_exits_non_zero(tmp_path):
    data_dir, port = tmp_path / "var", free_port()
    process = start_gateway(TRACKING_DATA_DIR=str(data_dir), TRACKING_PORT=str(port), TRACKING_EMBEDDED_RESTARTS="0")
    try:
        await wait_until_ready(port, process)
        os.kill(int((data_dir / "mongo" / "mongod.pid").read_text()), signal.SIGKILL)
        assert process.wait(timeout=60) == 1
    finally:
        stderr = stop(process)
    assert "cannot serve any more" in stderr


@pytest.mark.slow
async def test_shutdown_with_mongodb_gone_takes_seconds(tmp_path):
    mongo = EmbeddedMongo(tmp_path / "external", cache_size_gb=0.25)
    uri = await mongo.start()
    port = free_port()
    process = start_gateway(TRACKING_MONGODB_URI=uri, TRACKING_PORT=str(port), TRACKING_MONGODB_TIMEOUT_MS="2000")
    try:
        await wait_until_ready(port, process)
        kill(mongo)
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", headers=AUTH) as http:
            in_flight = asyncio.create_task(http.post("/tracking/task", json={"tasks": [{}]}, timeout=60))
            await asyncio.sleep(0.3)
            started = time.monotonic()
            process.send_signal(signal.SIGTERM)
            await asyncio.to_thread(process.wait, 30)
            assert time.monotonic() - started < 10
            answer = await in_flight
            assert answer.status_code == 503
    finally:
        stop(process)
        await mongo.stop()


# ---- tracking-gateway check ----------------------------------------------------------------------------------------


async def seed_every_fault(raw_db) -> None:
    """One of each thing `check` looks for, written as a careless tool would (past the validator)."""
    docs = [
        {"_id": Int64(1), "nexts": [Int64(2)], "previous": []},  # one-sided: 2 does not list 1
        {"_id": Int64(2), "nexts": [], "previous": []},
        {"_id": Int64(3), "nexts": [Int64(99)], "previous": []},  # dangling: 99 does not exist
        {"_id": Int64(4), "nexts": [Int64(5)], "previous": [Int64(5)]},  # 4 -> 5 -> 4
        {"_id": Int64(5), "nexts": [Int64(4)], "previous": [Int64(4)]},
        {"_id": Int64(6), "status": 5, "nexts": [], "previous": []},  # wrong type
        {"_id": 7, "nexts": [], "previous": []},  # int32 id
        {"_id": Int64(8), "nexts": [], "previous": [Int64(1)]},  # one-sided the other way: 1 does not list 8
    ]
    await raw_db.tasks.insert_many(docs, bypass_document_validation=True)


async def test_check_reports_each_fault_and_repair_fixes_what_is_safe(store, raw_db):
    await seed_every_fault(raw_db)
    report = await store.check()
    counts = {name: finding.count for name, finding in report.findings.items()}
    assert counts == {
        "one-sided links": 2,
        "dangling ids": 1,
        "tasks on cycles": 2,
        "fields of the wrong type": 1,
        "task ids not stored as int64": 1,
        "ids that are no task id (an int64 > 0)": 0,
        "link arrays repeating an id": 0,
        "link fields that are not arrays": 0,
        "strings that are not UTF-8": 0,
        "repairs MongoDB refused": 0,
    }
    assert report.scanned == 8
    text = "\n".join(report.lines())
    assert "1.nexts holds 2" in text and "3.nexts holds 99" in text and "4 -> 5 -> 4" in text and "6: status" in text

    repaired = await store.check(repair=True)
    assert repaired.findings["one-sided links"].repaired == 2
    assert repaired.findings["dangling ids"].repaired == 1
    assert (await raw_db.tasks.find_one({"_id": 2}))["previous"] == [1]
    assert (await raw_db.tasks.find_one({"_id": 1}))["nexts"] == [2, 8]
    assert (await raw_db.tasks.find_one({"_id": 3}))["nexts"] == []

    after = await store.check()
    assert {name: finding.count for name, finding in after.findings.items() if finding.count} == {
        "tasks on cycles": 2,
        "fields of the wrong type": 1,
        "task ids not stored as int64": 1,
    }


async def test_check_on_a_sound_graph_finds_nothing(store, raw_db):
    await store.create_tasks([task(id=1, nexts={"tasks": [{"id": 2}, {"id": 3}]})])
    await store.add_nexts(2, [3])
    report = await store.check(repair=True)
    assert report.problems_left == 0 and report.scanned == 3


@pytest.mark.slow
def test_the_check_command_exits_by_what_it_found(mongo_uri, tmp_path):
    env = gateway_env(TRACKING_MONGODB_URI=mongo_uri, TRACKING_MONGODB_DB="check_cli", TRACKING_DATA_DIR=str(tmp_path))
    asyncio.run(_seed_in_other_db(mongo_uri))
    found = subprocess.run([*GATEWAY, "check"], env=env, capture_output=True, text=True, timeout=120)
    assert found.returncode == 1, found.stderr
    assert "one-sided links: 2" in found.stdout and "tasks on cycles: 2" in found.stdout
    repaired = subprocess.run([*GATEWAY, "check", "--repair"], env=env, capture_output=True, text=True, timeout=120)
    assert "repaired 2" in repaired.stdout
    assert repaired.returncode == 1, "cycles, types and ids are left for a person"


async def _seed_in_other_db(uri: str) -> None:
    client: AsyncMongoClient = AsyncMongoClient(uri)
    try:
        database = client["check_cli"]
        await database.tasks.drop()
        await seed_every_fault(database)
    finally:
        await client.close()


RESUME_WITHIN_S = 2.0


@pytest.mark.slow
@pytest.mark.parametrize("phase", [Phase.LIVE, Phase.CATCHING_UP], ids=["live", "catching up"])
async def test_subscriptions_end_within_their_resume_window_when_mongodb_stops_answering(doomed, monkeypatch, phase):
    """mongod frozen (SIGSTOP: connected, answering nothing): the shared stream's poll waits until the driver
    gives up on the server, tens of seconds later; a subscription waiting meanwhile ends with UNAVAILABLE once its
    resume window has passed since the stream last answered, not once the driver raises. One still catching up,
    its catch-up's stream open, too: its end does not wait for that stream's close (a killCursors the frozen
    server never answers) until the driver gives up."""
    mongo, _ = doomed
    # The default deadline: the driver's monitor then takes 20-35 s to give up on a frozen server.
    store = await GraphStore.open(mongo.uri, "outage")
    after = await store.event_cursor("j")
    await store.update_task(1, TaskPatch.model_validate({"status": "LIVE"}))
    if phase is Phase.CATCHING_UP:
        monkeypatch.setattr(Subscriber, "hand_over", lambda subscriber, position: False)  # its stream stays open
    events = store.watch_task_events("j", after, resume_within_s=RESUME_WITHIN_S)
    assert (await asyncio.wait_for(anext(events), 30)).task_id == 1  # caught up

    async def in_phase() -> bool:
        return [subscriber.phase for subscriber in store.live.subscribers()] == [phase]

    await eventually(in_phase, what=f"the subscription {phase.value}")
    try:
        async with frozen(mongo):
            started = time.monotonic()
            with pytest.raises(StorageUnavailable):
                await asyncio.wait_for(anext(events), 60)
            elapsed = time.monotonic() - started
    finally:
        await events.aclose()
        await store.close()
    assert elapsed < RESUME_WITHIN_S + ANSWER_WITHIN, elapsed
