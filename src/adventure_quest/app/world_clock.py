"""The world clock and the respawns it drives.

``WorldClock`` appends the ticks that are due to the ``world-clock`` stream (domain/clock.py):
several clocks may run, each tick is appended once (optimistic concurrency), and ticks missed
while every clock was down are appended on restart. ``RespawnManager`` is a process manager:
for every tick it restocks each room once (rooms remember the last tick that restocked them).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable

from adventure_quest.app.aggregates import AggregateType, clock_type
from adventure_quest.app.game import Game
from adventure_quest.app.process_manager import TRANSIENT, ProcessManager
from adventure_quest.domain import clock, room
from adventure_quest.domain.clock import CLOCK_STREAM, ClockState
from adventure_quest.domain.events import Event, WorldTicked
from adventure_quest.store.envelope import Metadata, RecordedEvent

log = logging.getLogger(__name__)

#: Seconds between ticks unless configured.
DEFAULT_PERIOD_S = 60.0


class WorldClock:
    """Appends due ticks; ``now`` is injectable so tests can move time."""

    def __init__(
        self,
        game: Game,
        *,
        period_s: float = DEFAULT_PERIOD_S,
        now: Callable[[], float] = time.time,
    ) -> None:
        self.game = game
        self.period_s = period_s
        self.now = now
        self.kind: AggregateType[ClockState] = clock_type()
        self.appended = 0

    async def tick(self) -> list[Event]:
        """Append whatever ticks are due now; what this call appended."""
        now = self.now()
        saved = await self.game.repository.update(
            self.kind,
            CLOCK_STREAM,
            lambda state: clock.due(state, now, self.period_s),
            Metadata(actor="world-clock"),
        )
        self.appended += len(saved.events)
        return saved.events

    async def run(self, stop: asyncio.Event) -> None:
        """Tick on schedule until ``stop`` is set."""
        while not stop.is_set():
            try:
                await self.tick()
            except TRANSIENT as error:
                log.warning("world clock: %s; trying again", error)
            state = (await self.game.repository.load(self.kind, CLOCK_STREAM)).state
            wait = max(state.at + self.period_s - self.now(), 0.05)
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(wait):
                    await stop.wait()


class RespawnManager(ProcessManager):
    """On every tick, restocks each room of the world once (consumer group ``respawns``)."""

    default_group = "respawns"
    #: Events this manager appended.
    restocked = 0

    async def handle(self, recorded: RecordedEvent) -> list[Event]:
        if recorded.event_type != "WorldTicked":
            return []
        tick = self.game.repository.codec.decode(recorded)
        if not isinstance(tick, WorldTicked):
            return []
        metadata = Metadata(
            correlation_id=recorded.metadata.correlation_id or recorded.event_id,
            causation_id=recorded.event_id,
            actor="world-clock",
        )
        appended: list[Event] = []
        for key in self.game.world.rooms:
            saved = await self.game.repository.update(
                self.game.rooms,
                self.game.rooms.stream_id(key),
                lambda state: room.restock(state, tick.tick, self.game.world),
                metadata,
            )
            appended += saved.events
        self.restocked += len(appended)
        self.checked += 1
        return appended
