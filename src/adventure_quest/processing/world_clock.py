"""The world clock: appends the ticks that are due to the ``world-clock`` stream.

Several clocks may run (domain/clock.py): each tick is appended once (optimistic concurrency),
and ticks missed while every clock was down are appended on restart. The respawns each tick
drives are processing/respawn_manager.py.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable

from adventure_quest.app.aggregates import AggregateType, clock_type
from adventure_quest.app.game import Game
from adventure_quest.domain import clock
from adventure_quest.domain.clock import CLOCK_STREAM, ClockState
from adventure_quest.domain.events import Event
from adventure_quest.processing.process_manager import TRANSIENT
from adventure_quest.store.envelope import Metadata
from adventure_quest.store.retry import Backoff

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
        self.backoff = Backoff("world clock", logger=log)

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
                state = (await self.game.repository.load(self.kind, CLOCK_STREAM)).state
            except TRANSIENT as error:
                await self.backoff.wait(error, stop)
                continue
            self.backoff.succeeded()
            wait = max(state.at + self.period_s - self.now(), 0.05)
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(wait):
                    await stop.wait()
