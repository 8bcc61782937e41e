"""The Room aggregate: what lies on the floor and which monsters live here.

A room's stream is the single authority for its items: when two players reach for the same item,
optimistic concurrency on the room's stream lets exactly one ``ItemPickedUp`` through.
"""

from __future__ import annotations

import msgspec
from msgspec.structs import replace

from adventure_quest.domain.errors import refuse
from adventure_quest.domain.events import (
    DuplicateRemoved,
    Event,
    HandoverSettled,
    HeldItem,
    ItemPickedUp,
    ItemPutDown,
    MonsterDefeated,
    MonsterHit,
    MonsterSpawn,
    RoomRestocked,
)
from adventure_quest.domain.player import remember, without_one
from adventure_quest.domain.world import World


class MonsterState(msgspec.Struct, frozen=True):
    """One monster in a room and its health."""

    monster_id: str
    monster_key: str
    health: int


class RoomState(msgspec.Struct, frozen=True):
    """A room as its events left it, starting from the world's initial contents."""

    room_key: str
    items: tuple[HeldItem, ...] = ()
    monsters: tuple[MonsterState, ...] = ()
    recent_handovers: tuple[str, ...] = ()
    #: The last world-clock tick that restocked this room.
    last_tick: int = 0


def initial_state(world: World, room_key: str) -> RoomState:
    """The room as the world file lays it out; instance ids are derived, so stable."""
    room = world.rooms.get(room_key)
    if room is None:
        raise refuse("room_not_found", f"There is no room {room_key!r}.")
    items = tuple(HeldItem(f"{room_key}.{key}.{n}", key) for n, key in enumerate(room.items))
    monsters = tuple(
        MonsterState(f"{room_key}.{key}.{n}", key, world.monsters[key].health)
        for n, key in enumerate(room.monsters)
    )
    return RoomState(room_key, items, monsters)


def evolve(state: RoomState, event: Event) -> RoomState:
    """The state after ``event``; pure and total over room events."""
    match event:
        case ItemPickedUp(item=item, handover_id=handover_id):
            return replace(state, items=tuple(i for i in state.items if i != item))
        case ItemPutDown(item=item, handover_id=handover_id):
            return replace(
                state,
                items=(*state.items, item),
                recent_handovers=remember(state.recent_handovers, handover_id),
            )
        case MonsterHit(monster_id=monster_id, health_left=health_left):
            return replace(
                state,
                monsters=tuple(
                    replace(m, health=health_left) if m.monster_id == monster_id else m
                    for m in state.monsters
                ),
            )
        case MonsterDefeated(monster_id=monster_id, loot=loot):
            return replace(
                state,
                monsters=tuple(m for m in state.monsters if m.monster_id != monster_id),
                items=(*state.items, *loot),
            )
        case HandoverSettled(handover_id=handover_id):
            return replace(state, recent_handovers=remember(state.recent_handovers, handover_id))
        case DuplicateRemoved(item=item):
            return replace(state, items=without_one(state.items, item))
        case RoomRestocked(tick=tick, monsters=monsters, items=items):
            spawned = tuple(MonsterState(m.monster_id, m.monster_key, m.health) for m in monsters)
            return replace(
                state,
                monsters=(*state.monsters, *spawned),
                items=(*state.items, *items),
                last_tick=tick,
            )
    return state


def _slot(instance_id: str) -> str:
    """The world slot an instance fills: ``room.key.n`` without its ``@tick`` generation."""
    return instance_id.partition("@")[0]


def restock(state: RoomState, tick: int, world: World) -> list[Event]:
    """Bring back, once per tick, every monster and item of the world file that is missing.

    A respawned instance's id carries the tick (``room.key.n@tick``), so loot and items of a
    new generation never share an id with the old one.
    """
    if tick <= state.last_tick:
        return []
    first = initial_state(world, state.room_key)
    # Monsters and items apart: a respawned monster's loot (``room.key.n@t.loot.k``) has the
    # monster's slot, and must not stand for the monster while it lies on the floor.
    alive = {_slot(m.monster_id) for m in state.monsters}
    lying = {_slot(i.item_id) for i in state.items}
    monsters = [
        MonsterSpawn(f"{m.monster_id}@{tick}", m.monster_key, m.health)
        for m in first.monsters
        if m.monster_id not in alive
    ]
    items = [
        HeldItem(f"{i.item_id}@{tick}", i.item_key) for i in first.items if i.item_id not in lying
    ]
    if not monsters and not items:
        return []
    return [RoomRestocked(tick, monsters, items)]


def hand_over_item(
    state: RoomState, words: str, player_id: str, handover_id: str, world: World
) -> list[Event]:
    """Give the first item on the floor that the words name to a player, or refuse."""
    for item in state.items:
        if world.item_matches(item.item_key, words):
            return [ItemPickedUp(item, player_id, handover_id)]
    raise refuse("item_not_here", f"There is no {words.strip()!r} here.")


def find_item_key(state: RoomState, words: str, world: World) -> str:
    """The kind of the first item on the floor the words name, or refuse."""
    for item in state.items:
        if world.item_matches(item.item_key, words):
            return item.item_key
    raise refuse("item_not_here", f"There is no {words.strip()!r} here.")


def receive_item(state: RoomState, item: HeldItem, player_id: str, handover_id: str) -> list[Event]:
    """Finish a drop (or return a refused take): the item lands on the floor, once."""
    if handover_id in state.recent_handovers:
        return []
    return [ItemPutDown(item, player_id, handover_id)]


def fight(
    state: RoomState,
    words: str,
    *,
    player_id: str,
    damage: int,
    defense: int,
    roll: int,
    handover_id: str,
    world: World,
) -> list[Event]:
    """A player strikes a monster; it strikes back or falls, dropping its loot on the floor.

    ``roll`` (any non-negative int, drawn by the caller) adds 0..3 to the blow and -2..2 to the
    monster's answer, so the rules stay deterministic.
    """
    monster = next((m for m in state.monsters if world.monster_matches(m.monster_key, words)), None)
    if monster is None:
        raise refuse("monster_not_here", f"There is no {words.strip()!r} to fight here.")
    kind = world.monsters[monster.monster_key]
    blow = damage + roll % 4
    left = max(monster.health - blow, 0)
    counter = 0 if left == 0 else max(kind.damage + (roll // 4) % 5 - 2 - defense, 0)
    events: list[Event] = [
        MonsterHit(
            monster.monster_id, monster.monster_key, player_id, blow, left, counter, handover_id
        )
    ]
    if left == 0:
        loot = [HeldItem(f"{monster.monster_id}.loot.{n}", key) for n, key in enumerate(kind.loot)]
        events.append(
            MonsterDefeated(
                monster.monster_id, monster.monster_key, player_id, kind.xp, loot, handover_id
            )
        )
    return events
