"""The Game end to end on memory stores: commands append the right events to the right streams."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Final

import pytest
from msgspec.structs import replace

from adventure_quest.app.aggregates import event_codec, player_id_for
from adventure_quest.app.game import Game
from adventure_quest.app.repository import Repository
from adventure_quest.app.world_loader import load_world
from adventure_quest.domain.errors import DomainError
from adventure_quest.domain.events import (
    DamageTaken,
    Event,
    HeldItem,
    ItemDropped,
    ItemPickedUp,
    ItemPutDown,
    ItemTaken,
    ItemUsed,
    MonsterDefeated,
    MonsterHit,
    PlayerCreated,
    PlayerDied,
    PlayerMoved,
    PlayerRespawned,
    PlayerSaid,
    XpGained,
)
from adventure_quest.domain.player import PlayerState
from adventure_quest.domain.world import World
from adventure_quest.store.memory import MemoryEventStore, MemorySnapshotStore
from adventure_quest.store.ports import EventStore

WORLD: Final = load_world()
START: Final = WORLD.start_room
TORCH: Final = HeldItem("village_square.torch.0", "torch")
#: The way from the village square to the cave troll of the glowing grotto.
TO_THE_TROLL: Final = ("n", "n", "n", "n", "n", "n", "n", "d", "e")


def new_game(*, roll: int = 0, world: World = WORLD, store: EventStore | None = None) -> Game:
    """A game on fresh memory stores (or on ``store``) whose every roll is ``roll``."""
    repository = Repository(store or MemoryEventStore(), MemorySnapshotStore(), event_codec())
    return Game(repository, world, roll=lambda: roll)


def with_player_rules(*, max_items: int = 10, max_weight: int = 25) -> World:
    return replace(WORLD, player=replace(WORLD.player, max_items=max_items, max_weight=max_weight))


async def stored(game: Game, stream_id: str) -> list[Event]:
    """Every event on a stream, decoded."""
    recorded = await game.repository.store.read_stream(stream_id)
    return [game.repository.codec.decode(event) for event in recorded]


async def stored_kinds(game: Game, stream_id: str) -> list[str]:
    return [type(event).__name__ for event in await stored(game, stream_id)]


async def joined(game: Game, name: str = "Alice") -> str:
    """Create a character and return its id."""
    return (await game.create_character(name)).player.player_id


async def walk(game: Game, player_id: str, *directions: str) -> PlayerState:
    for direction in directions:
        await game.move(player_id, direction)
    return await game.player(player_id)


async def refusal(command: Awaitable[object]) -> str:
    """The code of the DomainError the command raises (fails the test if it raises none)."""
    with pytest.raises(DomainError) as caught:
        await command
    return caught.value.code


# -- characters ------------------------------------------------------------------------------


async def test_creating_a_character_records_it_on_its_own_stream() -> None:
    game = new_game()
    outcome = await game.create_character("  Alice ")
    player_id = player_id_for("Alice")
    assert outcome.player.player_id == player_id
    assert outcome.events == [PlayerCreated(player_id, "Alice", START, 100, 100)]
    assert await stored(game, f"player-{player_id}") == outcome.events
    assert await game.repository.store.logs()[0].head() == 1


async def test_a_character_is_resumed_from_the_store_by_a_new_game() -> None:
    store = MemoryEventStore()
    first = new_game(store=store)
    player_id = await joined(first)
    await first.move(player_id, "north")
    resumed = await new_game(store=store).player(player_id)
    assert resumed == await first.player(player_id)
    assert (resumed.name, resumed.room) == ("Alice", "market_street")


@pytest.mark.parametrize("other", ["Alice", "alice", "ALICE", "  alice  "])
async def test_a_name_is_taken_whatever_its_case_or_spacing(other: str) -> None:
    game = new_game()
    player_id = await joined(game, "Alice")
    assert await refusal(game.create_character(other)) == "name_taken"
    assert await stored_kinds(game, f"player-{player_id}") == ["PlayerCreated"]
    assert (await game.player(player_id)).name == "Alice"


async def test_two_characters_created_at_once_under_one_name_exist_once() -> None:
    game = new_game()
    results = await asyncio.gather(
        game.create_character("Bob"), game.create_character("bob"), return_exceptions=True
    )
    codes = [r.code for r in results if isinstance(r, DomainError)]
    assert codes == ["name_taken"]
    assert await stored_kinds(game, f"player-{player_id_for('bob')}") == ["PlayerCreated"]


async def test_an_invalid_name_writes_nothing() -> None:
    game = new_game()
    assert await refusal(game.create_character("x" * 33)) == "invalid_name"
    assert await refusal(game.create_character("")) == "invalid_name"
    assert await game.repository.store.logs()[0].head() == 0


async def test_commands_for_a_character_that_does_not_exist_are_refused() -> None:
    game = new_game()
    ghost = player_id_for("nobody")
    commands: list[Callable[[], Awaitable[object]]] = [
        lambda: game.player(ghost),
        lambda: game.move(ghost, "n"),
        lambda: game.take(ghost, "torch"),
        lambda: game.attack(ghost, "rat"),
        lambda: game.respawn(ghost),
    ]
    for command in commands:
        assert await refusal(command()) == "player_not_found"
    assert await game.repository.store.logs()[0].head() == 0


# -- moving and talking ----------------------------------------------------------------------


async def test_moving_appends_player_moved_to_the_player_stream_only() -> None:
    game = new_game()
    player_id = await joined(game)
    outcome = await game.move(player_id, "n")
    assert outcome.events == [PlayerMoved(START, "market_street", "north")]
    assert outcome.player.room == "market_street"
    assert await stored_kinds(game, f"player-{player_id}") == ["PlayerCreated", "PlayerMoved"]
    assert await game.repository.store.logs()[0].head() == 2


async def test_a_refused_move_writes_nothing() -> None:
    game = new_game()
    player_id = await joined(game)
    assert await refusal(game.move(player_id, "up")) == "no_exit"
    assert await refusal(game.move(player_id, "sideways")) == "unknown_direction"
    assert (await game.player(player_id)).room == START
    assert await game.repository.store.logs()[0].head() == 1


async def test_saying_something_is_recorded_in_the_speakers_room() -> None:
    game = new_game()
    player_id = await joined(game)
    await game.move(player_id, "w")
    outcome = await game.say(player_id, "  a round for   everyone ")
    assert outcome.events == [PlayerSaid("rusty_tankard_inn", "a round for everyone")]
    assert (await stored(game, f"player-{player_id}"))[-1] == outcome.events[0]
    assert await refusal(game.say(player_id, "   ")) == "invalid_text"


# -- items -----------------------------------------------------------------------------------


async def test_taking_an_item_moves_it_from_the_room_stream_to_the_player_stream() -> None:
    game = new_game()
    player_id = await joined(game)
    outcome = await game.take(player_id, "torch")
    picked, taken = outcome.events
    assert isinstance(picked, ItemPickedUp)
    assert picked == ItemPickedUp(TORCH, player_id, picked.handover_id)
    assert taken == ItemTaken(TORCH, START, picked.handover_id)
    assert await stored(game, f"room-{START}") == [picked]
    assert (await stored(game, f"player-{player_id}"))[-1] == taken
    assert outcome.player.inventory == (TORCH,)
    assert (await game.room(START)).items == ()


async def test_dropping_an_item_moves_it_from_the_player_stream_to_the_rooms() -> None:
    game = new_game()
    player_id = await joined(game)
    await game.take(player_id, "torch")
    await game.move(player_id, "n")
    outcome = await game.drop(player_id, "torch")
    dropped, put_down = outcome.events
    assert isinstance(dropped, ItemDropped)
    assert dropped == ItemDropped(TORCH, "market_street", dropped.handover_id)
    assert put_down == ItemPutDown(TORCH, player_id, dropped.handover_id)
    assert (await stored(game, f"player-{player_id}"))[-1] == dropped
    assert await stored(game, "room-market_street") == [put_down]
    assert outcome.player.inventory == ()
    assert [i.item_key for i in (await game.room("market_street")).items] == [
        "coil_of_rope",
        "torch",
    ]
    assert (await game.room(START)).items == ()


async def test_taking_or_dropping_what_is_not_there_is_refused_and_writes_nothing() -> None:
    game = new_game()
    player_id = await joined(game)
    assert await refusal(game.take(player_id, "sword")) == "item_not_here"
    assert await refusal(game.drop(player_id, "torch")) == "item_not_carried"
    assert await game.repository.store.logs()[0].head() == 1


@pytest.mark.parametrize(
    "world",
    [
        pytest.param(with_player_rules(max_weight=8), id="by-weight"),
        pytest.param(with_player_rules(max_items=1), id="by-count"),
    ],
)
async def test_a_take_refused_for_a_full_inventory_leaves_the_item_in_the_room(
    world: World,
) -> None:
    game = new_game(world=world)
    player_id = await joined(game)
    await game.move(player_id, "e")
    await game.take(player_id, "sword")  # weight 4
    assert await refusal(game.take(player_id, "armor")) == "inventory_full"  # weight 5
    forge = await game.room("blacksmith_forge")
    assert [i.item_key for i in forge.items] == ["leather_armor"]
    assert await stored_kinds(game, "room-blacksmith_forge") == ["ItemPickedUp"]
    held = (await game.player(player_id)).inventory
    assert [i.item_key for i in held] == ["rusty_sword"]


async def test_using_a_potion_uses_it_up() -> None:
    game = new_game()
    player_id = await joined(game)
    await game.move(player_id, "w")
    await game.take(player_id, "vial")
    outcome = await game.use(player_id, "vial")
    vial = HeldItem("rusty_tankard_inn.small_healing_potion.0", "small_healing_potion")
    assert outcome.events == [ItemUsed(vial, 0)]  # already at full health
    assert (await stored(game, f"player-{player_id}"))[-1] == outcome.events[0]
    assert outcome.player.inventory == ()
    assert await refusal(game.use(player_id, "vial")) == "item_not_carried"


async def test_a_wounded_character_who_drinks_a_potion_gets_better() -> None:
    game = new_game(roll=16)  # the rat answers each blow with 4 damage
    player_id = await joined(game)
    await walk(game, player_id, "w")
    await game.take(player_id, "vial")
    await walk(game, player_id, "e", "s", "d")
    wounded = (await game.attack(player_id, "rat")).player
    assert wounded.health == 96
    outcome = await game.use(player_id, "vial")
    vial = HeldItem("rusty_tankard_inn.small_healing_potion.0", "small_healing_potion")
    assert outcome.events == [ItemUsed(vial, 4)]
    assert outcome.player.health == 100


# -- fights ----------------------------------------------------------------------------------


async def test_killing_a_rat_in_the_crypt_earns_xp_and_leaves_its_tail_on_the_floor() -> None:
    game = new_game(roll=0)  # blows of 4; a rat (8 health) answers with 2 - 2 = 0
    player_id = await joined(game)
    await walk(game, player_id, "s", "d")
    first = await game.attack(player_id, "rat")
    hit = first.events[0]
    assert isinstance(hit, MonsterHit)
    assert (hit.damage, hit.health_left, hit.counter_damage) == (4, 4, 0)
    assert first.events[1:] == [DamageTaken(0, "giant_rat", "chapel_crypt", hit.handover_id)]

    second = await game.attack(player_id, "rat")
    tail = HeldItem("chapel_crypt.giant_rat.0.loot.0", "rat_tail")
    _, defeated, gained = second.events
    assert isinstance(defeated, MonsterDefeated)
    assert (defeated.xp, defeated.loot) == (10, [tail])
    assert gained == XpGained(10, "giant_rat", defeated.handover_id)
    assert (second.player.xp, second.player.kills, second.player.level) == (10, 1, 1)

    assert await stored_kinds(game, "room-chapel_crypt") == [
        "MonsterHit",
        "MonsterHit",
        "MonsterDefeated",
    ]
    assert (await stored_kinds(game, f"player-{player_id}"))[-2:] == [
        "DamageTaken",
        "XpGained",
    ]
    crypt = await game.room("chapel_crypt")
    assert crypt.items == (HeldItem("chapel_crypt.brass_key.0", "brass_key"), tail)
    assert [m.monster_id for m in crypt.monsters] == ["chapel_crypt.giant_rat.1"]
    assert (await game.take(player_id, "tail")).player.inventory == (tail,)


async def test_attacking_a_monster_that_is_not_here_is_refused_and_writes_nothing() -> None:
    game = new_game()
    player_id = await joined(game)
    assert await refusal(game.attack(player_id, "rat")) == "monster_not_here"
    assert await game.repository.store.logs()[0].head() == 1


async def test_a_character_killed_by_the_troll_respawns_in_the_village() -> None:
    game = new_game(roll=16)  # blows of 4; the troll answers with 12 + 2 = 14
    player_id = await joined(game)
    assert (await walk(game, player_id, *TO_THE_TROLL)).room == "glowing_grotto"
    blows = 0
    while (await game.player(player_id)).alive:
        outcome = await game.attack(player_id, "troll")
        blows += 1
    assert blows == 8  # 7 * 14 = 98 < 100 <= 8 * 14
    assert outcome.events[-1] == PlayerDied("glowing_grotto", "cave_troll")
    assert (await stored(game, f"player-{player_id}"))[-1] == outcome.events[-1]
    corpse = await game.player(player_id)
    assert (corpse.alive, corpse.health, corpse.deaths) == (False, 0, 1)

    commands: list[Callable[[], Awaitable[object]]] = [
        lambda: game.attack(player_id, "troll"),
        lambda: game.move(player_id, "w"),
        lambda: game.take(player_id, "ruby"),
        lambda: game.drop(player_id, "anything"),
        lambda: game.use(player_id, "anything"),
        lambda: game.say(player_id, "help"),
    ]
    for command in commands:
        assert await refusal(command()) == "player_dead"

    outcome = await game.respawn(player_id)
    assert outcome.events == [PlayerRespawned(START, 100)]
    assert (outcome.player.alive, outcome.player.room, outcome.player.health) == (
        True,
        START,
        100,
    )
    assert await refusal(game.respawn(player_id)) == "not_dead"
    troll = (await game.room("glowing_grotto")).monsters[0]
    assert troll.health == 100 - 8 * 4
