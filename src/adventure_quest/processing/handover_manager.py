"""The hand-over process manager: finishes every hand-over a crash left half done.

A take, drop or fight writes its first event on one stream and then finishes on the other
(app/handovers.py). If the process dies in between, the first event is in the log and reaches
this manager through the queue; it runs the same idempotent finishing step, keyed by the
hand-over id (also the causation id of every event of the hand-over). Finishing a hand-over
that was already finished appends nothing, so the manager can see every hand-over, not only the
broken ones.
"""

from __future__ import annotations

from adventure_quest.domain.events import (
    Event,
    ItemDropped,
    ItemPickedUp,
    MonsterDefeated,
    MonsterHit,
)
from adventure_quest.processing.process_manager import ProcessManager
from adventure_quest.store.envelope import RecordedEvent, stream_key_of

_STARTS = {"ItemPickedUp", "ItemDropped", "MonsterHit", "MonsterDefeated"}


class HandoverManager(ProcessManager):
    """Finishes takes, drops and fights, as consumer group ``handovers``."""

    default_group = "handovers"
    #: Events this manager appended.
    finished = 0

    async def handle(self, recorded: RecordedEvent) -> list[Event]:
        if recorded.event_type not in _STARTS:
            return []
        event = self.game.repository.codec.decode(recorded)
        self.checked += 1
        appended: list[Event] = []
        match event:
            case ItemPickedUp():
                room = stream_key_of(recorded.stream_id)
                appended = (await self.game.handovers.finish_take(event, room)).events
            case ItemDropped():
                player_id = stream_key_of(recorded.stream_id)
                appended = (await self.game.handovers.finish_drop(event, player_id)).events
            case MonsterHit(health_left=left) if left > 0:
                appended = (await self.game.handovers.finish_fight(event, None)).events
            case MonsterDefeated():
                blow = MonsterHit(
                    event.monster_id,
                    event.monster_key,
                    event.player_id,
                    0,
                    0,
                    0,
                    event.handover_id,
                )
                appended = (await self.game.handovers.finish_fight(blow, event)).events
        self.finished += bool(appended)
        return appended
