"""Start-up paths: settings, the embedded mongod (fresh, restarted, crashed, moved port), a URI, a standalone."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from gateway import embedded as embedded_module
from gateway.backend import Backend
from gateway.embedded import EmbeddedMongo, EmbeddedMongoError, find_mongod_binary, free_port
from gateway.settings import SettingsError, load_settings
from models import GraphStore, TransactionsUnsupported
from tests.helpers import LoggedProcess, task

GATEWAY = [sys.executable, "-m", "gateway"]


def gateway_env(**values: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TRACKING_")}
    env.update(values)
    return env


# ---- settings --------------------------------------------------------------------------------------------------


def test_defaults(monkeypatch):
    for name in list(os.environ):
        if name.startswith("TRACKING_"):
            monkeypatch.delenv(name)
    settings = load_settings()
    assert (settings.host, settings.port, settings.mongodb_uri, settings.mongodb_db) == (
        "127.0.0.1",
        8080,
        None,
        "tracking",
    )
    assert settings.data_dir == Path("./var")
    assert settings.max_body_bytes == 16 * 1024 * 1024
    assert settings.api_tokens == ()


def test_settings_from_the_environment(monkeypatch):
    monkeypatch.setenv("TRACKING_API_TOKENS", " a, b ,,c")
    monkeypatch.setenv("TRACKING_PORT", "9000")
    monkeypatch.setenv("TRACKING_MONGODB_URI", "mongodb://db.example:27017/?replicaSet=rs")
    settings = load_settings()
    assert settings.api_tokens == ("a", "b", "c")
    assert settings.port == 9000
    assert not settings.uses_embedded_mongodb


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("TRACKING_PORT", "eighty"),
        ("TRACKING_PORT", "70000"),
        ("TRACKING_MAX_BODY_BYTES", "0"),
        ("TRACKING_MONGODB_URI", "http://localhost"),
        ("TRACKING_MONGODB_DB", "a/b"),
        ("TRACKING_MONGODB_DB", "x" * 64),  # MongoDB's names are shorter: it would fail with a traceback
    ],
)
def test_invalid_settings_name_the_variable(monkeypatch, variable, value):
    monkeypatch.setenv(variable, value)
    with pytest.raises(SettingsError, match=variable) as raised:
        load_settings()
    assert "\n" not in str(raised.value)


@pytest.mark.slow
def test_cli_refuses_invalid_settings_with_one_line(tmp_path):
    result = subprocess.run(
        [*GATEWAY, "serve"],
        env=gateway_env(TRACKING_PORT="-1", TRACKING_DATA_DIR=str(tmp_path)),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "TRACKING_PORT" in lines[0], result.stderr


# ---- embedded mongod -------------------------------------------------------------------------------------------


@pytest.mark.slow
async def test_embedded_data_survives_a_restart(data_dir):
    mongo = EmbeddedMongo(data_dir, cache_size_gb=0.25)
    store = await GraphStore.open(await mongo.start(), "restart")
    await store.create_tasks([task(name="kept", nexts={"tasks": [{}]})])
    await store.close()
    await mongo.stop()

    again = EmbeddedMongo(data_dir, cache_size_gb=0.25)
    store = await GraphStore.open(await again.start(), "restart")
    try:
        assert (await store.get_task(1))["name"] == "kept"
        assert [doc["_id"] for doc in await store.create_tasks([task()])] == [3]
    finally:
        await store.close()
        await again.stop()


@pytest.mark.slow
async def test_a_mongod_killed_hard_restarts_with_its_acknowledged_data(data_dir):
    mongo = EmbeddedMongo(data_dir, cache_size_gb=0.25)
    store = await GraphStore.open(await mongo.start(), "crash")
    await store.create_tasks([task(name="acknowledged")])
    await store.close()
    os.kill(mongo.process.pid, signal.SIGKILL)  # leaves mongod.lock and an unclean journal
    mongo.process.wait()
    mongo._release_data_dir()  # as the kernel does for a gateway process that died
    assert (data_dir / "mongo" / "mongod.lock").exists()

    again = EmbeddedMongo(data_dir, cache_size_gb=0.25)
    store = await GraphStore.open(await again.start(), "crash")
    try:
        assert (await store.get_task(1))["name"] == "acknowledged"
    finally:
        await store.close()
        await again.stop()


@pytest.mark.slow
async def test_a_mongod_left_running_by_a_dead_gateway_is_replaced(data_dir):
    orphan = EmbeddedMongo(data_dir, cache_size_gb=0.25)
    await orphan.start()
    orphan_pid = orphan.process.pid
    orphan._release_data_dir()  # its gateway died: the kernel dropped the lock, mongod lives on
    successor = EmbeddedMongo(data_dir, cache_size_gb=0.25)
    store = await GraphStore.open(await successor.start(), "orphan")
    try:
        assert orphan.process.poll() is not None, "the leftover mongod should have been stopped"
        assert successor.process.pid != orphan_pid
        await store.create_tasks([task()])
    finally:
        await store.close()
        await successor.stop()


@pytest.mark.slow
async def test_the_replica_set_follows_a_new_port_when_the_old_one_is_taken(data_dir):
    mongo = EmbeddedMongo(data_dir, cache_size_gb=0.25)
    store = await GraphStore.open(await mongo.start(), "ports")
    await store.create_tasks([task(name="moved")])
    await store.close()
    old_port = mongo.port
    await mongo.stop()
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", old_port))  # taken, but refusing connections (mongod probes it)
        again = EmbeddedMongo(data_dir, cache_size_gb=0.25)
        store = await GraphStore.open(await again.start(), "ports")
        try:
            assert again.port != old_port
            assert (await store.get_task(1))["name"] == "moved"
        finally:
            await store.close()
            await again.stop()


@pytest.mark.slow
async def test_a_binary_that_cannot_run_says_to_set_the_uri(data_dir, monkeypatch):
    monkeypatch.setattr(embedded_module, "find_mongod_binary", lambda: Path("/bin/false"))
    with pytest.raises(EmbeddedMongoError, match="TRACKING_MONGODB_URI"):
        await EmbeddedMongo(data_dir).start()


# ---- external URI ----------------------------------------------------------------------------------------------


async def test_backend_uses_the_configured_uri_without_starting_mongod(mongo_uri, data_dir):
    backend = await Backend.open(load_settings(mongodb_uri=mongo_uri, mongodb_db="uri_test", data_dir=data_dir))
    try:
        assert backend.embedded is None
        assert await backend.store.is_ready()
        assert not (data_dir / "mongo").exists()
    finally:
        await backend.close()


@pytest.fixture(scope="module")
def standalone_uri(tmp_path_factory) -> Iterator[str]:
    """A standalone mongod (no replica set), which the tests only try to open: one for the module."""
    port = free_port()
    tmp_path = tmp_path_factory.mktemp("standalone")
    (tmp_path / "standalone").mkdir()
    process = subprocess.Popen(
        [
            str(find_mongod_binary()),
            "--dbpath",
            str(tmp_path / "standalone"),
            "--port",
            str(port),
            "--bind_ip",
            "127.0.0.1",
            "--quiet",
            "--logpath",
            str(tmp_path / "standalone.log"),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 60
    while socket.socket().connect_ex(("127.0.0.1", port)) != 0:
        assert time.monotonic() < deadline and process.poll() is None, "standalone mongod did not start"
        time.sleep(0.1)
    yield f"mongodb://127.0.0.1:{port}/"
    process.terminate()
    process.wait(30)


@pytest.mark.slow
async def test_a_standalone_server_is_refused_with_the_fix(standalone_uri):
    with pytest.raises(TransactionsUnsupported, match=r"standalone.*--replSet"):
        await GraphStore.open(standalone_uri, "standalone")


@pytest.mark.slow
def test_cli_refuses_a_standalone_server(standalone_uri, tmp_path):
    result = subprocess.run(
        [*GATEWAY],
        env=gateway_env(
            TRACKING_MONGODB_URI=standalone_uri, TRACKING_DATA_DIR=str(tmp_path), TRACKING_PORT=str(free_port())
        ),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 1
    assert "standalone" in result.stderr and "replica set" in result.stderr
    assert "Traceback" not in result.stderr


# ---- the whole process -----------------------------------------------------------------------------------------


def wait_for(url: str, process: subprocess.Popen, timeout: float = 90) -> httpx.Response:
    deadline = time.monotonic() + timeout
    while True:
        assert process.poll() is None, f"gateway exited with {process.returncode}"
        try:
            return httpx.get(url, timeout=2)
        except httpx.TransportError:
            assert time.monotonic() < deadline, f"{url} never answered"
            time.sleep(0.2)


def start_gateway(data_dir: Path, port: int) -> LoggedProcess:
    return LoggedProcess(GATEWAY, gateway_env(TRACKING_PORT=str(port), TRACKING_DATA_DIR=str(data_dir)))


def stop_gateway(process: LoggedProcess) -> str:
    process.send_signal(signal.SIGTERM)
    stderr = process.output()
    # uvicorn shuts down cleanly, then re-raises the SIGTERM it caught so the exit status tells a supervisor why
    assert process.returncode in (0, -signal.SIGTERM), stderr
    return stderr


@pytest.mark.slow
def test_the_gateway_process_serves_keeps_data_across_restarts_and_stops_its_mongod(tmp_path):
    port, data_dir = free_port(), tmp_path / "var"
    base = f"http://127.0.0.1:{port}"
    process = start_gateway(data_dir, port)
    try:
        assert wait_for(f"{base}/healthz", process).json() == {"status": "ok"}
        assert httpx.get(f"{base}/readyz").status_code == 200
        token_file = data_dir / "api-token"
        assert token_file.stat().st_mode & 0o777 == 0o600
        token = token_file.read_text().strip()
        created = httpx.post(
            f"{base}/tracking/task",
            content=b"<tasks><task><job-id>j</job-id><status>READY</status></task></tasks>",
            headers={"X-Auth-Token": token, "Content-Type": "application/xml", "Accept": "application/xml"},
        )
        assert created.status_code == 200, created.text
        mongod_pid = int((data_dir / "mongo" / "mongod.pid").read_text())
    finally:
        stderr = stop_gateway(process)
    assert token in stderr, "the generated token is printed at start-up"
    assert "embedded MongoDB stopped" in stderr
    with pytest.raises(ProcessLookupError):
        os.kill(mongod_pid, 0)

    process = start_gateway(data_dir, port)
    try:
        wait_for(f"{base}/healthz", process)
        fetched = httpx.get(f"{base}/tracking/j/task/roots", headers={"X-Auth-Token": token})
        assert [(t["id"], t["status"]) for t in fetched.json()["tasks"]] == [(1, "READY")]
    finally:
        stop_gateway(process)
