"""The world clock: a stream of ticks, each one appended exactly once, none skipped.

Ticks are numbered; tick n is due at ``start + n * period``. Whoever runs the clock appends the
ticks that are due at the version it loaded, so two clocks racing append each tick once (the
loser's append conflicts and it reloads), and a clock that was down appends every tick it
missed when it comes back, in order.
"""

from __future__ import annotations

import msgspec

from adventure_quest.domain.events import Event, WorldTicked

CLOCK_STREAM = "world-clock"
#: A clock that was down for long catches up at most this many ticks per decision.
MAX_CATCH_UP = 100


class ClockState(msgspec.Struct, frozen=True):
    """The last tick and when it was due."""

    tick: int = 0
    at: float = 0.0


def evolve(state: ClockState, event: Event) -> ClockState:
    if isinstance(event, WorldTicked):
        return ClockState(event.tick, event.at)
    return state


def due(state: ClockState, now: float, period: float) -> list[Event]:
    """The ticks due at ``now`` that were not appended yet (the first one is due at once)."""
    if state.tick == 0:
        return [WorldTicked(1, now)]
    ticks: list[Event] = []
    at = state.at + period
    while at <= now and len(ticks) < MAX_CATCH_UP:
        ticks.append(WorldTicked(state.tick + len(ticks) + 1, at))
        at += period
    return ticks
