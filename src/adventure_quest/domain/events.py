"""Events: frozen, typed, past-tense facts. Player events and Room events live on their streams.

Cross-stream hand-overs (an item moving between a room and a player, a fight's outcome reaching
the player) carry a ``handover_id``; the receiving stream remembers recent ids so finishing a
hand-over twice has no effect. See docs/handover.md.
"""

from __future__ import annotations

import msgspec


class Event(msgspec.Struct, frozen=True, gc=False):
    """Base of every domain event."""


class HeldItem(msgspec.Struct, frozen=True, gc=False):
    """One item instance: a unique id and the kind of item it is."""

    item_id: str
    item_key: str


# -- Player stream ---------------------------------------------------------------------------


class PlayerCreated(Event, frozen=True):
    """A character came into the world (schema v2: v1 had no health fields)."""

    player_id: str
    name: str
    room: str
    max_health: int
    health: int


class TokenIssued(Event, frozen=True):
    """The character's secret API token was (re)issued; only its SHA-256 hash is recorded."""

    token_hash: str


class PlayerMoved(Event, frozen=True):
    """The player walked through an exit."""

    from_room: str
    to_room: str
    direction: str


class ItemTaken(Event, frozen=True):
    """The player now holds an item the room handed over."""

    item: HeldItem
    room: str
    handover_id: str


class ItemDropped(Event, frozen=True):
    """The player let go of an item; the room receives it in the same hand-over."""

    item: HeldItem
    room: str
    handover_id: str


class ItemUsed(Event, frozen=True):
    """The player used up an item (a potion healed ``healed`` points)."""

    item: HeldItem
    healed: int


class DamageTaken(Event, frozen=True):
    """A monster struck the player back during a fight."""

    amount: int
    monster_key: str
    room: str
    handover_id: str


class XpGained(Event, frozen=True):
    """The player earned experience (from a defeated monster)."""

    amount: int
    monster_key: str
    handover_id: str


class LevelledUp(Event, frozen=True):
    """The player reached a new level: more maximum health, healed to full."""

    level: int
    max_health: int


class PlayerDied(Event, frozen=True):
    """The player's health reached zero."""

    room: str
    killed_by: str


class PlayerRespawned(Event, frozen=True):
    """A dead player returned to life at the start room."""

    room: str
    health: int


class PlayerSaid(Event, frozen=True):
    """The player said something to everyone in the room."""

    room: str
    text: str


class AchievementUnlocked(Event, frozen=True):
    """The player earned an achievement (``achievement`` is its stable key); it is never lost."""

    achievement: str
    title: str


class HandoverSettled(Event, frozen=True):
    """A hand-over reached this stream but changed nothing (it is kept for idempotence)."""

    handover_id: str
    reason: str


class DuplicateRemoved(Event, frozen=True):
    """One extra copy of an item instance was taken away here (``aq items repair``).

    Stores written before hand-overs were finished exactly once may hold an instance twice (a
    finish recorded again by a lagging process manager). Appears on player and room streams.
    """

    item: HeldItem
    reason: str


# -- Room stream -----------------------------------------------------------------------------


class ItemPickedUp(Event, frozen=True):
    """The room gave an item to a player: the room's stream decides contested items."""

    item: HeldItem
    player_id: str
    handover_id: str


class ItemPutDown(Event, frozen=True):
    """An item landed on the room's floor (dropped by a player, or returned)."""

    item: HeldItem
    player_id: str
    handover_id: str


class MonsterHit(Event, frozen=True):
    """A player hit a monster; it struck back with ``counter_damage`` unless it fell."""

    monster_id: str
    monster_key: str
    player_id: str
    damage: int
    health_left: int
    counter_damage: int
    handover_id: str


class MonsterDefeated(Event, frozen=True):
    """A monster fell: its loot lies on the floor, its XP goes to the player."""

    monster_id: str
    monster_key: str
    player_id: str
    xp: int
    loot: list[HeldItem]
    handover_id: str


class MonsterSpawn(msgspec.Struct, frozen=True, gc=False):
    """A monster appearing in a room."""

    monster_id: str
    monster_key: str
    health: int


class RoomRestocked(Event, frozen=True):
    """The world clock's tick brought back the room's missing monsters and items."""

    tick: int
    monsters: list[MonsterSpawn]
    items: list[HeldItem]


# -- World clock stream ----------------------------------------------------------------------


class WorldTicked(Event, frozen=True):
    """The world clock advanced; ``at`` is the tick's scheduled time (seconds since epoch)."""

    tick: int
    at: float


PLAYER_EVENTS: tuple[type[Event], ...] = (
    PlayerCreated,
    TokenIssued,
    PlayerMoved,
    ItemTaken,
    ItemDropped,
    ItemUsed,
    DamageTaken,
    XpGained,
    LevelledUp,
    PlayerDied,
    PlayerRespawned,
    PlayerSaid,
    HandoverSettled,
    AchievementUnlocked,
    DuplicateRemoved,
)
ROOM_EVENTS: tuple[type[Event], ...] = (
    ItemPickedUp,
    ItemPutDown,
    MonsterHit,
    MonsterDefeated,
    HandoverSettled,
    RoomRestocked,
    DuplicateRemoved,
)
CLOCK_EVENTS: tuple[type[Event], ...] = (WorldTicked,)
EVENT_TYPES: dict[str, type[Event]] = {
    cls.__name__: cls for cls in (*PLAYER_EVENTS, *ROOM_EVENTS, *CLOCK_EVENTS)
}
#: Current payload schema version per event type (1 unless listed).
SCHEMA_VERSIONS: dict[str, int] = {"PlayerCreated": 2}
