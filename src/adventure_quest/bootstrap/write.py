"""The write side wired: stores in, the repository and the game's command handlers out.

Opened through ``Parts.write_side()`` (bootstrap/parts.py), which owns the stores.
"""

from __future__ import annotations

from adventure_quest import tracing
from adventure_quest.app.aggregates import event_codec
from adventure_quest.app.game import Game
from adventure_quest.app.history import History
from adventure_quest.app.repository import Repository
from adventure_quest.config import Settings
from adventure_quest.domain.world import World
from adventure_quest.store.ports import EventStore, SnapshotStore
from adventure_quest.store.uuid7 import uuid7


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
        # Traced, a request chooses its command's id (the trace's id) before the command runs.
        new_id = uuid7 if tracing.TRACER is None else tracing.command_id
        self.game = Game(self.repository, world, new_id=new_id)
        self.history = History(self.repository)
