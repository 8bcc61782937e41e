"""The processing path of one process: relays, projection workers, process managers, status.

Built over a process's ``Parts``, so it opens only what is asked of it: ``relays`` opens the
event store's logs, the checkpoint stores and the queue; ``worker`` the queue and the read
database (creating its tables); the managers the write side too. ``aq process`` runs relays and
workers together (the embedded shape, or one box); ``aq relay`` and ``aq worker --partitions …``
run them as separate processes around NATS JetStream.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from typing import Any

from adventure_quest.app.game import Game
from adventure_quest.bootstrap.parts import Parts
from adventure_quest.config import Settings
from adventure_quest.domain.world import World
from adventure_quest.messaging.ports import MessageQueue
from adventure_quest.processing.achievement_manager import AchievementsManager
from adventure_quest.processing.groups import GROUP, HANDOVERS, MANAGERS, RESPAWNS
from adventure_quest.processing.handover_manager import HandoverManager
from adventure_quest.processing.leases import Lease
from adventure_quest.processing.projection_worker import ProjectionWorker
from adventure_quest.processing.relay import Relay
from adventure_quest.processing.respawn_manager import RespawnManager
from adventure_quest.processing.status import read_status
from adventure_quest.processing.world_clock import WorldClock
from adventure_quest.projections.dead_letter_admin import DeadLetterAdmin
from adventure_quest.projections.ports import ReadDatabase
from adventure_quest.projections.runner import ProjectionRunner
from adventure_quest.store.ports import EventStore


class Processing:
    """Relays, workers, managers, the world clock and lag status over one process's parts."""

    def __init__(self, parts: Parts, runner: ProjectionRunner) -> None:
        self.parts = parts
        self.settings: Settings = parts.settings
        self.runner = runner

    @classmethod
    @asynccontextmanager
    async def open(
        cls, settings: Settings, world: World | None = None
    ) -> AsyncIterator[Processing]:
        """The whole processing path (tables created); everything opened is closed after."""
        async with Parts(settings, world) as parts:
            yield cls(parts, await parts.runner(create_tables=True))

    @property
    def store(self) -> EventStore:
        return self.parts.event_store()

    @property
    def queue(self) -> MessageQueue:
        return self.parts.queue()

    @property
    def db(self) -> ReadDatabase:
        return self.parts.read_database()

    @property
    def game(self) -> Game:
        """The managers command the game through the same write side as the API."""
        return self.parts.write_side().game

    @property
    def relays(self) -> list[Relay]:
        return self.parts.relays()

    def worker(self, partitions: Sequence[int]) -> ProjectionWorker:
        return ProjectionWorker(self.runner, self.queue, partitions, group=GROUP)

    def handovers(self, partitions: Sequence[int]) -> HandoverManager:
        """The process manager that finishes hand-overs a crash cut off (group ``handovers``)."""
        return HandoverManager(self.game, self.queue, partitions, group=HANDOVERS)

    def respawns(self, partitions: Sequence[int]) -> RespawnManager:
        """The process manager that restocks rooms on every world-clock tick."""
        return RespawnManager(self.game, self.queue, partitions, group=RESPAWNS)

    def clock(self) -> WorldClock:
        """The world clock (safe to run in several processes: each tick is appended once)."""
        return WorldClock(self.game, period_s=self.settings.tick_seconds)

    def achievements(self, partitions: Sequence[int]) -> AchievementsManager:
        """The process manager that unlocks achievements (consumer group ``achievements``)."""
        return AchievementsManager(self.game, self.queue, partitions, group=MANAGERS)

    def partition_jobs(self, lease: Lease) -> list[Any]:
        """What runs for one leased partition: its projection worker (under the lease's fencing
        token) and its process managers."""
        partition = lease.partition
        worker = ProjectionWorker(
            self.runner,
            self.queue,
            [partition],
            group=GROUP,
            tokens={partition: lease.token},
            leased=lease.fresh,
        )
        return [
            worker.run,
            self.achievements([partition]).run,
            self.handovers([partition]).run,
            self.respawns([partition]).run,
        ]

    async def status(self, interval_s: float = 1.0) -> dict[str, Any]:
        """Relay and projection lag (events, seconds, state) and dead letters, looked at twice."""
        letters = DeadLetterAdmin.of(self.runner).count
        return await read_status(
            self.relays, self.queue, letters, group=GROUP, interval_s=interval_s
        )
