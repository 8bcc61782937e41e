"""The room view: everything a player sees in a room, players and their inventories included.

One row per room, read with one primary-key lookup. The room's own stream owns its items and
monsters; each character's stream owns that character's entry. Each part is the domain's own
fold of its stream, so the row is the same whatever order the streams' events interleave in:
rebuilding gives what live processing gave.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import msgspec

from adventure_quest.domain import player, room
from adventure_quest.domain.events import Event
from adventure_quest.domain.player import PlayerState
from adventure_quest.domain.room import RoomState
from adventure_quest.domain.world import World
from adventure_quest.projections.model import Row, RowKey, Rows, Table
from adventure_quest.projections.players import player_key, state_of
from adventure_quest.store.envelope import RecordedEvent

ROOM_VIEW = Table(
    "room_view",
    "room",
    {
        "name": "text",
        "description": "text",
        "exits": "json",
        "items": "json",
        "monsters": "json",
        "players": "json",
        "state": "json",
    },
)
#: Where each character is, and its state: what the room view needs to move them between rooms.
ROOM_VIEW_PLAYERS = Table("room_view_players", "player_id", {"room": "text", "state": "json"})


class RoomView:
    """Description, exits, items on the floor, monsters and every player present."""

    name = "room_view"
    tables = (ROOM_VIEW, ROOM_VIEW_PLAYERS)

    def __init__(self, world: World) -> None:
        self.world = world

    def prefetch(self, event: Event, recorded: RecordedEvent) -> Iterable[RowKey]:
        if recorded.stream_type == "room":
            yield ROOM_VIEW.name, recorded.stream_id.removeprefix("room-")
        elif recorded.stream_type == "player":
            yield ROOM_VIEW_PLAYERS.name, player_key(recorded)
            for name in ("room", "from_room", "to_room"):
                value = getattr(event, name, None)
                if isinstance(value, str):
                    yield ROOM_VIEW.name, value

    async def apply(self, event: Event, recorded: RecordedEvent, rows: Rows) -> None:
        if recorded.stream_type == "room":
            key = recorded.stream_id.removeprefix("room-")
            view = await self._room(rows, key)
            state = room.evolve(msgspec.convert(view["state"], RoomState), event)
            rows.put(ROOM_VIEW.name, key, {**view, **self._contents(state)})
        elif recorded.stream_type == "player":
            await self._apply_player(event, recorded, rows)

    async def _apply_player(self, event: Event, recorded: RecordedEvent, rows: Rows) -> None:
        key = player_key(recorded)
        helper = await rows.get(ROOM_VIEW_PLAYERS.name, key)
        before = state_of(helper)
        after = player.evolve(before, event)
        # Players are a JSON object keyed by id: equal whatever order they arrived in.
        if before.room and before.room != after.room:
            view = await self._room(rows, before.room)
            players = dict(view["players"])
            players.pop(key, None)
            rows.put(ROOM_VIEW.name, before.room, {**view, "players": players})
        if after.room:
            view = await self._room(rows, after.room)
            players = dict(view["players"])
            players[key] = summary(after)
            rows.put(ROOM_VIEW.name, after.room, {**view, "players": players})
        rows.put(
            ROOM_VIEW_PLAYERS.name, key, {"room": after.room, "state": msgspec.to_builtins(after)}
        )

    async def _room(self, rows: Rows, key: str) -> Row:
        view = await rows.get(ROOM_VIEW.name, key)
        if view is not None:
            return view
        definition = self.world.rooms[key]
        return {
            "name": definition.name,
            "description": definition.description,
            "exits": dict(definition.exits),
            "players": {},
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
            "state": msgspec.to_builtins(state),
        }


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
