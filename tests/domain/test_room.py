"""The Room aggregate's rules: what lies on the floor, who takes it, and fights with monsters."""

from __future__ import annotations

from collections.abc import Callable
from typing import Final

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from adventure_quest.app.world_loader import load_world
from adventure_quest.domain import room
from adventure_quest.domain.errors import DomainError
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
from adventure_quest.domain.room import MonsterState, RoomState

WORLD: Final = load_world()
RAT_0: Final = "chapel_crypt.giant_rat.0"
RAT_1: Final = "chapel_crypt.giant_rat.1"


def crypt() -> RoomState:
    """The chapel crypt as the world lays it out: a brass key and two giant rats."""
    return room.initial_state(WORLD, "chapel_crypt")


def after(state: RoomState, events: list[Event]) -> RoomState:
    for event in events:
        state = room.evolve(state, event)
    return state


def strike(
    state: RoomState,
    words: str = "rat",
    *,
    damage: int = 4,
    defense: int = 0,
    roll: int = 0,
    handover_id: str = "fight-1",
) -> list[Event]:
    return room.fight(
        state,
        words,
        player_id="p1",
        damage=damage,
        defense=defense,
        roll=roll,
        handover_id=handover_id,
        world=WORLD,
    )


def refusal(action: Callable[[], object]) -> str:
    """The code of the DomainError ``action`` raises (fails the test if it raises none)."""
    with pytest.raises(DomainError) as caught:
        action()
    return caught.value.code


# -- the initial state -----------------------------------------------------------------------


def test_a_room_starts_with_the_items_and_monsters_of_the_world_file() -> None:
    assert crypt() == RoomState(
        "chapel_crypt",
        (HeldItem("chapel_crypt.brass_key.0", "brass_key"),),
        (MonsterState(RAT_0, "giant_rat", 8), MonsterState(RAT_1, "giant_rat", 8)),
    )


def test_alike_items_in_one_room_get_distinct_ids() -> None:
    glade = room.initial_state(WORLD, "mossy_glade")
    assert [item.item_id for item in glade.items] == [
        "mossy_glade.healing_herb.0",
        "mossy_glade.healing_herb.1",
    ]


def test_initial_ids_are_the_same_every_time_and_unique_across_the_world() -> None:
    def every_id() -> list[str]:
        states = [room.initial_state(WORLD, key) for key in WORLD.rooms]
        return [i.item_id for s in states for i in s.items] + [
            m.monster_id for s in states for m in s.monsters
        ]

    ids = every_id()
    assert ids == every_id()
    assert len(ids) == len(set(ids))


def test_a_room_that_is_not_in_the_world_does_not_exist() -> None:
    assert refusal(lambda: room.initial_state(WORLD, "narnia")) == "room_not_found"


# -- items -----------------------------------------------------------------------------------


def test_handing_over_an_item_gives_it_to_the_player_and_takes_it_off_the_floor() -> None:
    key = crypt().items[0]
    events = room.hand_over_item(crypt(), "key", "p1", "h1", WORLD)
    assert events == [ItemPickedUp(key, "p1", "h1")]
    assert after(crypt(), events).items == ()


def test_an_item_handed_over_is_no_longer_there_to_hand_over() -> None:
    emptied = after(crypt(), room.hand_over_item(crypt(), "brass key", "p1", "h1", WORLD))
    assert refusal(lambda: room.hand_over_item(emptied, "key", "p2", "h2", WORLD)) == (
        "item_not_here"
    )


def test_alike_items_are_handed_over_first_come_first_served() -> None:
    glade = room.initial_state(WORLD, "mossy_glade")
    first = room.hand_over_item(glade, "herb", "p1", "h1", WORLD)
    second = room.hand_over_item(after(glade, first), "herb", "p2", "h2", WORLD)
    assert [e.item.item_id for e in first + second if isinstance(e, ItemPickedUp)] == [
        "mossy_glade.healing_herb.0",
        "mossy_glade.healing_herb.1",
    ]


@pytest.mark.parametrize("words", ["sword", "rat", "", "keys"])
def test_asking_for_something_not_on_the_floor_is_refused(words: str) -> None:
    assert refusal(lambda: room.hand_over_item(crypt(), words, "p1", "h1", WORLD)) == (
        "item_not_here"
    )
    assert refusal(lambda: room.find_item_key(crypt(), words, WORLD)) == "item_not_here"


def test_find_item_key_names_the_kind_of_the_item_on_the_floor() -> None:
    assert room.find_item_key(crypt(), "Brass Key", WORLD) == "brass_key"


def test_a_received_item_lands_on_the_floor() -> None:
    torch = HeldItem("village_square.torch.0", "torch")
    events = room.receive_item(crypt(), torch, "p1", "h1")
    assert events == [ItemPutDown(torch, "p1", "h1")]
    assert after(crypt(), events).items == (*crypt().items, torch)


def test_receiving_the_same_hand_over_twice_lands_the_item_once() -> None:
    torch = HeldItem("village_square.torch.0", "torch")
    landed = after(crypt(), room.receive_item(crypt(), torch, "p1", "h1"))
    assert room.receive_item(landed, torch, "p1", "h1") == []
    assert room.receive_item(landed, torch, "p1", "h2") == [ItemPutDown(torch, "p1", "h2")]


# -- restocking ------------------------------------------------------------------------------

KEY_0: Final = "chapel_crypt.brass_key.0"


def plundered() -> RoomState:
    """The crypt after a player killed the first rat (its tail on the floor) and took the key."""
    state = after(crypt(), strike(crypt(), damage=8))
    state = after(state, room.hand_over_item(state, "key", "p1", "h1", WORLD))
    assert [m.monster_id for m in state.monsters] == [RAT_1]
    assert [i.item_id for i in state.items] == [f"{RAT_0}.loot.0"]
    return state


def test_a_restock_brings_back_the_missing_monster_and_item_as_a_new_generation() -> None:
    assert room.restock(plundered(), 5, WORLD) == [
        RoomRestocked(
            5,
            [MonsterSpawn(f"{RAT_0}@5", "giant_rat", 8)],
            [HeldItem(f"{KEY_0}@5", "brass_key")],
        )
    ]


def test_a_restock_puts_them_in_the_room_and_records_its_tick() -> None:
    restocked = after(plundered(), room.restock(plundered(), 5, WORLD))
    assert restocked.last_tick == 5
    assert restocked.monsters == (
        MonsterState(RAT_1, "giant_rat", 8),
        MonsterState(f"{RAT_0}@5", "giant_rat", 8),
    )
    assert [i.item_id for i in restocked.items] == [f"{RAT_0}.loot.0", f"{KEY_0}@5"]


@pytest.mark.parametrize("tick", [1, 4, 5])
def test_a_tick_at_or_before_the_last_restock_restocks_nothing_even_if_something_is_missing(
    tick: int,
) -> None:
    """A tick delivered twice must not respawn twice what died again in between."""
    restocked = after(plundered(), room.restock(plundered(), 5, WORLD))
    # The other rat is killed and the new key taken: both are missing now.
    state = after(restocked, strike(restocked, damage=8, handover_id="fight-2"))
    state = after(state, room.hand_over_item(state, "key", "p1", "h2", WORLD))
    assert [m.monster_id for m in state.monsters] == [f"{RAT_0}@5"]
    assert not any(i.item_key == "brass_key" for i in state.items)
    assert room.restock(state, tick, WORLD) == []
    assert room.restock(state, 6, WORLD) == [
        RoomRestocked(
            6,
            [MonsterSpawn(f"{RAT_1}@6", "giant_rat", 8)],
            [HeldItem(f"{KEY_0}@6", "brass_key")],
        )
    ]


def test_a_respawned_instance_fills_its_slot_so_the_next_tick_restocks_nothing() -> None:
    restocked = after(plundered(), room.restock(plundered(), 5, WORLD))
    assert room.restock(restocked, 6, WORLD) == []
    assert room.restock(restocked, 1_000, WORLD) == []


def test_a_respawned_item_taken_again_comes_back_under_its_slot_and_the_new_tick() -> None:
    restocked = after(plundered(), room.restock(plundered(), 5, WORLD))
    taken = room.hand_over_item(restocked, "key", "p2", "h2", WORLD)
    assert taken == [ItemPickedUp(HeldItem(f"{KEY_0}@5", "brass_key"), "p2", "h2")]
    assert room.restock(after(restocked, taken), 6, WORLD) == [
        RoomRestocked(6, [], [HeldItem(f"{KEY_0}@6", "brass_key")])
    ]


def test_a_respawned_monster_killed_again_comes_back_even_while_its_loot_lies_there() -> None:
    restocked = after(plundered(), room.restock(plundered(), 5, WORLD))
    state = after(restocked, strike(restocked, damage=8, handover_id="fight-2"))
    state = after(state, strike(state, damage=8, handover_id="fight-3"))
    assert state.monsters == ()
    assert f"{RAT_0}@5.loot.0" in [i.item_id for i in state.items]
    (later,) = room.restock(state, 6, WORLD)
    assert isinstance(later, RoomRestocked)
    # The first generation's rat came back with its tail on the floor; so must the second's.
    assert [m.monster_id for m in later.monsters] == [f"{RAT_0}@6", f"{RAT_1}@6"]


@settings(max_examples=200, deadline=None)
@given(st.sampled_from(sorted(WORLD.rooms)), st.integers(1, 10**9), st.integers(0, 10**9))
def test_a_room_with_nothing_missing_restocks_nothing_whatever_the_tick(
    room_key: str, tick: int, last_tick: int
) -> None:
    state = room.initial_state(WORLD, room_key)
    assert room.restock(state, tick, WORLD) == []
    assert room.restock(msgspec.structs.replace(state, last_tick=last_tick), tick, WORLD) == []


# -- fights ----------------------------------------------------------------------------------


@pytest.mark.parametrize("words", ["dragon", "key", ""])
def test_fighting_a_monster_that_is_not_here_is_refused(words: str) -> None:
    assert refusal(lambda: strike(crypt(), words)) == "monster_not_here"


def test_there_is_nothing_to_fight_in_the_village_square() -> None:
    square = room.initial_state(WORLD, "village_square")
    assert refusal(lambda: strike(square, "rat")) == "monster_not_here"


@pytest.mark.parametrize(
    ("roll", "defense", "blow", "counter"),
    [
        (0, 0, 4, 5),  # goblin damage 7, answer -2
        (16, 0, 4, 9),  # (16 // 4) % 5 = 4: answer +2
        (7, 0, 7, 6),  # 7 % 4 = 3 added to the blow; (7 // 4) % 5 = 1: answer -1
        (0, 3, 4, 2),  # defense takes off the answer
        (0, 50, 4, 0),  # but never below zero
    ],
)
def test_a_monster_that_survives_a_blow_strikes_back(
    roll: int, defense: int, blow: int, counter: int
) -> None:
    hillside = room.initial_state(WORLD, "hillside_path")
    events = strike(hillside, "goblin", roll=roll, defense=defense)
    assert events == [
        MonsterHit("hillside_path.goblin.0", "goblin", "p1", blow, 35 - blow, counter, "fight-1")
    ]
    assert after(hillside, events).monsters[0].health == 35 - blow


def test_a_monster_keeps_its_wounds_between_blows() -> None:
    wounded = after(crypt(), strike(crypt()))
    assert [m.health for m in wounded.monsters] == [4, 8]
    finishing = strike(wounded, handover_id="fight-2")
    assert [type(e) for e in finishing] == [MonsterHit, MonsterDefeated]


def test_a_defeated_monster_leaves_its_loot_on_the_floor_and_its_xp_to_the_player() -> None:
    events = strike(crypt(), damage=8)
    tail = HeldItem(f"{RAT_0}.loot.0", "rat_tail")
    assert events == [
        MonsterHit(RAT_0, "giant_rat", "p1", 8, 0, 0, "fight-1"),
        MonsterDefeated(RAT_0, "giant_rat", "p1", 10, [tail], "fight-1"),
    ]
    state = after(crypt(), events)
    assert [m.monster_id for m in state.monsters] == [RAT_1]
    assert state.items == (*crypt().items, tail)


def test_loot_of_alike_monsters_gets_distinct_stable_ids() -> None:
    one_dead = after(crypt(), strike(crypt(), damage=8))
    both_dead = after(one_dead, strike(one_dead, damage=8, handover_id="fight-2"))
    assert [i.item_id for i in both_dead.items] == [
        "chapel_crypt.brass_key.0",
        f"{RAT_0}.loot.0",
        f"{RAT_1}.loot.0",
    ]
    assert both_dead.monsters == ()


def test_a_monster_with_several_loot_items_drops_them_all_in_order() -> None:
    camp = room.initial_state(WORLD, "hunters_camp")
    defeated = strike(camp, "bandit", damage=30)[-1]
    assert isinstance(defeated, MonsterDefeated)
    assert defeated.loot == [
        HeldItem("hunters_camp.forest_bandit.0.loot.0", "gold_coin"),
        HeldItem("hunters_camp.forest_bandit.0.loot.1", "small_healing_potion"),
    ]


@settings(max_examples=300, deadline=None)
@given(
    st.sampled_from(sorted(key for key, r in WORLD.rooms.items() if r.monsters)),
    st.integers(0, 2**16 - 1),
    st.integers(0, 40),
    st.integers(0, 10),
)
def test_a_fight_follows_from_its_roll_and_stays_within_its_bounds(
    room_key: str, roll: int, damage: int, defense: int
) -> None:
    state = room.initial_state(WORLD, room_key)
    monster = state.monsters[0]
    kind = WORLD.monsters[monster.monster_key]
    events = strike(state, monster.monster_key, damage=damage, defense=defense, roll=roll)
    assert events == strike(state, monster.monster_key, damage=damage, defense=defense, roll=roll)
    hit = events[0]
    assert isinstance(hit, MonsterHit)
    assert damage <= hit.damage <= damage + 3
    assert hit.health_left == max(monster.health - hit.damage, 0)
    if hit.health_left == 0:
        assert hit.counter_damage == 0
        assert [type(e) for e in events] == [MonsterHit, MonsterDefeated]
    else:
        low, high = kind.damage - 2 - defense, kind.damage + 2 - defense
        assert max(low, 0) <= hit.counter_damage <= max(high, 0)
        assert len(events) == 1


# -- what the player reads when refused, and the state events alone leave ----------------------


@pytest.mark.parametrize(
    ("action", "code", "message"),
    [
        (
            lambda: room.initial_state(WORLD, "nowhere"),
            "room_not_found",
            "There is no room 'nowhere'.",
        ),
        (
            lambda: room.hand_over_item(crypt(), " banana ", "p1", "h-1", WORLD),
            "item_not_here",
            "There is no 'banana' here.",
        ),
        (
            lambda: room.find_item_key(crypt(), " banana ", WORLD),
            "item_not_here",
            "There is no 'banana' here.",
        ),
        (
            lambda: strike(crypt(), " dragon "),
            "monster_not_here",
            "There is no 'dragon' to fight here.",
        ),
    ],
)
def test_each_refusal_tells_the_player_why_in_words(
    action: Callable[[], object], code: str, message: str
) -> None:
    with pytest.raises(DomainError) as caught:
        action()
    assert (caught.value.code, caught.value.message) == (code, message)


def test_a_hand_over_settled_on_the_room_is_not_received_again() -> None:
    state = after(crypt(), [HandoverSettled("h-7", "nothing to return")])
    assert state.recent_handovers[-1] == "h-7"
    assert (state.items, state.monsters) == (crypt().items, crypt().monsters)
    assert room.receive_item(state, HeldItem("x.torch.0", "torch"), "p1", "h-7") == []
    assert room.receive_item(state, HeldItem("x.torch.0", "torch"), "p1", "h-8") != []


def test_a_removed_duplicate_takes_one_copy_off_the_floor_and_keeps_the_order() -> None:
    torch, coin = HeldItem("x.torch.0", "torch"), HeldItem("x.gold_coin.0", "gold_coin")
    state = after(
        crypt(), [ItemPutDown(item, "p1", f"h-{n}") for n, item in enumerate([torch, coin, torch])]
    )
    floor = state.items
    removed = after(state, [DuplicateRemoved(torch, "repair")])
    at = floor.index(torch)
    assert removed.items == (*floor[:at], *floor[at + 1 :])
    assert removed.items.count(torch) == 1
    assert after(removed, [DuplicateRemoved(coin, "repair")]).items.count(coin) == 0
    assert removed.recent_handovers == state.recent_handovers
