"""Achievement rules, checked on pure states: each rule, and unlocking exactly once."""

from __future__ import annotations

from collections import Counter
from typing import Final

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from msgspec.structs import replace

from adventure_quest.app.world_loader import load_world
from adventure_quest.domain import achievements, player
from adventure_quest.domain.achievements import ACHIEVEMENTS, earned, unlock
from adventure_quest.domain.errors import DomainError
from adventure_quest.domain.events import (
    AchievementUnlocked,
    DamageTaken,
    Event,
    HeldItem,
    ItemDropped,
    PlayerMoved,
)
from adventure_quest.domain.player import PlayerState, evolve_all
from adventure_quest.domain.world import World

WORLD: Final = load_world()
START: Final = WORLD.start_room
#: Ten different rooms from the village square, with two visited twice on the way.
TEN_ROOMS: Final = ("n", "n", "n", "e", "w", "w", "e", "n", "w", "e", "n", "n")
#: Light enough that eight fit under the weight limit.
LIGHT_ITEM: Final = min(WORLD.items, key=lambda key: WORLD.items[key].weight)


def created() -> PlayerState:
    nobody = PlayerState()
    return evolve_all(nobody, player.create(nobody, "p1", "Alice", WORLD))


def walked(directions: tuple[str, ...], state: PlayerState | None = None) -> PlayerState:
    state = created() if state is None else state
    for direction in directions:
        state = evolve_all(state, player.move(state, direction, WORLD))
    return state


def taken(count: int, state: PlayerState | None = None, first: int = 0) -> PlayerState:
    state = created() if state is None else state
    for n in range(first, first + count):
        item = HeldItem(f"test.{n}", LIGHT_ITEM)
        state = evolve_all(state, player.receive_item(state, item, START, f"take-{n}", WORLD))
    return state


def dropped_all(state: PlayerState) -> PlayerState:
    return evolve_all(state, [ItemDropped(i, START, f"drop-{i.item_id}") for i in state.inventory])


def fought(
    state: PlayerState, *, xp: int = 0, counter_damage: int = 0, handover_id: str = "fight"
) -> PlayerState:
    return evolve_all(
        state,
        player.take_fight_outcome(
            state,
            counter_damage=counter_damage,
            xp=xp,
            monster_key="giant_rat",
            handover_id=handover_id,
            world=WORLD,
        ),
    )


def keys(state: PlayerState, world: World = WORLD) -> list[str]:
    """The keys of the achievements ``state`` has earned and not unlocked yet."""
    return [event.achievement for event in earned(state, world)]


# -- each rule -------------------------------------------------------------------------------


def test_a_new_character_has_earned_nothing() -> None:
    assert keys(created()) == []


def test_a_character_that_does_not_exist_earns_nothing_whatever_its_counters() -> None:
    assert keys(replace(PlayerState(), kills=3, level=5, respawns=1)) == []


def test_defeating_a_first_monster_earns_first_blood() -> None:
    assert keys(fought(created(), xp=10)) == ["first_blood"]


def test_being_struck_without_defeating_anything_earns_nothing() -> None:
    assert keys(fought(created(), counter_damage=5)) == []


def test_visiting_ten_different_rooms_earns_explorer() -> None:
    assert keys(walked(TEN_ROOMS[:-1])) == []
    assert keys(walked(TEN_ROOMS)) == ["explorer"]


def test_walking_back_and_forth_between_two_rooms_counts_them_once() -> None:
    state = walked(("n", "s") * 20)
    assert state.rooms_visited == (START, "market_street")
    assert keys(state) == []


def test_in_a_world_smaller_than_ten_rooms_visiting_every_room_earns_explorer() -> None:
    nearby = {key: WORLD.rooms[key] for key in (START, "market_street", "north_gate")}
    small = replace(WORLD, rooms=nearby)
    assert keys(walked(("n",)), small) == []
    assert keys(walked(("n", "n")), small) == ["explorer", "cartographer"]


def test_visiting_every_room_of_the_world_earns_cartographer() -> None:
    state = created()
    for room in WORLD.rooms:
        state = evolve_all(state, [PlayerMoved(state.room, room, "north")])
    assert "cartographer" in keys(state)
    assert "cartographer" not in keys(replace(state, rooms_visited=state.rooms_visited[:-1]))


def test_rooms_that_are_no_longer_in_the_world_do_not_count() -> None:
    state = replace(created(), rooms_visited=tuple(f"gone_{n}" for n in range(10)))
    assert keys(state) == []


def test_carrying_eight_items_at_once_earns_hoarder() -> None:
    assert keys(taken(7)) == []
    assert keys(taken(8)) == ["hoarder"]


def test_the_most_items_ever_carried_is_remembered_after_dropping_them() -> None:
    state = dropped_all(taken(8))
    assert (state.inventory, state.most_items_carried) == ((), 8)
    assert keys(state) == ["hoarder"]


def test_taking_twenty_items_over_time_earns_hoarder_without_carrying_eight() -> None:
    state = created()
    for batch in range(4):
        state = dropped_all(taken(5, state, first=5 * batch))
        assert keys(state) == ([] if batch < 3 else ["hoarder"])
    assert (state.items_taken, state.most_items_carried) == (20, 5)


def test_a_refused_take_is_not_an_item_taken() -> None:
    dead = fought(created(), counter_damage=10_000)
    refused = taken(1, dead)
    assert refused.items_taken == 0


def test_reaching_level_three_earns_its_milestone_and_level_five_the_next() -> None:
    assert keys(fought(created(), xp=100)) == ["first_blood"]
    assert keys(fought(created(), xp=250)) == ["first_blood", "level_3"]
    assert keys(fought(created(), xp=700)) == ["first_blood", "level_3", "level_5"]


def test_dying_alone_earns_nothing_but_coming_back_earns_survivor() -> None:
    dead = fought(created(), counter_damage=10_000)
    assert keys(dead) == []
    back = evolve_all(dead, player.respawn(dead, WORLD))
    assert keys(back) == ["survivor"]


def test_survivor_stays_earned_after_dying_again() -> None:
    dead = fought(created(), counter_damage=10_000)
    back = evolve_all(dead, player.respawn(dead, WORLD))
    dead_again = fought(back, counter_damage=10_000, handover_id="again")
    assert keys(dead_again) == ["survivor"]


@pytest.mark.parametrize(
    ("damage", "expected"),
    [
        (81, ["first_blood", "close_call"]),
        (80, ["first_blood"]),
    ],
)
def test_defeating_a_monster_below_a_fifth_of_health_earns_close_call(
    damage: int, expected: list[str]
) -> None:
    hurt = evolve_all(created(), [DamageTaken(damage, "giant_rat", START, "ouch")])
    assert keys(fought(hurt, xp=10)) == expected


def test_healing_after_a_close_call_keeps_it_earned() -> None:
    hurt = evolve_all(created(), [DamageTaken(90, "giant_rat", START, "ouch")])
    healed = replace(fought(hurt, xp=10), health=100)
    assert "close_call" in keys(healed)


def test_several_achievements_earned_together_come_in_the_catalogue_order() -> None:
    everything = replace(
        created(),
        kills=1,
        level=5,
        rooms_visited=tuple(WORLD.rooms),
        items_taken=20,
        respawns=1,
        close_call_kills=1,
    )
    assert keys(everything) == [a.key for a in ACHIEVEMENTS]


def test_the_catalogue_has_unique_keys_and_titles_and_at_least_five_achievements() -> None:
    assert len(ACHIEVEMENTS) >= 5
    assert len({a.key for a in ACHIEVEMENTS}) == len({a.title for a in ACHIEVEMENTS})
    assert len({a.key for a in ACHIEVEMENTS}) == len(ACHIEVEMENTS)


def test_an_unlock_carries_the_achievements_title() -> None:
    assert unlock(fought(created(), xp=10), WORLD) == [
        AchievementUnlocked("first_blood", achievements.BY_KEY["first_blood"].title)
    ]


# -- exactly once ----------------------------------------------------------------------------


def test_unlocking_twice_appends_nothing_the_second_time() -> None:
    state = fought(created(), xp=700)
    first = unlock(state, WORLD)
    assert len(first) == 3
    state = evolve_all(state, first)
    assert unlock(state, WORLD) == []
    assert state.achievements == ("first_blood", "level_3", "level_5")


def test_unlocking_later_adds_only_what_was_earned_since() -> None:
    state = fought(created(), xp=10)
    state = evolve_all(state, unlock(state, WORLD))
    state = fought(state, xp=300, handover_id="fight-2")
    assert [e.achievement for e in earned(state, WORLD)] == ["level_3"]


def test_a_duplicated_unlock_event_is_held_once() -> None:
    unlocked = AchievementUnlocked("first_blood", "First Blood")
    assert evolve_all(created(), [unlocked, unlocked]).achievements == ("first_blood",)


def test_achievement_counters_survive_a_snapshot_round_trip() -> None:
    state = fought(dropped_all(taken(8, walked(TEN_ROOMS))), xp=250)
    state = evolve_all(state, unlock(state, WORLD))
    encoded = msgspec.msgpack.encode(state)
    assert msgspec.msgpack.decode(encoded, type=PlayerState) == state


def test_a_state_stored_before_achievements_existed_still_decodes() -> None:
    old = {"player_id": "p1", "name": "Alice", "room": START, "health": 100, "max_health": 100}
    state = msgspec.convert(old, PlayerState)
    assert (state.achievements, state.rooms_visited, state.items_taken) == ((), (), 0)


# -- the invariant, over random play ---------------------------------------------------------

#: Room to carry a hoard, so the property reaches every rule.
ROOMY: Final = replace(WORLD, player=replace(WORLD.player, max_items=40, max_weight=1_000))
ITEM_KEYS: Final = sorted(WORLD.items)
ACTIONS: Final = ("move", "move", "move", "take", "take", "drop", "win", "hit", "use", "respawn")
Step = tuple[str, int, bool]


def decided(state: PlayerState, action: str, n: int, roll: int) -> list[Event]:
    """The events one random action decides; hand-over ids are unique per step ``n``."""
    match action:
        case "move":
            exits = sorted(ROOMY.rooms[state.room].exits)
            return player.move(state, exits[roll % len(exits)], ROOMY)
        case "take":
            item = HeldItem(f"i{n}", ITEM_KEYS[roll % len(ITEM_KEYS)])
            return player.receive_item(state, item, state.room, f"h{n}", ROOMY)
        case "drop" if state.inventory:
            item = state.inventory[roll % len(state.inventory)]
            return player.drop(state, item.item_key, f"h{n}", ROOMY)
        case "win" | "hit":
            return player.take_fight_outcome(
                state,
                counter_damage=roll % 70,
                xp=roll % 300 + 1 if action == "win" else 0,
                monster_key="goblin",
                handover_id=f"h{n}",
                world=ROOMY,
            )
        case "use":
            potions = [i for i in state.inventory if ROOMY.items[i.item_key].kind == "potion"]
            return player.use(state, potions[0].item_key, ROOMY) if potions else []
        case "respawn":
            return player.respawn(state, ROOMY)
    return []


def played(state: PlayerState, action: str, n: int, roll: int) -> list[Event]:
    """``decided``, with refused actions deciding nothing."""
    try:
        return decided(state, action, n, roll)
    except DomainError:
        return []


def holding_rules(state: PlayerState) -> set[str]:
    return {a.key for a in ACHIEVEMENTS if state.exists and a.rule(state, ROOMY)}


STEPS = st.lists(
    st.tuples(st.sampled_from(ACTIONS), st.integers(0, 2**16), st.booleans()), max_size=120
)


@settings(max_examples=300, deadline=None)
@given(STEPS)
def test_random_play_unlocks_each_achievement_once_and_exactly_when_its_rule_holds(
    steps: list[Step],
) -> None:
    """Unlocking after some steps only (a late achievements process) or after every one."""
    state = created()
    unlocks: Counter[str] = Counter()
    for n, (action, roll, check_now) in enumerate(steps):
        state = evolve_all(state, played(state, action, n, roll))
        if check_now or n == len(steps) - 1:
            new = unlock(state, ROOMY)
            unlocks.update(e.achievement for e in new if isinstance(e, AchievementUnlocked))
            state = evolve_all(state, new)
            assert set(state.achievements) == holding_rules(state)
            assert unlock(state, ROOMY) == []
    assert all(count == 1 for count in unlocks.values())
    assert set(unlocks) == set(state.achievements) == holding_rules(state)
    assert len(state.rooms_visited) == len(set(state.rooms_visited)) <= len(ROOMY.rooms)


@settings(max_examples=200, deadline=None)
@given(STEPS)
def test_a_rule_that_held_once_holds_on_every_later_state(steps: list[Step]) -> None:
    """Why a late or repeated check is safe: no rule can be un-earned by playing on."""
    state = created()
    held: set[str] = set()
    for n, (action, roll, _) in enumerate(steps):
        state = evolve_all(state, played(state, action, n, roll))
        now = holding_rules(state)
        assert held <= now
        held = now


@settings(max_examples=200, deadline=None)
@given(STEPS)
def test_a_late_check_of_each_past_state_unlocks_each_achievement_at_the_step_that_earned_it(
    steps: list[Step],
) -> None:
    """What a lagging achievements process does: the character is already at its last state."""
    history = [created()]
    for n, (action, roll, _) in enumerate(steps):
        history.append(evolve_all(history[-1], played(history[-1], action, n, roll)))
    state = history[-1]
    earned_at: list[tuple[str, int]] = []
    for step, then in enumerate(history):
        new = unlock(state, ROOMY, as_of=then)
        earned_at += [(e.achievement, step) for e in new if isinstance(e, AchievementUnlocked)]
        state = evolve_all(state, new)
    assert sorted(key for key, _ in earned_at) == sorted(holding_rules(state))
    assert set(state.achievements) == holding_rules(state)
    for key, step in earned_at:
        assert key in holding_rules(history[step])
        assert step == 0 or key not in holding_rules(history[step - 1])
