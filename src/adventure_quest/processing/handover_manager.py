"""The hand-over process manager: finishes every hand-over a crash left half done.

A take, drop or fight writes its first event on one stream and then finishes on the other
(app/handovers.py). If the process dies in between, the first event is in the log and reaches
this manager through the queue; it runs the same idempotent finishing step, keyed by the
hand-over id (also the causation id of every event of the hand-over). Finishing a hand-over
that was already finished appends nothing, so the manager can see every hand-over, not only the
broken ones.
"""

from __future__ import annotations

from collections.abc import Awaitable
from typing import Any

from adventure_quest import tracing
from adventure_quest.app.repository import Saved
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
        started = self._finish(event, recorded)
        if started is None:
            return []
        handover_id, finish = started
        if tracing.TRACER is not None:  # the finish's events name the hand-over as their cause
            finish = tracing.follow_up(
                "finish hand-over",
                recorded,
                finish,
                correlation_id=handover_id,
                causation_id=handover_id,
                group=self.group,
            )
        appended = (await finish).events
        self.finished += bool(appended)
        return appended

    def _finish(
        self, event: Event, recorded: RecordedEvent
    ) -> tuple[str, Awaitable[Saved[Any]]] | None:
        """The hand-over ``event`` began, and its finishing step; None when it needs none."""
        handovers = self.game.handovers
        match event:
            case ItemPickedUp():
                room = stream_key_of(recorded.stream_id)
                return event.handover_id, handovers.finish_take(event, room)
            case ItemDropped():
                player_id = stream_key_of(recorded.stream_id)
                return event.handover_id, handovers.finish_drop(event, player_id)
            case MonsterHit(health_left=left) if left > 0:
                return event.handover_id, handovers.finish_fight(event, None)
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
                return event.handover_id, handovers.finish_fight(blow, event)
        return None
