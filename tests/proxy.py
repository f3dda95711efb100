"""A TCP proxy between a gateway and the test mongod that can hold MongoDB's replies once a commit is sent: the
commit reaches MongoDB (and commits), and its answer is late or never comes, as when a network drops it or
MongoDB is slow to answer. A real fault on the wire; MongoDB itself is the real one."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from urllib.parse import urlparse

from gateway.embedded import free_port

_COMMIT = b"commitTransaction"


class CommitReplyHold:
    """Forwards every connection to `target`; once `armed` and a client sends commitTransaction, MongoDB's
    replies (on every connection) are held for `hold_s` seconds, or until `release()` when `hold_s` is None."""

    def __init__(self, target_host: str, target_port: int) -> None:
        self._target = (target_host, target_port)
        self._flowing = asyncio.Event()
        self._flowing.set()
        self.armed = False
        self.hold_s: float | None = None
        self.commits_held = 0
        self._tasks: set[asyncio.Task[None]] = set()
        self._server: asyncio.Server | None = None
        self.port = free_port()

    def arm(self, hold_s: float | None) -> None:
        """Hold the replies after the next commitTransaction (for `hold_s` seconds; None: until released)."""
        self.hold_s, self.armed = hold_s, True

    def release(self) -> None:
        self.armed = False
        self._flowing.set()

    @property
    def uri(self) -> str:
        return f"mongodb://127.0.0.1:{self.port}/?directConnection=true"

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", self.port)

    async def stop(self) -> None:
        self.release()
        if self._server is not None:
            self._server.close()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    async def _serve(self, client_reader: asyncio.StreamReader, client_writer: asyncio.StreamWriter) -> None:
        server_reader, server_writer = await asyncio.open_connection(*self._target)
        pumps = [
            asyncio.create_task(self._pump(client_reader, server_writer, from_client=True)),
            asyncio.create_task(self._pump(server_reader, client_writer, from_client=False)),
        ]
        self._tasks.update(pumps)
        try:
            await asyncio.wait(pumps, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for pump in pumps:
                pump.cancel()
                self._tasks.discard(pump)
            for writer in (client_writer, server_writer):
                writer.close()

    async def _pump(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, *, from_client: bool) -> None:
        while data := await reader.read(65536):
            if from_client and self.armed and _COMMIT in data:
                self._hold()
            if not from_client:
                await self._flowing.wait()
            writer.write(data)
            await writer.drain()

    def _hold(self) -> None:
        self.armed = False
        self.commits_held += 1
        self._flowing.clear()
        if self.hold_s is not None:
            asyncio.get_running_loop().call_later(self.hold_s, self._flowing.set)


@contextlib.asynccontextmanager
async def commit_reply_hold(mongo_uri: str) -> AsyncIterator[CommitReplyHold]:
    """A CommitReplyHold in front of the mongod of `mongo_uri` (its first host)."""
    parsed = urlparse(mongo_uri)
    proxy = CommitReplyHold(parsed.hostname or "127.0.0.1", parsed.port or 27017)
    await proxy.start()
    try:
        yield proxy
    finally:
        await proxy.stop()
