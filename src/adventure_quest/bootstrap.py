"""The composition root: settings in, wired services out. Nothing is wired at import time."""

from __future__ import annotations

from types import TracebackType

from adventure_quest.app.aggregates import event_codec
from adventure_quest.app.game import Game
from adventure_quest.app.repository import Repository
from adventure_quest.app.worlds import load_world
from adventure_quest.config import Settings
from adventure_quest.store.ports import EventStore, SnapshotStore
from adventure_quest.store.urls import open_event_store, open_snapshot_store


class Services:
    """The wired write side: stores, repository and the game's command handlers."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        url = settings.event_store_url
        self.world = load_world(settings.world_path)
        self.store: EventStore = open_event_store(url, stream_cache_size=settings.stream_cache_size)
        self.snapshots: SnapshotStore = open_snapshot_store(url)
        self.codec = event_codec()
        self.repository = Repository(
            self.store,
            self.snapshots,
            self.codec,
            snapshot_every=settings.snapshot_every,
            cache_size=settings.aggregate_cache_size,
            max_attempts=settings.max_attempts,
        )
        self.game = Game(self.repository, self.world)

    async def close(self) -> None:
        await self.store.close()
        await self.snapshots.close()

    async def __aenter__(self) -> Services:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()
