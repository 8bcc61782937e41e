"""Read models about characters: their details, and the leaderboard."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import NamedTuple

import msgspec

from adventure_quest.domain import player
from adventure_quest.domain.events import Event, LevelledUp, PlayerCreated, XpGained
from adventure_quest.domain.player import PlayerState
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
from adventure_quest.store.envelope import RecordedEvent, stream_key_of

PLAYER_DETAILS = Table(
    "player_details",
    "player_id",
    {
        "name": "text",
        "level": "integer",
        "xp": "integer",
        "health": "integer",
        "max_health": "integer",
        "room": "text",
        "alive": "integer",
        "inventory": "json",
        "state": "json",
    },
    indexes=(("name",),),
    structs={"state": PlayerState},
    read_back=("state",),
)
LEADERBOARD = Table(
    "leaderboard",
    "player_id",
    {"name": "text", "level": "integer", "xp": "integer"},
    indexes=(("level", "xp"),),
)


def player_key(recorded: RecordedEvent) -> str:
    return stream_key_of(recorded.stream_id)


def state_of(row: Row | None) -> PlayerState:
    """The character state a row keeps (the domain's own fold, so the two never disagree).

    Within a batch a row keeps the state as the struct it was folded into, not as plain data:
    the next event of the same character needs no conversion, and JSON encodes both alike.
    """
    if row is None:
        return PlayerState()
    state = row["state"]
    return state if isinstance(state, PlayerState) else msgspec.convert(state, PlayerState)


class Trail(NamedTuple):
    """A character across one batch: its state before and after, and the rooms it stood in."""

    start: PlayerState
    end: PlayerState
    #: The room of every state from ``start`` to ``end`` (not "": before it was created).
    rooms: set[str]


def trail(memo: Memo, stream_id: str, events: Sequence[Decoded], start: PlayerState) -> Trail:
    """Fold a character's events of one batch into ``start``: the domain's own fold.

    The player details and the room view both fold every character's events; the second one
    to ask takes the first one's result. A stream's events in a batch are consecutive versions,
    so its first and last version name them, and the result is reused only from an equal start.
    """
    key = ("trail", stream_id, events[0][1].version, events[-1][1].version)
    found = memo.get(key)
    if isinstance(found, Trail) and found.start == start:
        return found
    state, rooms, evolve = start, {start.room}, player.evolve
    for event, _ in events:
        state = evolve(state, event)
        rooms.add(state.room)
    rooms.discard("")
    memo[key] = result = Trail(start, state, rooms)
    return result


def details_row(state: PlayerState) -> Row:
    return {
        "name": state.name,
        "level": state.level,
        "xp": state.xp,
        "health": state.health,
        "max_health": state.max_health,
        "room": state.room,
        "alive": int(state.alive),
        "inventory": [item.item_key for item in state.inventory],
        "state": state,
    }


class PlayerDetails(ReadModel):
    """Name, level, XP, health, room and inventory of every character: one row each."""

    name = "player_details"
    tables = (PLAYER_DETAILS,)

    def prefetch(self, event: Event, recorded: RecordedEvent) -> Iterable[RowKey]:
        if recorded.stream_type == "player":
            return ((PLAYER_DETAILS.name, player_key(recorded)),)
        return ()

    async def apply(self, event: Event, recorded: RecordedEvent, rows: Rows) -> None:
        if recorded.stream_type != "player":
            return
        key = player_key(recorded)
        state = player.evolve(state_of(rows.prefetched(PLAYER_DETAILS.name, key)), event)
        rows.put(PLAYER_DETAILS.name, key, details_row(state))

    async def apply_all(self, todo: Sequence[Decoded], rows: Rows, memo: Memo) -> None:
        """Each character's events folded, its row written once."""
        table = PLAYER_DETAILS.name
        streams = by_stream(todo, memo, "player")
        keys = {stream: stream_key_of(stream) for stream in streams}
        await rows.prefetch([(table, key) for key in keys.values()])
        for stream, events in streams.items():
            key = keys[stream]
            start = state_of(rows.prefetched(table, key))
            rows.put(table, key, details_row(trail(memo, stream, events, start).end))


class Leaderboard(ReadModel):
    """Characters by level then XP; the top N is one indexed read."""

    name = "leaderboard"
    tables = (LEADERBOARD,)
    handles = (PlayerCreated, XpGained, LevelledUp)

    def prefetch(self, event: Event, recorded: RecordedEvent) -> Iterable[RowKey]:
        if isinstance(event, XpGained | LevelledUp | PlayerCreated):
            return ((LEADERBOARD.name, player_key(recorded)),)
        return ()

    async def apply(self, event: Event, recorded: RecordedEvent, rows: Rows) -> None:
        key = player_key(recorded)
        match event:
            case PlayerCreated(name=name):
                rows.put(LEADERBOARD.name, key, {"name": name, "level": 1, "xp": 0})
            case XpGained(amount=amount):
                row = await rows.get(LEADERBOARD.name, key)
                if row is not None:
                    rows.put(LEADERBOARD.name, key, {**row, "xp": row["xp"] + amount})
            case LevelledUp(level=level):
                row = await rows.get(LEADERBOARD.name, key)
                if row is not None:
                    rows.put(LEADERBOARD.name, key, {**row, "level": level})
