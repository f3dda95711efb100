"""The history writer's lease between two gateway processes: when the holder dies (kill -9, no goodbye), the
survivor leads within a few seconds and the history goes on from where the dead one stopped."""

from __future__ import annotations

import asyncio
import signal
import time
from functools import partial

import httpx
import pytest
from pymongo import AsyncMongoClient

from gateway.embedded import free_port
from models.history_writer import LEASE_S
from tests.helpers import AUTH, eventually, gateway_process, gateway_ready

DB = "lease_handover"


@pytest.mark.slow
async def test_the_history_lease_moves_to_the_survivor_within_seconds_of_its_holder_s_death(mongo_uri, tmp_path):
    client: AsyncMongoClient = AsyncMongoClient(mongo_uri)
    await client.drop_database(DB)
    database = client[DB]
    ports = [free_port(), free_port()]
    gateways = [gateway_process(mongo_uri, DB, port, tmp_path / f"var{n}") for n, port in enumerate(ports)]
    try:
        for port in ports:
            await eventually(partial(gateway_ready, port), timeout=90, what=f"gateway on {port} ready")

        async def lease() -> dict | None:
            return await database.task_history_lease.find_one({"_id": "writer"})

        async def held() -> bool:
            found = await lease()
            return found is not None and found.get("resumeToken") is not None

        await eventually(held, timeout=60, what="a writer leading")
        holder = (await lease() or {})["owner"]
        dead = next(n for n, gateway in enumerate(gateways) if f":{gateway.pid}:" in holder)
        survivor = ports[1 - dead]
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{survivor}", headers=AUTH, timeout=30) as rest:
            await rest.post("/tracking/task", json={"tasks": [{"id": 1, "status": "BEFORE"}]})

            async def recorded(status: str) -> bool:
                return await database.task_history.find_one({"task": 1, "status": status}) is not None

            await eventually(lambda: recorded("BEFORE"), what="the holder recording")
            gateways[dead].send_signal(signal.SIGKILL)
            died = time.monotonic()
            await rest.put("/tracking/task/1", json={"status": "WHILE NO ONE LEADS"})

            async def moved() -> bool:
                found = await lease()
                return found is not None and found["owner"] != holder

            await eventually(moved, timeout=30, what="the lease moving")
            moved_after = time.monotonic() - died
            await eventually(lambda: recorded("WHILE NO ONE LEADS"), timeout=30, what="the survivor recording")
            recorded_after = time.monotonic() - died
        print(f"lease moved {moved_after:.2f}s after kill -9; history went on {recorded_after:.2f}s after it")
        # Within a lease and a third (LEASE_S), and a margin for a loaded machine.
        assert moved_after < LEASE_S * 4 / 3 + 3, moved_after
        assert recorded_after < LEASE_S * 4 / 3 + 5, recorded_after
    finally:
        for gateway in gateways:
            if gateway.poll() is None:
                gateway.send_signal(signal.SIGTERM)
            await asyncio.to_thread(gateway.wait, 60)
        await client.drop_database(DB)
        await client.close()
