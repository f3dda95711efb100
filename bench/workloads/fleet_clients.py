"""The fleet workload's subscribers, spread over client processes of their own: 2,000 WebSockets reading a
thousand events a second in one Python process would time the client, not the gateway. Each process opens its
share of the connections, subscribes its share of the subscriptions, then notes when each event arrives
(`time.perf_counter`: CLOCK_MONOTONIC, the same clock in every process of the machine) until told to stop, and
sends back the arrivals and the CPU it used, so that the workload can say whether a client was the bottleneck."""

from __future__ import annotations

import asyncio
import multiprocessing
import resource
import time
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from typing import Any

import aiohttp

READY, STOP = "ready", "stop"
DEFLATE_WINDOW_BITS = 15
"""What the client offers for permessage-deflate's window (aiohttp's `compress`), a browser's offer: the
gateway's answer bounds it (uvicorn's, 12 bits)."""


@dataclass(frozen=True)
class Share:
    """What one client process subscribes: `connections` sockets, subscriptions numbered `numbers` (spread over
    its sockets in turn; number n to job `job_prefix` + n % jobs)."""

    gateway: str
    token: str
    query: str
    connections: int
    numbers: range
    jobs: int
    job_prefix: str


@dataclass
class Arrivals:
    """What a client process sends back: (status, arrival time) of every event, its CPU seconds and its wall
    time while the changes were made, and the errors it received."""

    events: list[tuple[str, float]] = field(default_factory=list)
    cpu_s: float = 0.0
    wall_s: float = 0.0
    errors: list[Any] = field(default_factory=list)


def _cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


async def _read(ws: aiohttp.ClientWebSocketResponse, arrivals: Arrivals) -> None:
    async for message in ws:
        if message.type is not aiohttp.WSMsgType.TEXT:
            return
        arrived = time.perf_counter()
        decoded = message.json()
        payload = decoded.get("payload") or {}
        if decoded.get("type") != "next" or "errors" in payload:
            arrivals.errors.append(decoded)
            continue
        event = (payload.get("data") or {}).get("taskEvents")
        if event is not None:
            arrivals.events.append((event["task"]["status"], arrived))


async def _serve(share: Share, control: Connection) -> None:
    arrivals = Arrivals()
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as session:
        sockets, readers = [], []
        for _ in range(share.connections):
            # Offering permessage-deflate, as browsers do: the gateway then keeps a compressor per connection.
            ws = await session.ws_connect(
                f"{share.gateway}/graphql", protocols=["graphql-transport-ws"], compress=DEFLATE_WINDOW_BITS
            )
            await ws.send_json({"type": "connection_init", "payload": {"X-Auth-Token": share.token}})
            assert (await ws.receive_json())["type"] == "connection_ack"
            sockets.append(ws)
            # Read at once: the gateway pings every connection, and closes one that does not answer in time.
            readers.append(asyncio.create_task(_read(ws, arrivals)))
        for position, number in enumerate(share.numbers):
            variables = {"jobId": f"{share.job_prefix}{number % share.jobs}"}
            payload = {"query": share.query, "variables": variables}
            message = {"id": str(number), "type": "subscribe", "payload": payload}
            await sockets[position % len(sockets)].send_json(message)
        control.send(READY)
        await asyncio.to_thread(control.recv)  # the changes start
        cpu, wall = _cpu_s(), time.perf_counter()
        await asyncio.to_thread(control.recv)  # STOP
        arrivals.cpu_s, arrivals.wall_s = _cpu_s() - cpu, time.perf_counter() - wall
        for reader in readers:
            reader.cancel()
        await asyncio.gather(*readers, return_exceptions=True)
        for ws in sockets:
            await ws.close()
    control.send(arrivals)


def _main(share: Share, control: Connection) -> None:
    asyncio.run(_serve(share, control))


class ClientProcesses:
    """`processes` client processes sharing `connections` sockets and `subscriptions` subscriptions evenly."""

    def __init__(self, processes: int, share: Share, subscriptions: int) -> None:
        self._controls: list[Connection] = []
        self._processes: list[multiprocessing.process.BaseProcess] = []
        context = multiprocessing.get_context("spawn")
        for index in range(processes):
            numbers = range(index, subscriptions, processes)
            connections = max(1, share.connections // processes)
            mine = Share(share.gateway, share.token, share.query, connections, numbers, share.jobs, share.job_prefix)
            parent, child = context.Pipe()
            process = context.Process(target=_main, args=(mine, child), daemon=True)
            process.start()
            self._controls.append(parent)
            self._processes.append(process)

    async def subscribed(self) -> None:
        """Once every process has sent all its subscriptions."""
        for control in self._controls:
            assert await asyncio.to_thread(control.recv) == READY

    def start_measuring(self) -> None:
        for control in self._controls:
            control.send("go")

    async def stop(self) -> list[Arrivals]:
        for control in self._controls:
            control.send(STOP)
        arrivals = [await asyncio.to_thread(control.recv) for control in self._controls]
        for process in self._processes:
            process.join(30)
        return arrivals
