"""The composition root: settings in, wired services out. Nothing is wired at import time."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from adventure_quest.app.aggregates import event_codec
from adventure_quest.app.game import Game
from adventure_quest.app.repository import Repository
from adventure_quest.app.worlds import load_world
from adventure_quest.config import Settings
from adventure_quest.domain.world import World
from adventure_quest.store.ports import EventStore, SnapshotStore
from adventure_quest.store.urls import open_event_store, open_snapshot_store


class Services:
    """The wired write side: stores, repository and the game's command handlers."""

    def __init__(
        self, settings: Settings, world: World, store: EventStore, snapshots: SnapshotStore
    ) -> None:
        self.settings = settings
        self.world = world
        self.store = store
        self.snapshots = snapshots
        self.codec = event_codec()
        self.repository = Repository(
            store,
            snapshots,
            self.codec,
            snapshot_every=settings.snapshot_every,
            cache_size=settings.aggregate_cache_size,
            max_attempts=settings.max_attempts,
        )
        self.game = Game(self.repository, world)

    @classmethod
    @asynccontextmanager
    async def open(cls, settings: Settings) -> AsyncIterator[Services]:
        """Open every store the settings name; whatever was opened is closed on the way out."""
        world = load_world(settings.world_path)
        url = settings.event_store_url
        store = open_event_store(url, stream_cache_size=settings.stream_cache_size)
        try:
            snapshots = open_snapshot_store(url)
        except BaseException:
            await store.close()
            raise
        try:
            yield cls(settings, world, store, snapshots)
        finally:
            await store.close()
            await snapshots.close()
