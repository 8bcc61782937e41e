"""Finishing cross-stream hand-overs, idempotently: the inline path and crash recovery share these.

A hand-over starts with one event on the deciding stream (``ItemPickedUp`` on the room,
``ItemDropped`` on the player, ``MonsterHit`` on the room) and finishes with one event on the
other stream carrying the same ``handover_id``. The receiving aggregate remembers recent hand-over
ids, so running a finish twice (after a crash, or by the recovery process) changes nothing.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from adventure_quest.app.repository import Saved
from adventure_quest.domain import player, room
from adventure_quest.domain.events import (
    Event,
    ItemDropped,
    ItemPickedUp,
    MonsterDefeated,
    MonsterHit,
)
from adventure_quest.domain.player import PlayerState
from adventure_quest.store.envelope import Metadata

if TYPE_CHECKING:
    from adventure_quest.app.game import Game


def _metadata(actor: str, handover_id: str) -> Metadata:
    return Metadata(correlation_id=handover_id, causation_id=handover_id, actor=actor)


async def finish_take(game: Game, picked: ItemPickedUp, room_key: str) -> Saved[PlayerState]:
    """The player receives the item; if it no longer fits, the room gets it back."""
    handover_id = picked.handover_id
    received = await game.repository.update(
        game.players,
        game.players.stream_id(picked.player_id),
        lambda s: player.receive_item(s, picked.item, room_key, handover_id, game.world),
        _metadata(picked.player_id, handover_id),
    )
    # Checked on the state, not on what this call appended: a recovery that crashed after the
    # refusal but before the return must still return the item (the room's side is idempotent).
    if handover_id in received.state.refused_handovers:
        returned = await game.repository.update(
            game.rooms,
            game.rooms.stream_id(room_key),
            lambda s: room.receive_item(s, picked.item, picked.player_id, handover_id),
            _metadata(picked.player_id, handover_id),
        )
        return Saved(received.state, [*received.events, *returned.events], received.result)
    return received


async def finish_drop(game: Game, dropped: ItemDropped, player_id: str) -> list[Event]:
    """The room receives a dropped item, once."""
    landed = await game.repository.update(
        game.rooms,
        game.rooms.stream_id(dropped.room),
        lambda s: room.receive_item(s, dropped.item, player_id, dropped.handover_id),
        _metadata(player_id, dropped.handover_id),
    )
    return landed.events


async def finish_fight(
    game: Game, hit: MonsterHit, defeated: MonsterDefeated | None
) -> Saved[PlayerState]:
    """The player takes the fight's outcome: the monster's blow, or its XP."""
    return await game.repository.update(
        game.players,
        game.players.stream_id(hit.player_id),
        lambda s: player.take_fight_outcome(
            s,
            counter_damage=hit.counter_damage,
            xp=defeated.xp if defeated else 0,
            monster_key=hit.monster_key,
            handover_id=hit.handover_id,
            world=game.world,
        ),
        _metadata(hit.player_id, hit.handover_id),
    )
