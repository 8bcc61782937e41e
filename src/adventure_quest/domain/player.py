"""The Player aggregate: a character's state, how events change it, and what it may do."""

from __future__ import annotations

import unicodedata

import msgspec
from msgspec.structs import replace

from adventure_quest.domain.errors import refuse
from adventure_quest.domain.events import (
    AchievementUnlocked,
    DamageTaken,
    DuplicateRemoved,
    Event,
    HandoverSettled,
    HeldItem,
    ItemDropped,
    ItemTaken,
    ItemUsed,
    LevelledUp,
    PlayerCreated,
    PlayerDied,
    PlayerMoved,
    PlayerRespawned,
    PlayerSaid,
    TokenIssued,
    XpGained,
)
from adventure_quest.domain.world import DIRECTIONS, World

MAX_NAME_LENGTH = 32
MAX_SAY_LENGTH = 280
#: How many finished hand-overs a stream remembers, so a repeated one changes nothing.
RECENT_HANDOVERS = 64


class PlayerState(msgspec.Struct, frozen=True):
    """A character as its events left it; ``player_id == ""`` means it does not exist yet."""

    player_id: str = ""
    name: str = ""
    room: str = ""
    health: int = 0
    max_health: int = 0
    level: int = 1
    xp: int = 0
    inventory: tuple[HeldItem, ...] = ()
    alive: bool = True
    kills: int = 0
    deaths: int = 0
    recent_handovers: tuple[str, ...] = ()
    #: Hand-overs this player refused: their items must go back where they came from.
    refused_handovers: tuple[str, ...] = ()
    # What achievements are judged on. Each only ever grows, so a rule that held once still
    # holds on any later state, however late the achievements process looks at it.
    #: Keys of the achievements unlocked, in unlock order.
    achievements: tuple[str, ...] = ()
    #: Every room ever entered, once each, in first-visit order (bounded by the world's size).
    rooms_visited: tuple[str, ...] = ()
    items_taken: int = 0
    most_items_carried: int = 0
    respawns: int = 0
    #: Monsters defeated while the character was badly hurt (see ``badly_hurt``).
    close_call_kills: int = 0
    #: SHA-256 of the character's API token ("" when none was issued, e.g. made by `aq play`).
    token_hash: str = ""

    @property
    def exists(self) -> bool:
        return bool(self.player_id)

    @property
    def badly_hurt(self) -> bool:
        """Below a fifth of maximum health."""
        return self.health * 5 < self.max_health


def remember(handovers: tuple[str, ...], handover_id: str) -> tuple[str, ...]:
    """Keep the last RECENT_HANDOVERS hand-over ids, newest last."""
    return (*handovers, handover_id)[-RECENT_HANDOVERS:]


def visit(rooms: tuple[str, ...], room: str) -> tuple[str, ...]:
    """The visited rooms with ``room`` added, unless it is there already."""
    return rooms if room in rooms else (*rooms, room)


def evolve(state: PlayerState, event: Event) -> PlayerState:
    """The state after ``event``; pure and total over player events."""
    match event:  # the most frequent first: each case is an isinstance check
        case PlayerMoved(to_room=to_room):
            return replace(state, room=to_room, rooms_visited=visit(state.rooms_visited, to_room))
        case PlayerSaid():
            return state
        case PlayerCreated(player_id, name, room, max_health, health):
            return PlayerState(player_id, name, room, health, max_health, rooms_visited=(room,))
        case TokenIssued(token_hash=token_hash):
            return replace(state, token_hash=token_hash)
        case ItemTaken(item=item, handover_id=handover_id):
            inventory = (*state.inventory, item)
            return replace(
                state,
                inventory=inventory,
                recent_handovers=remember(state.recent_handovers, handover_id),
                items_taken=state.items_taken + 1,
                most_items_carried=max(state.most_items_carried, len(inventory)),
            )
        case ItemDropped(item=item):
            return replace(state, inventory=tuple(i for i in state.inventory if i != item))
        case ItemUsed(item=item, healed=healed):
            return replace(
                state,
                inventory=tuple(i for i in state.inventory if i != item),
                health=min(state.health + healed, state.max_health),
            )
        case DamageTaken(amount=amount, handover_id=handover_id):
            return replace(
                state,
                health=max(state.health - amount, 0),
                recent_handovers=remember(state.recent_handovers, handover_id),
            )
        case XpGained(amount=amount, handover_id=handover_id):
            return replace(
                state,
                xp=state.xp + amount,
                kills=state.kills + 1,
                close_call_kills=state.close_call_kills + int(state.badly_hurt),
                recent_handovers=remember(state.recent_handovers, handover_id),
            )
        case LevelledUp(level=level, max_health=max_health):
            return replace(state, level=level, max_health=max_health, health=max_health)
        case PlayerDied():
            return replace(state, alive=False, health=0, deaths=state.deaths + 1)
        case PlayerRespawned(room=room, health=health):
            return replace(
                state,
                alive=True,
                room=room,
                health=health,
                respawns=state.respawns + 1,
                rooms_visited=visit(state.rooms_visited, room),
            )
        case HandoverSettled(handover_id=handover_id):
            return replace(
                state,
                recent_handovers=remember(state.recent_handovers, handover_id),
                refused_handovers=remember(state.refused_handovers, handover_id),
            )
        case AchievementUnlocked(achievement=achievement):
            if achievement in state.achievements:
                return state
            return replace(state, achievements=(*state.achievements, achievement))
        case DuplicateRemoved(item=item):
            return replace(state, inventory=without_one(state.inventory, item))
    return state


def without_one(items: tuple[HeldItem, ...], item: HeldItem) -> tuple[HeldItem, ...]:
    """``items`` with the first copy of ``item`` taken out (unchanged when it holds none)."""
    if item not in items:
        return items
    at = items.index(item)
    return (*items[:at], *items[at + 1 :])


def evolve_all(state: PlayerState, events: list[Event]) -> PlayerState:
    """Fold events into state."""
    for event in events:
        state = evolve(state, event)
    return state


# -- decisions -------------------------------------------------------------------------------


def plain_text(text: str) -> bool:
    """No control characters, lone surrogates (undecodable input) or unassigned code points."""
    return not any(unicodedata.category(ch) in ("Cc", "Cs", "Co", "Cn") for ch in text)


def check_name(name: str) -> str:
    """A character name, trimmed; refuses empty, too long or control characters."""
    trimmed = " ".join(name.split())
    if not trimmed:
        raise refuse("invalid_name", "A name cannot be empty.")
    if len(trimmed) > MAX_NAME_LENGTH:
        raise refuse("invalid_name", f"A name can be at most {MAX_NAME_LENGTH} characters long.")
    if not plain_text(trimmed):
        raise refuse("invalid_name", "A name cannot contain control characters.")
    return trimmed


def create(
    state: PlayerState, player_id: str, name: str, world: World, token_hash: str = ""
) -> list[Event]:
    """Bring a new character into the start room (with its API token's hash, when given)."""
    name = check_name(name)
    if state.exists:
        raise refuse("name_taken", f"The name {name!r} is already taken.")
    health = world.max_health_at(1)
    created: list[Event] = [PlayerCreated(player_id, name, world.start_room, health, health)]
    return [*created, TokenIssued(token_hash)] if token_hash else created


def require_alive(state: PlayerState) -> None:
    """Refuse any action of a character that does not exist or is dead."""
    if not state.exists:
        raise refuse("player_not_found", "There is no such character.")
    if not state.alive:
        raise refuse("player_dead", "You are dead. Type 'respawn' to return to the village.")


def move(state: PlayerState, direction: str, world: World) -> list[Event]:
    """Walk through an exit of the current room."""
    require_alive(state)
    direction = direction.strip().casefold()
    direction = DIRECTIONS.get(direction, direction)
    if direction not in DIRECTIONS.values():
        raise refuse("unknown_direction", f"{direction!r} is not a direction.")
    target = world.rooms[state.room].exits.get(direction)  # type: ignore[call-overload]
    if target is None:
        raise refuse("no_exit", f"You cannot go {direction} from here.")
    return [PlayerMoved(state.room, target, direction)]


def carried_weight(state: PlayerState, world: World) -> int:
    """Total weight of everything the character carries."""
    return sum(world.items[item.item_key].weight for item in state.inventory)


def check_can_carry(state: PlayerState, item_key: str, world: World) -> None:
    """Refuse an item that would break the inventory's item or weight limit."""
    rules = world.player
    if len(state.inventory) >= rules.max_items:
        raise refuse("inventory_full", f"You cannot carry more than {rules.max_items} items.")
    if carried_weight(state, world) + world.items[item_key].weight > rules.max_weight:
        raise refuse(
            "inventory_full",
            f"The {world.items[item_key].name} is too heavy: you can carry {rules.max_weight}.",
        )


def receive_item(
    state: PlayerState, item: HeldItem, room: str, handover_id: str, world: World
) -> list[Event]:
    """Finish a take: hold the item, or settle the hand-over as refused when it no longer fits."""
    if handover_id in state.recent_handovers:
        return []
    try:
        require_alive(state)
        check_can_carry(state, item.item_key, world)
    except Exception as error:
        return [HandoverSettled(handover_id, f"refused: {error}")]
    return [ItemTaken(item, room, handover_id)]


def find_carried(state: PlayerState, words: str, world: World) -> HeldItem:
    """The first carried item the words name, or refuse."""
    for item in state.inventory:
        if world.item_matches(item.item_key, words):
            return item
    raise refuse("item_not_carried", f"You are not carrying any {words.strip()!r}.")


def drop(state: PlayerState, words: str, handover_id: str, world: World) -> list[Event]:
    """Let go of a carried item; the room receives it under the same hand-over id."""
    require_alive(state)
    return [ItemDropped(find_carried(state, words, world), state.room, handover_id)]


def use(state: PlayerState, words: str, world: World) -> list[Event]:
    """Use a carried item: a potion heals, capped at maximum health."""
    require_alive(state)
    item = find_carried(state, words, world)
    definition = world.items[item.item_key]
    if definition.kind != "potion":
        raise refuse("cannot_use", f"You cannot use the {definition.name}.")
    return [ItemUsed(item, min(definition.heal, state.max_health - state.health))]


def attack_power(state: PlayerState, world: World) -> tuple[int, int]:
    """(damage, defense) the character fights with: level and best weapon and armour."""
    require_alive(state)
    rules = world.player
    kinds = [world.items[item.item_key] for item in state.inventory]
    weapon = max((item.damage for item in kinds if item.kind == "weapon"), default=0)
    armour = max((item.defense for item in kinds if item.kind == "armor"), default=0)
    return rules.base_damage + (state.level - 1) * rules.damage_per_level + weapon, armour


def take_fight_outcome(
    state: PlayerState,
    *,
    counter_damage: int,
    xp: int,
    monster_key: str,
    handover_id: str,
    world: World,
) -> list[Event]:
    """Apply a fight's outcome decided by the room: damage taken, XP and levels, or death."""
    if handover_id in state.recent_handovers or not state.exists:
        return []
    if not state.alive:
        return [HandoverSettled(handover_id, "the player was already dead")]
    events: list[Event] = []
    if xp:
        events.append(XpGained(xp, monster_key, handover_id))
        reached = world.level_for(state.xp + xp)
        events += [
            LevelledUp(lv, world.max_health_at(lv)) for lv in range(state.level + 1, reached + 1)
        ]
    else:
        events.append(DamageTaken(counter_damage, monster_key, state.room, handover_id))
        if counter_damage >= state.health:
            events.append(PlayerDied(state.room, monster_key))
    return events


def respawn(state: PlayerState, world: World) -> list[Event]:
    """Return a dead character to the start room at full health."""
    if not state.exists:
        raise refuse("player_not_found", "There is no such character.")
    if state.alive:
        raise refuse("not_dead", "You are alive and well.")
    return [PlayerRespawned(world.start_room, state.max_health)]


def say(state: PlayerState, text: str) -> list[Event]:
    """Say something to everyone in the room."""
    require_alive(state)
    text = " ".join(text.split())
    if not text:
        raise refuse("invalid_text", "Say what?")
    if len(text) > MAX_SAY_LENGTH or not plain_text(text):
        raise refuse("invalid_text", f"You can say at most {MAX_SAY_LENGTH} plain characters.")
    return [PlayerSaid(state.room, text)]
