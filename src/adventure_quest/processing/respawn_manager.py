"""The respawn process manager: on every world-clock tick, each room is restocked once.

Rooms remember the last tick that restocked them (domain/room.py), so a tick delivered twice
restocks nothing the second time.
"""

from __future__ import annotations

from adventure_quest import tracing
from adventure_quest.domain import room
from adventure_quest.domain.events import Event, WorldTicked
from adventure_quest.processing.process_manager import ProcessManager
from adventure_quest.store.envelope import Metadata, RecordedEvent


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
        restock = self._restock(tick, metadata)
        if tracing.TRACER is not None:
            restock = tracing.follow_up(
                "restock rooms",
                recorded,
                restock,
                correlation_id=metadata.correlation_id,
                causation_id=metadata.causation_id,
                group=self.group,
            )
        appended = await restock
        self.restocked += len(appended)
        self.checked += 1
        return appended

    async def _restock(self, tick: WorldTicked, metadata: Metadata) -> list[Event]:
        appended: list[Event] = []
        for key in self.game.world.rooms:
            saved = await self.game.repository.update(
                self.game.rooms,
                self.game.rooms.stream_id(key),
                lambda state: room.restock(state, tick.tick, self.game.world),
                metadata,
            )
            appended += saved.events
        return appended
