"""The answers of the read side's queries: what a client sees of each read model.

Plain data (msgspec structs), encoded to JSON once and cached as bytes; the HTTP API documents
them in its OpenAPI schema but does not own them.
"""

from __future__ import annotations

from typing import Any

import msgspec


class PlayerDetails(msgspec.Struct, frozen=True):
    player_id: str
    name: str
    level: int
    xp: int
    health: int
    max_health: int
    room: str
    alive: bool
    inventory: list[str]


class Monster(msgspec.Struct, frozen=True):
    monster: str
    name: str
    health: int


class Present(msgspec.Struct, frozen=True):
    name: str
    level: int
    health: int
    max_health: int
    alive: bool
    inventory: list[str]


class RoomView(msgspec.Struct, frozen=True):
    room: str
    name: str
    description: str
    exits: dict[str, str]
    items: list[str]
    #: The kinds of the items (keys of the world file), in the order of ``items``.
    item_keys: list[str]
    monsters: list[Monster]
    #: A page of the characters present, by id (``GET /rooms/{room}?limit=&after=``).
    players: dict[str, Present]
    #: How many characters are in the room in all.
    present: int = 0
    #: The cursor of the next page (``after``), or None on the last page.
    next: str | None = None


class Ranked(msgspec.Struct, frozen=True):
    rank: int
    player_id: str
    name: str
    level: int
    xp: int


class Leaderboard(msgspec.Struct, frozen=True):
    players: list[Ranked]


class Achievements(msgspec.Struct, frozen=True):
    player_id: str
    name: str
    unlocked: list[Any]


class WorldStats(msgspec.Struct, frozen=True):
    players_per_room: dict[str, int]
    events_per_minute: dict[str, int]
