"""The world map: rooms, items and monsters as immutable data, parsed and checked once."""

from __future__ import annotations

from typing import Literal

import msgspec

from adventure_quest.domain.errors import DomainError

Direction = Literal[
    "north",
    "south",
    "east",
    "west",
    "up",
    "down",
    "northeast",
    "northwest",
    "southeast",
    "southwest",
]
DIRECTIONS: dict[str, str] = {
    "n": "north", "s": "south", "e": "east", "w": "west", "u": "up", "d": "down",
    "ne": "northeast", "nw": "northwest", "se": "southeast", "sw": "southwest",
}  # fmt: skip
ItemKind = Literal["weapon", "armor", "potion", "treasure", "misc"]


class PlayerRules(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """Numbers that shape a character's growth and carrying capacity."""

    base_health: int
    health_per_level: int
    base_damage: int
    damage_per_level: int
    xp_thresholds: list[int]
    max_items: int
    max_weight: int


class ItemDef(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """A kind of item; the world holds many instances of it."""

    name: str
    description: str
    kind: ItemKind
    weight: int
    aliases: list[str] = []
    damage: int = 0
    defense: int = 0
    heal: int = 0
    value: int = 0


class MonsterDef(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """A kind of monster: how hard it is, what it is worth and what it drops."""

    name: str
    description: str
    health: int
    damage: int
    xp: int
    aliases: list[str] = []
    loot: list[str] = []


class RoomDef(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """A room as the world starts it: exits, and the items and monsters first found there."""

    name: str
    description: str
    exits: dict[Direction, str]
    items: list[str] = []
    monsters: list[str] = []


class World(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """The whole map; ``check()`` has verified every reference."""

    start_room: str
    player: PlayerRules
    items: dict[str, ItemDef]
    monsters: dict[str, MonsterDef]
    rooms: dict[str, RoomDef]

    def check(self) -> World:
        """Verify that every reference names something that exists; return self (chains)."""
        problems: list[str] = []
        if self.start_room not in self.rooms:
            problems.append(f"start room {self.start_room!r} does not exist")
        for key, room in self.rooms.items():
            problems += [f"{key}: exit {d} to unknown room {t!r}" for d, t in room.exits.items()
                         if t not in self.rooms]  # fmt: skip
            problems += [f"{key}: unknown item {i!r}" for i in room.items if i not in self.items]
            problems += [
                f"{key}: unknown monster {m!r}" for m in room.monsters if m not in self.monsters
            ]
        for key, monster in self.monsters.items():
            problems += [f"{key}: unknown loot {i!r}" for i in monster.loot if i not in self.items]
        if problems:
            raise DomainError("world_invalid", "; ".join(problems))
        return self

    def item_matches(self, item_key: str, words: str) -> bool:
        """Whether a player's words name this item (its key, name, alias or last name word)."""
        item = self.items[item_key]
        text = " ".join(words.casefold().split())
        names = (item.name, *item.aliases, item.name.rsplit(" ", 1)[-1])
        return text == item_key or text in (name.casefold() for name in names)

    def monster_matches(self, monster_key: str, words: str) -> bool:
        """Whether a player's words name this monster."""
        monster = self.monsters[monster_key]
        text = " ".join(words.casefold().split())
        names = (monster.name, *monster.aliases, monster.name.split()[-1])
        return text == monster_key or text in (name.casefold() for name in names)

    def level_for(self, xp: int) -> int:
        """The level a character with ``xp`` experience has reached (1-based)."""
        return sum(1 for threshold in self.player.xp_thresholds if xp >= threshold)

    def max_health_at(self, level: int) -> int:
        """A character's maximum health at ``level``."""
        return self.player.base_health + (level - 1) * self.player.health_per_level


def parse_world(data: bytes) -> World:
    """Parse and check a world file; a malformed one raises DomainError('world_invalid')."""
    try:
        world = msgspec.json.decode(data, type=World)
    except (msgspec.ValidationError, msgspec.DecodeError) as error:
        raise DomainError("world_invalid", f"world file is malformed: {error}") from error
    return world.check()


def normalise_direction(words: str) -> str:
    """``n`` -> ``north``; other words pass through lower-cased."""
    text = words.strip().casefold()
    return DIRECTIONS.get(text, text)
