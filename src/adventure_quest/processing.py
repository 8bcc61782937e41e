"""The processing path wired from settings: relays, the queue, projection workers, status.

``aq process`` runs relays and workers together (the embedded shape, or one box); ``aq relay``
and ``aq worker --partitions …`` run them as separate processes around NATS JetStream.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from typing import Any

import msgspec

from adventure_quest.app.achievements import AchievementsManager
from adventure_quest.app.aggregates import event_codec
from adventure_quest.app.game import Game
from adventure_quest.app.handover_manager import HandoverManager
from adventure_quest.app.world_clock import RespawnManager, WorldClock
from adventure_quest.bootstrap import Services
from adventure_quest.config import Settings
from adventure_quest.domain.world import World
from adventure_quest.messaging.ports import MessageQueue
from adventure_quest.messaging.relay import Relay
from adventure_quest.messaging.urls import open_queue
from adventure_quest.projections.achievements import Achievements
from adventure_quest.projections.model import Projection
from adventure_quest.projections.players import Leaderboard, PlayerDetails
from adventure_quest.projections.ports import ReadDatabase
from adventure_quest.projections.rooms import RoomView
from adventure_quest.projections.runner import ProjectionRunner, ProjectionWorker
from adventure_quest.projections.urls import open_read_database
from adventure_quest.projections.world import WorldStats
from adventure_quest.store.ports import CheckpointStore, EventStore, SnapshotStore
from adventure_quest.store.urls import (
    open_checkpoint_stores,
    open_event_store,
    open_snapshot_store,
)

GROUP = "projections"
MANAGERS = "achievements"
HANDOVERS = "handovers"
RESPAWNS = "respawns"
#: Behind for longer than this with no progress between two looks: "stalled".
STALL_AFTER_S = 30.0


def projections(world: World) -> list[Projection]:
    """Every read model, in the order batches are applied to them."""
    return [PlayerDetails(), Leaderboard(), RoomView(world), WorldStats(), Achievements()]


class Processing:
    """Store, queue, read database and the relays and workers over them."""

    def __init__(
        self,
        settings: Settings,
        *,
        store: EventStore,
        checkpoints: Sequence[CheckpointStore],
        queue: MessageQueue,
        db: ReadDatabase,
        world: World,
        snapshots: SnapshotStore,
    ) -> None:
        self.settings = settings
        self.store = store
        self.queue = queue
        self.db = db
        # The managers command the game through the same wiring as the write side.
        self.game: Game = Services(settings, world, store, snapshots).game
        self.runner = ProjectionRunner(
            db, projections(world), store, event_codec(), partitions=settings.partitions
        )
        self.relays = [
            Relay(log, queue, checkpoint)
            for log, checkpoint in zip(store.logs(), checkpoints, strict=True)
        ]

    @classmethod
    @asynccontextmanager
    async def open(cls, settings: Settings, world: World) -> AsyncIterator[Processing]:
        """Open everything the settings name, closing whatever was opened on the way out."""
        opened: list[Any] = []
        try:
            store = open_event_store(settings.event_store_url)
            opened.append(store)
            checkpoints = open_checkpoint_stores(settings.event_store_url)
            opened += checkpoints
            snapshots = open_snapshot_store(settings.event_store_url)
            opened.append(snapshots)
            queue = open_queue(
                settings.queue_url,
                partitions=settings.partitions,
                groups=[GROUP, MANAGERS, HANDOVERS, RESPAWNS],
            )
            opened.append(queue)
            db = open_read_database(settings.read_database_url)
            opened.append(db)
            processing = cls(
                settings,
                store=store,
                checkpoints=checkpoints,
                queue=queue,
                db=db,
                world=world,
                snapshots=snapshots,
            )
            await processing.runner.setup()
            yield processing
        finally:
            for resource in reversed(opened):
                await resource.close()

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

    async def status(self, interval_s: float = 1.0) -> dict[str, Any]:
        """Relay and projection lag (events, seconds, state) and dead letters, looked at twice."""
        first = [await relay.checkpoints.load(relay.name) for relay in self.relays]
        consumers = [self.queue.consumer(GROUP, p) for p in range(self.queue.partitions)]
        waiting_before = [await c.oldest_pending() for c in consumers]
        await asyncio.sleep(interval_s)
        relays = []
        for relay, before in zip(self.relays, first, strict=True):
            position = await relay.checkpoints.load(relay.name)
            head = await relay.source.head()
            oldest = await relay.source.read_all(position, 1)
            seconds = time.time() - oldest[0].metadata.recorded_at if oldest else 0.0
            relays.append(
                {
                    "relay": relay.name,
                    "shard": relay.source.shard,
                    "position": position,
                    "head": head,
                    "lag_events": head - position,
                    "lag_seconds": round(seconds, 3),
                    "state": lag_state(head - position, position > before, seconds),
                }
            )
        partitions: list[dict[str, Any]] = []
        for consumer, before_event in zip(consumers, waiting_before, strict=True):
            pending = await consumer.pending()
            waiting = await consumer.oldest_pending() if pending else None
            age = time.time() - waiting.metadata.recorded_at if waiting else 0.0
            moved = waiting is None or before_event is None or waiting != before_event
            partitions.append(
                {
                    "partition": consumer.partition,
                    "lag_events": pending,
                    "lag_seconds": round(age, 3),
                    "state": lag_state(pending, moved, age),
                }
            )
        states = {p["state"] for p in partitions}
        letters = await self.runner.dead_letters()
        return {
            "relays": relays,
            "projections": {
                "lag_events": sum(p["lag_events"] for p in partitions),
                "lag_seconds": max((p["lag_seconds"] for p in partitions), default=0.0),
                "state": next((s for s in ("stalled", "lagging") if s in states), "ok"),
                "partitions": partitions,
            },
            "dead_letters": len(letters),
        }


def lag_state(behind: int, progressed: bool, seconds: float) -> str:
    """``ok`` when caught up, ``lagging`` when behind but moving, ``stalled`` otherwise."""
    if behind <= 0:
        return "ok"
    if progressed or seconds < STALL_AFTER_S:
        return "lagging"
    return "stalled"


def _gauge(name: str, description: str, samples: list[tuple[str, object]]) -> list[str]:
    """One Prometheus gauge: its HELP and TYPE lines and one line per (labels, value)."""
    head = [f"# HELP {name} {description}", f"# TYPE {name} gauge"]
    return head + [f"{name}{labels} {value}" for labels, value in samples]


def prometheus(status: dict[str, Any]) -> str:
    """The status as Prometheus text exposition."""
    relays = [(f'{{shard="{r["shard"]}"}}', r) for r in status["relays"]]
    parts = [(f'{{partition="{p["partition"]}"}}', p) for p in status["projections"]["partitions"]]
    lines = _gauge(
        "aq_relay_lag_events",
        "Events in a shard's log not yet published to the queue.",
        [(labels, r["lag_events"]) for labels, r in relays],
    )
    lines += _gauge(
        "aq_relay_lag_seconds",
        "Age of the oldest event not yet published.",
        [(labels, r["lag_seconds"]) for labels, r in relays],
    )
    lines += _gauge(
        "aq_projection_lag_events",
        "Events of a partition not yet applied to the read models.",
        [(labels, p["lag_events"]) for labels, p in parts],
    )
    lines += _gauge(
        "aq_projection_lag_seconds",
        "Age of a partition's oldest event not yet applied.",
        [(labels, p["lag_seconds"]) for labels, p in parts],
    )
    lines += _gauge(
        "aq_dead_letters",
        "Events parked because a projection failed on them.",
        [("", status["dead_letters"])],
    )
    return "\n".join(lines) + "\n"


def as_json(status: dict[str, Any]) -> str:
    return msgspec.json.encode(status).decode()
