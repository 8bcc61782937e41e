"""Game text: how rooms, characters and events read to the player."""

from __future__ import annotations

from adventure_quest.domain.events import (
    AchievementUnlocked,
    DamageTaken,
    Event,
    HandoverSettled,
    ItemDropped,
    ItemPickedUp,
    ItemPutDown,
    ItemTaken,
    ItemUsed,
    LevelledUp,
    MonsterDefeated,
    MonsterHit,
    PlayerCreated,
    PlayerDied,
    PlayerMoved,
    PlayerRespawned,
    PlayerSaid,
    XpGained,
)
from adventure_quest.domain.player import PlayerState, carried_weight
from adventure_quest.domain.room import RoomState
from adventure_quest.domain.world import World


def describe_room(world: World, room: RoomState) -> str:
    """What a player sees on ``look``."""
    definition = world.rooms[room.room_key]
    lines = [f"== {definition.name} ==", definition.description]
    if room.items:
        lines.append(
            "You see: " + ", ".join(world.items[i.item_key].name for i in room.items) + "."
        )
    for monster in room.monsters:
        kind = world.monsters[monster.monster_key]
        lines.append(f"A {kind.name} is here ({monster.health}/{kind.health} health).")
    lines.append("Exits: " + (", ".join(definition.exits) or "none") + ".")
    return "\n".join(lines)


def describe_inventory(world: World, player: PlayerState) -> str:
    """What a player carries, with weight against the limit."""
    if not player.inventory:
        return "You are carrying nothing."
    names = ", ".join(world.items[i.item_key].name for i in player.inventory)
    rules = world.player
    return (
        f"You carry ({len(player.inventory)}/{rules.max_items} items, "
        f"weight {carried_weight(player, world)}/{rules.max_weight}): {names}."
    )


def describe_stats(world: World, player: PlayerState) -> str:
    """A character sheet."""
    thresholds = world.player.xp_thresholds
    following = next((t for t in thresholds if t > player.xp), None)
    to_next = f", {following - player.xp} XP to level {player.level + 1}" if following else ""
    state = "alive" if player.alive else "dead"
    return (
        f"{player.name}: level {player.level}, {player.xp} XP{to_next}; "
        f"health {player.health}/{player.max_health}; {player.kills} monsters defeated; "
        f"{player.deaths} deaths; {state}; in {world.rooms[player.room].name}."
        + (f" Achievements: {', '.join(player.achievements)}." if player.achievements else "")
    )


def narrate(world: World, event: Event) -> str | None:
    """One line of game text for an event the player caused, or None if it needs none."""
    match event:
        case PlayerCreated(name=name):
            return f"Welcome, {name}. Your adventure begins."
        case PlayerMoved(direction=direction):
            return f"You go {direction}."
        case ItemPickedUp(item=item) | ItemTaken(item=item):
            if isinstance(event, ItemTaken):
                return None
            return f"You take the {world.items[item.item_key].name}."
        case ItemDropped(item=item):
            return f"You drop the {world.items[item.item_key].name}."
        case ItemPutDown():
            return None
        case ItemUsed(item=item, healed=healed):
            return f"You use the {world.items[item.item_key].name} and recover {healed} health."
        case MonsterHit(monster_key=key, damage=damage, health_left=left):
            name = world.monsters[key].name
            return f"You hit the {name} for {damage} damage ({left} health left)."
        case MonsterDefeated(monster_key=key, loot=loot):
            dropped = ", ".join(world.items[i.item_key].name for i in loot)
            return f"The {world.monsters[key].name} is defeated!" + (
                f" It drops: {dropped}." if dropped else ""
            )
        case DamageTaken(amount=amount, monster_key=key):
            if amount == 0:
                return f"The {world.monsters[key].name} misses you."
            return f"The {world.monsters[key].name} hits you for {amount} damage."
        case XpGained(amount=amount):
            return f"You gain {amount} XP."
        case LevelledUp(level=level, max_health=max_health):
            return f"You reach level {level}! Maximum health is now {max_health}."
        case PlayerDied(killed_by=killer):
            return (
                f"You were slain by the {world.monsters[killer].name}. "
                "Type 'respawn' to return to the village."
            )
        case PlayerRespawned(room=room):
            return f"You awaken in the {world.rooms[room].name}, whole again."
        case PlayerSaid(text=text):
            return f'You say: "{text}"'
        case AchievementUnlocked(title=title):
            return f"Achievement unlocked: {title}!"
        case HandoverSettled(reason=reason):
            return f"The hand-over did not happen ({reason}); the item stays where it was."
    return None


def witness(world: World, event: Event, name: str) -> tuple[str, str] | None:
    """What others in the room see of ``event`` by ``name``: (kind, text), or None."""
    match event:
        case PlayerCreated():
            return "arrival", f"{name} appears, new to the world."
        case PlayerRespawned():
            return "arrival", f"{name} awakens here, whole again."
        case ItemPickedUp(item=item):
            return "item", f"{name} takes the {world.items[item.item_key].name}."
        case ItemPutDown(item=item):
            return "item", f"{name} drops the {world.items[item.item_key].name}."
        case MonsterHit(monster_key=key, damage=damage, health_left=left):
            monster = world.monsters[key].name
            return "fight", f"{name} hits the {monster} for {damage} ({left} health left)."
        case MonsterDefeated(monster_key=key):
            return "fight", f"{name} defeats the {world.monsters[key].name}!"
        case DamageTaken(amount=amount, monster_key=key) if amount > 0:
            return "fight", f"The {world.monsters[key].name} hits {name} for {amount} damage."
        case PlayerDied(killed_by=killer):
            return "death", f"{name} is slain by the {world.monsters[killer].name}."
        case PlayerSaid(text=text):
            return "speech", f'{name} says: "{text}"'
    return None
