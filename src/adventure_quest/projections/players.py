"""Read models about characters: their details, and the leaderboard."""

from __future__ import annotations

from collections.abc import Iterable

import msgspec

from adventure_quest.domain import player
from adventure_quest.domain.events import Event, LevelledUp, PlayerCreated, XpGained
from adventure_quest.domain.player import PlayerState
from adventure_quest.projections.model import Row, RowKey, Rows, Table
from adventure_quest.store.envelope import RecordedEvent

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
)
LEADERBOARD = Table(
    "leaderboard",
    "player_id",
    {"name": "text", "level": "integer", "xp": "integer"},
    indexes=(("level", "xp"),),
)


def player_key(recorded: RecordedEvent) -> str:
    return recorded.stream_id.removeprefix("player-")


def state_of(row: Row | None) -> PlayerState:
    """The character state a row keeps (the domain's own fold, so the two never disagree).

    Within a batch a row keeps the state as the struct it was folded into, not as plain data:
    the next event of the same character needs no conversion, and JSON encodes both alike.
    """
    if row is None:
        return PlayerState()
    state = row["state"]
    return state if isinstance(state, PlayerState) else msgspec.convert(state, PlayerState)


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


class PlayerDetails:
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


class Leaderboard:
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
