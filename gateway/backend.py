"""What the gateway needs from MongoDB, opened once per process: the embedded mongod when no URI is
configured, then the graph store connected to it."""

from __future__ import annotations

from dataclasses import dataclass, field

from gateway.embedded import EmbeddedMongo
from gateway.settings import Settings
from models import GraphStore


@dataclass
class Backend:
    store: GraphStore
    embedded: EmbeddedMongo | None = None
    _closed: bool = field(default=False, repr=False)

    @classmethod
    async def open(cls, settings: Settings) -> Backend:
        """Connect (starting the embedded mongod first if no URI is set); refuses servers without transactions."""
        embedded = None
        uri = settings.mongodb_uri
        if uri is None:
            embedded = EmbeddedMongo(settings.data_dir)
            uri = await embedded.start()
        try:
            store = await GraphStore.open(uri, settings.mongodb_db)
        except BaseException:
            if embedded is not None:
                await embedded.stop()
            raise
        return cls(store=store, embedded=embedded)

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        try:
            await self.store.close()
        finally:
            if self.embedded is not None:
                await self.embedded.stop()
