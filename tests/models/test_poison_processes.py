"""The poison corpus served by a gateway process of its own, which stops cleanly on SIGTERM, and `check --repair`
run on it as a process: reports every kind of finding and repairs what it can."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys
from asyncio.subprocess import PIPE
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from gateway.embedded import free_port
from models.check import NON_ARRAY_LINKS, REPEATED_IDS, UNDECODABLE, WRONG_TYPES
from tests.helpers import (
    AUTH,
    TOKEN,
    eventually,
)
from tests.models.poison_corpus import (
    assert_every_read_answers,
    plant_corpus,
    recorded,
)

pytestmark = pytest.mark.hostile  # an attack on what it tests (pyproject.toml, markers)


# ---- real processes --------------------------------------------------------------------------------------------------

POISON_DB = "tracking_poison"


@pytest.fixture
async def poisoned_db(raw_db) -> AsyncIterator[Any]:
    """A database of its own holding the corpus, for gateway processes started on it."""
    database = raw_db.client[POISON_DB]
    await database.drop_collection("tasks")
    await plant_corpus(database)
    yield database
    await raw_db.client.drop_database(POISON_DB)


def gateway_process_env(mongo_uri: str, tmp_path, **values: str) -> dict[str, str]:
    env = {name: value for name, value in os.environ.items() if not name.startswith("TRACKING_")}
    env.update(TRACKING_MONGODB_URI=mongo_uri, TRACKING_MONGODB_DB=POISON_DB, TRACKING_DATA_DIR=str(tmp_path), **values)
    return env


@pytest.mark.slow
async def test_the_gateway_process_serves_the_corpus_and_exits_0_on_sigterm(poisoned_db, mongo_uri, tmp_path):
    port = free_port()
    env = gateway_process_env(mongo_uri, tmp_path, TRACKING_PORT=str(port), TRACKING_API_TOKENS=TOKEN)
    log_file = tmp_path / "gateway.log"
    with log_file.open("w") as log:
        process = await asyncio.create_subprocess_exec(sys.executable, "-m", "gateway", env=env, stderr=log)
        try:
            async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", headers=AUTH, timeout=30) as http:

                async def ready() -> bool:
                    assert process.returncode is None, log_file.read_text()
                    with contextlib.suppress(httpx.TransportError):
                        return (await http.get("/readyz")).status_code == 200
                    return False

                await eventually(ready, timeout=60, what="the gateway ready")
                await assert_every_read_answers(http, [9001, 9002, 9004, 9005, 9007, 9113], ["poison"])
                await poisoned_db.tasks.update_one({"_id": 9001}, {"$set": {"status": "TOUCHED"}})

                async def recorded_touch() -> bool:
                    return await recorded(poisoned_db, 9001, "TOUCHED")

                await eventually(recorded_touch, what="the history of the poison task's change")
        finally:
            process.send_signal(signal.SIGTERM)
            returncode = await asyncio.wait_for(process.wait(), 60)
    stderr = log_file.read_text()
    assert returncode == 0, stderr
    assert "Traceback" not in stderr, stderr


@pytest.mark.slow
async def test_check_reports_the_corpus_and_repair_finishes_with_a_report(poisoned_db, mongo_uri, tmp_path):
    env = gateway_process_env(mongo_uri, tmp_path)
    command = [sys.executable, "-m", "gateway", "check", "--repair"]
    process = await asyncio.create_subprocess_exec(*command, env=env, stdout=PIPE, stderr=PIPE)
    out, err = await asyncio.wait_for(process.communicate(), 120)
    stdout, stderr = out.decode(), err.decode()
    assert process.returncode == 1, stderr  # problems that need a person are left
    assert "Traceback" not in stderr, stderr
    for finding in (NON_ARRAY_LINKS, REPEATED_IDS, UNDECODABLE, WRONG_TYPES):
        assert finding in stdout
    assert "outside years 1-9999" in stdout
    assert "dangling ids: 100000" in stdout and "repaired 100000" in stdout
    assert (await poisoned_db.tasks.find_one({"_id": 9005}))["nexts"] == [9006]
