"""The room view: everything a player sees in a room, and who is there.

One row per room for what the room's own stream owns (items and monsters), and one row per
character saying where it is and its state (``room_view_players``, indexed by room): a room's
players are a page of those, read in key order, and its count is the index's. A character's
events change its own row only, so the rows every unit writes follow the queue's partitions
(aggregate ids): two workers never wait for each other's locks, and a crowded room costs an
arrival one row, not a rewrite of everyone present. Each part is the domain's own fold of its
stream, so the rows are the same whatever order the streams' events interleave in: rebuilding
gives what live processing gave.

A character's change makes the cached answers of the rooms it left and entered out of date
although no room row was written: the projection ``touch``es those rooms' rows.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import msgspec

from adventure_quest.domain import player, room
from adventure_quest.domain.events import Event
from adventure_quest.domain.player import PlayerState
from adventure_quest.domain.room import RoomState
from adventure_quest.domain.world import World
from adventure_quest.projections.model import (
    Decoded,
    Memo,
    ReadModel,
    Row,
    RowKey,
    Rows,
    Table,
    by_stream,
)
from adventure_quest.projections.players import player_key, state_of, trail
from adventure_quest.store.envelope import RecordedEvent, stream_key_of

ROOM_VIEW = Table(
    "room_view",
    "room",
    {
        "name": "text",
        "description": "text",
        "exits": "json",
        "items": "json",
        "monsters": "json",
        "state": "json",
    },
    structs={"state": RoomState},
)
#: Where each character is, and its state: what the room view needs to move them between rooms.
ROOM_VIEW_PLAYERS = Table(
    "room_view_players",
    "player_id",
    {"room": "text", "state": "json"},
    indexes=(("room", "player_id"),),
    structs={"state": PlayerState},
    read_back=("state",),
)


class RoomView(ReadModel):
    """Description, exits, items on the floor, monsters; where every character is."""

    name = "room_view"
    tables = (ROOM_VIEW, ROOM_VIEW_PLAYERS)

    def __init__(self, world: World) -> None:
        self.world = world

    def prefetch(self, event: Event, recorded: RecordedEvent) -> Iterable[RowKey]:
        if recorded.stream_type == "room":
            return ((ROOM_VIEW.name, stream_key_of(recorded.stream_id)),)
        if recorded.stream_type != "player":
            return ()
        return ((ROOM_VIEW_PLAYERS.name, player_key(recorded)),)

    async def apply(self, event: Event, recorded: RecordedEvent, rows: Rows) -> None:
        if recorded.stream_type == "room":
            key = stream_key_of(recorded.stream_id)
            view = self._view(key, await rows.get(ROOM_VIEW.name, key))
            state = room.evolve(room_state_of(view), event)
            rows.put(ROOM_VIEW.name, key, {**view, **self._contents(state)})
        elif recorded.stream_type == "player":
            await self._apply_player(event, recorded, rows)

    async def apply_all(self, todo: Sequence[Decoded], rows: Rows, memo: Memo) -> None:
        """Each character's events folded into its last state; every room it stood in touched."""
        helpers = ROOM_VIEW_PLAYERS.name
        streams = by_stream(todo, memo, "player")
        keys = {stream: stream_key_of(stream) for stream in streams}
        await rows.prefetch([(helpers, key) for key in keys.values()])
        room_events = [decoded for decoded in todo if decoded[1].stream_type == "room"]
        await rows.prefetch(
            [(ROOM_VIEW.name, stream_key_of(recorded.stream_id)) for _, recorded in room_events]
        )
        for event, recorded in room_events:
            await self.apply(event, recorded, rows)
        for stream, events in streams.items():
            key = keys[stream]
            each = trail(memo, stream, events, state_of(rows.prefetched(helpers, key)))
            for room_key in each.rooms:
                rows.touch(ROOM_VIEW.name, room_key)
            rows.put(helpers, key, {"room": each.end.room, "state": each.end})

    async def _apply_player(self, event: Event, recorded: RecordedEvent, rows: Rows) -> None:
        key = player_key(recorded)
        before = state_of(rows.prefetched(ROOM_VIEW_PLAYERS.name, key))
        after = player.evolve(before, event)
        for room_key in {before.room, after.room}:
            if room_key:
                rows.touch(ROOM_VIEW.name, room_key)
        rows.put(ROOM_VIEW_PLAYERS.name, key, {"room": after.room, "state": after})

    def _view(self, key: str, view: Row | None) -> Row:
        """The room's view: as stored, or as the world lays the room out."""
        if view is not None:
            return view
        definition = self.world.rooms[key]
        return {
            "name": definition.name,
            "description": definition.description,
            "exits": dict(definition.exits),
            **self._contents(room.initial_state(self.world, key)),
        }

    def _contents(self, state: RoomState) -> Row:
        return {
            "items": [self.world.items[i.item_key].name for i in state.items],
            "monsters": [
                {
                    "monster": m.monster_key,
                    "name": self.world.monsters[m.monster_key].name,
                    "health": m.health,
                }
                for m in state.monsters
            ],
            "state": state,  # kept as the struct within a batch, like a character's state
        }


def room_state_of(view: Row) -> RoomState:
    """The room's own state a view keeps."""
    state = view["state"]
    return state if isinstance(state, RoomState) else msgspec.convert(state, RoomState)


def summary(state: PlayerState) -> dict[str, Any]:
    """A character as others in the room see it."""
    return {
        "name": state.name,
        "level": state.level,
        "health": state.health,
        "max_health": state.max_health,
        "alive": state.alive,
        "inventory": [item.item_key for item in state.inventory],
    }
