"""The room view: everything a player sees in a room, players and their inventories included.

One row per room, read with one primary-key lookup. The room's own stream owns its items and
monsters; each character's stream owns that character's entry. Each part is the domain's own
fold of its stream, so the row is the same whatever order the streams' events interleave in:
rebuilding gives what live processing gave.
"""

from __future__ import annotations

import functools
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
        "players": "json",
        "state": "json",
    },
    structs={"state": RoomState},
)
#: Where each character is, and its state: what the room view needs to move them between rooms.
ROOM_VIEW_PLAYERS = Table(
    "room_view_players",
    "player_id",
    {"room": "text", "state": "json"},
    structs={"state": PlayerState},
    read_back=("state",),
)


class RoomView(ReadModel):
    """Description, exits, items on the floor, monsters and every player present."""

    name = "room_view"
    tables = (ROOM_VIEW, ROOM_VIEW_PLAYERS)

    def __init__(self, world: World) -> None:
        self.world = world

    def prefetch(self, event: Event, recorded: RecordedEvent) -> Iterable[RowKey]:
        if recorded.stream_type == "room":
            return ((ROOM_VIEW.name, stream_key_of(recorded.stream_id)),)
        if recorded.stream_type != "player":
            return ()
        wanted = [(ROOM_VIEW_PLAYERS.name, player_key(recorded))]
        for name in ("room", "from_room", "to_room"):
            value = getattr(event, name, None)
            if isinstance(value, str):
                wanted.append((ROOM_VIEW.name, value))
        return wanted

    async def apply(self, event: Event, recorded: RecordedEvent, rows: Rows) -> None:
        if recorded.stream_type == "room":
            key = stream_key_of(recorded.stream_id)
            view = self._view(key, await rows.get(ROOM_VIEW.name, key))
            state = room.evolve(room_state_of(view), event)
            rows.put(ROOM_VIEW.name, key, {**view, **self._contents(state)})
        elif recorded.stream_type == "player":
            await self._apply_player(event, recorded, rows)

    async def apply_all(self, todo: Sequence[Decoded], rows: Rows, memo: Memo) -> None:
        """Each character's events folded: it leaves every room it stood in but the last.

        Applied one by one, a character's events take its entry out of each room it leaves
        and put it in each room it enters (its last state's entry in the last one), touching
        the view of every room it stood in: the same as this, with one fold per character.
        """
        helpers, views = ROOM_VIEW_PLAYERS.name, ROOM_VIEW.name
        streams = by_stream(todo, memo, "player")
        keys = {stream: stream_key_of(stream) for stream in streams}
        await rows.prefetch([(helpers, key) for key in keys.values()])
        trails = {
            keys[stream]: trail(
                memo, stream, events, state_of(rows.prefetched(helpers, keys[stream]))
            )
            for stream, events in streams.items()
        }
        room_events = [decoded for decoded in todo if decoded[1].stream_type == "room"]
        rooms = {room_key for each in trails.values() for room_key in each.rooms}
        rooms.update(stream_key_of(recorded.stream_id) for _, recorded in room_events)
        await rows.prefetch([(views, room_key) for room_key in rooms])
        for event, recorded in room_events:
            await self.apply(event, recorded, rows)
        for key, each in trails.items():
            end = each.end
            for room_key in each.rooms:
                if room_key != end.room:
                    self._seat(rows, room_key, rows.prefetched(views, room_key), key, None)
            if end.room:
                self._seat(rows, end.room, rows.prefetched(views, end.room), key, summary(end))
            rows.put(helpers, key, {"room": end.room, "state": end})

    async def _apply_player(self, event: Event, recorded: RecordedEvent, rows: Rows) -> None:
        key = player_key(recorded)
        helper = rows.prefetched(ROOM_VIEW_PLAYERS.name, key)
        before = state_of(helper)
        after = player.evolve(before, event)
        if before.room and before.room != after.room:
            view = await rows.get(ROOM_VIEW.name, before.room)
            self._seat(rows, before.room, view, key, None)
        if after.room:
            view = await rows.get(ROOM_VIEW.name, after.room)
            self._seat(rows, after.room, view, key, summary(after))
        rows.put(ROOM_VIEW_PLAYERS.name, key, {"room": after.room, "state": after})

    def _seat(
        self, rows: Rows, room_key: str, view: Row | None, key: str, entry: Row | None
    ) -> None:
        """Set (None: remove) a character's entry among the room's players, in place.

        A crowded room's view holds hundreds of entries: copying them for each event that
        changes one took about a seventh of a worker's time (250 players in a room). Players
        are a JSON object keyed by id: equal whatever order they arrived in (so an undone
        removal may put the entry back last).
        """
        view = self._view(room_key, view)
        players: dict[str, Any] = view["players"]
        undo = None
        if rows.journaled:
            undo = functools.partial(_restore, players, key, key in players, players.get(key))
        if entry is None:
            players.pop(key, None)
        else:
            players[key] = entry
        rows.put(ROOM_VIEW.name, room_key, view, undo)

    def _view(self, key: str, view: Row | None) -> Row:
        """The room's view: as stored, or as the world lays the room out."""
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
            "state": state,  # kept as the struct within a batch, like a character's state
        }


def room_state_of(view: Row) -> RoomState:
    """The room's own state a view keeps."""
    state = view["state"]
    return state if isinstance(state, RoomState) else msgspec.convert(state, RoomState)


def _restore(players: dict[str, Any], key: str, present: bool, entry: Any) -> None:
    if present:
        players[key] = entry
    else:
        players.pop(key, None)


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
