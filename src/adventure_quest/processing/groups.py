"""The queue's consumer groups: one per kind of consumer, each with its own acknowledgements."""

from __future__ import annotations

from typing import Final

#: The projection workers: they apply events to the read models.
GROUP: Final = "projections"
#: The achievements process manager.
MANAGERS: Final = "achievements"
#: The hand-over process manager (finishes hand-overs a crash cut off).
HANDOVERS: Final = "handovers"
#: The respawn process manager (restocks rooms on world-clock ticks).
RESPAWNS: Final = "respawns"
#: Every group, in the order the queue is told about them.
ALL_GROUPS: Final = (GROUP, MANAGERS, HANDOVERS, RESPAWNS)
