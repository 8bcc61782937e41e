"""Finishing cross-stream hand-overs exactly once: the inline path and crash recovery share these.

A hand-over starts with one event on the deciding stream (``ItemPickedUp`` on the room,
``ItemDropped`` on the player, ``MonsterHit`` on the room) and finishes with the receiving
stream's answer, carrying the same ``handover_id``. Every finish is an update ``once`` the
hand-over id: its events' ids are derived from the hand-over and the receiving stream, so however
often and however late a finish runs (inline, after a crash, by the process manager behind a
backlog of any size), the store records the answer once (docs/handover.md). The receiving
aggregate's memory of its recent hand-overs only saves the round trip for the usual repeat.
"""

from __future__ import annotations

from adventure_quest.app.aggregates import AggregateType
from adventure_quest.app.repository import Repository, Saved
from adventure_quest.domain import player, room
from adventure_quest.domain.events import (
    HandoverSettled,
    ItemDropped,
    ItemPickedUp,
    MonsterDefeated,
    MonsterHit,
)
from adventure_quest.domain.player import PlayerState
from adventure_quest.domain.room import RoomState
from adventure_quest.domain.world import World
from adventure_quest.store.envelope import Metadata


def _metadata(actor: str, handover_id: str) -> Metadata:
    return Metadata(correlation_id=handover_id, causation_id=handover_id, actor=actor)


class Handovers:
    """The second halves of hand-overs: for the game's commands (inline, right after the first
    half) and for the hand-over manager (late, after a crash), the very same steps."""

    def __init__(
        self,
        repository: Repository,
        players: AggregateType[PlayerState],
        rooms: AggregateType[RoomState],
        world: World,
    ) -> None:
        self.repository = repository
        self.players = players
        self.rooms = rooms
        self.world = world

    async def finish_take(self, picked: ItemPickedUp, room_key: str) -> Saved[PlayerState]:
        """The player receives the item; if it no longer fits, the room gets it back."""
        handover_id = picked.handover_id
        received = await self.repository.update(
            self.players,
            self.players.stream_id(picked.player_id),
            lambda s: player.receive_item(s, picked.item, room_key, handover_id, self.world),
            _metadata(picked.player_id, handover_id),
            once=handover_id,
        )
        # Checked on what the player's stream recorded, not only on what this call appended: a
        # recovery that crashed after the refusal but before the return must still return the item
        # (the room's side is once too). A finish that appended nothing and found no repeat stopped
        # at the state's recent hand-overs, and for those ``refused_handovers`` is exact.
        answer = [*received.events, *received.repeated]
        if handover_id in received.state.refused_handovers or any(
            isinstance(event, HandoverSettled) for event in answer
        ):
            returned = await self.repository.update(
                self.rooms,
                self.rooms.stream_id(room_key),
                lambda s: room.receive_item(s, picked.item, picked.player_id, handover_id),
                _metadata(picked.player_id, handover_id),
                once=handover_id,
            )
            return Saved(received.state, [*received.events, *returned.events], received.result)
        return received

    async def finish_drop(self, dropped: ItemDropped, player_id: str) -> Saved[RoomState]:
        """The room receives a dropped item, once."""
        return await self.repository.update(
            self.rooms,
            self.rooms.stream_id(dropped.room),
            lambda s: room.receive_item(s, dropped.item, player_id, dropped.handover_id),
            _metadata(player_id, dropped.handover_id),
            once=dropped.handover_id,
        )

    async def finish_fight(
        self, hit: MonsterHit, defeated: MonsterDefeated | None
    ) -> Saved[PlayerState]:
        """The player takes the fight's outcome: the monster's blow, or its XP."""
        return await self.repository.update(
            self.players,
            self.players.stream_id(hit.player_id),
            lambda s: player.take_fight_outcome(
                s,
                counter_damage=hit.counter_damage,
                xp=defeated.xp if defeated else 0,
                monster_key=hit.monster_key,
                handover_id=hit.handover_id,
                world=self.world,
            ),
            _metadata(hit.player_id, hit.handover_id),
            once=hit.handover_id,
        )
