"""The Player aggregate's rules: each decision is checked on events alone, with no store."""

from __future__ import annotations

import unicodedata
from collections.abc import Callable
from typing import Final

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from msgspec.structs import replace

from adventure_quest.app.world_loader import load_world
from adventure_quest.domain import player
from adventure_quest.domain.errors import DomainError
from adventure_quest.domain.events import (
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
from adventure_quest.domain.player import PlayerState, evolve_all

WORLD: Final = load_world()
START: Final = WORLD.start_room
ITEM_KEYS: Final = sorted(WORLD.items)


def created(name: str = "Alice") -> PlayerState:
    """A fresh character in the start room."""
    nobody = PlayerState()
    return evolve_all(nobody, player.create(nobody, "p1", name, WORLD))


def holding(*keys: str, state: PlayerState | None = None) -> PlayerState:
    """A character (fresh unless given) that has been handed one instance of each key."""
    state = created() if state is None else state
    given_items: list[Event] = [
        ItemTaken(HeldItem(f"test.{key}.{n}", key), START, f"given-{n}")
        for n, key in enumerate(keys)
    ]
    return evolve_all(state, given_items)


def fight_outcome(
    state: PlayerState, *, counter_damage: int = 0, xp: int = 0, handover_id: str = "fight-1"
) -> list[Event]:
    return player.take_fight_outcome(
        state,
        counter_damage=counter_damage,
        xp=xp,
        monster_key="goblin",
        handover_id=handover_id,
        world=WORLD,
    )


def dead(state: PlayerState | None = None) -> PlayerState:
    """A character killed by a goblin (fresh unless given)."""
    state = created() if state is None else state
    return evolve_all(state, fight_outcome(state, counter_damage=10_000, handover_id="fatal"))


def refusal(action: Callable[[], object]) -> str:
    """The code of the DomainError ``action`` raises (fails the test if it raises none)."""
    with pytest.raises(DomainError) as caught:
        action()
    return caught.value.code


def refusal_text(action: Callable[[], object]) -> tuple[str, str]:
    """The code and the message (what the player reads) of the DomainError ``action`` raises."""
    with pytest.raises(DomainError) as caught:
        action()
    assert str(caught.value) == caught.value.message
    return caught.value.code, caught.value.message


# -- create ----------------------------------------------------------------------------------


def test_a_new_character_starts_in_the_start_room_at_full_health() -> None:
    events = player.create(PlayerState(), "p1", "Alice", WORLD)
    assert events == [PlayerCreated("p1", "Alice", START, 100, 100)]
    state = evolve_all(PlayerState(), events)
    assert (state.exists, state.alive, state.level, state.xp, state.inventory) == (
        True,
        True,
        1,
        0,
        (),
    )


def test_a_new_character_given_a_token_hash_records_it_right_after_its_creation() -> None:
    events = player.create(PlayerState(), "p1", "Alice", WORLD, token_hash="ab12" * 16)
    assert events == [PlayerCreated("p1", "Alice", START, 100, 100), TokenIssued("ab12" * 16)]
    assert evolve_all(PlayerState(), events).token_hash == "ab12" * 16


def test_a_new_character_without_a_token_hash_records_no_token() -> None:
    events = player.create(PlayerState(), "p1", "Alice", WORLD, token_hash="")
    assert events == [PlayerCreated("p1", "Alice", START, 100, 100)]
    assert evolve_all(PlayerState(), events).token_hash == ""


def test_a_token_issued_again_replaces_the_hash_and_nothing_else() -> None:
    state = holding("torch")
    reissued = player.evolve(state, TokenIssued("cd34" * 16))
    assert reissued == replace(state, token_hash="cd34" * 16)
    assert player.evolve(reissued, TokenIssued("ef56" * 16)).token_hash == "ef56" * 16


def test_a_name_is_trimmed_and_its_inner_whitespace_collapsed() -> None:
    assert created("  Sir   Robin  ").name == "Sir Robin"


def test_a_name_of_exactly_the_maximum_length_is_accepted() -> None:
    assert created("x" * player.MAX_NAME_LENGTH).name == "x" * 32


@pytest.mark.parametrize(
    "name",
    [
        "",
        "   ",
        "x" * 33,
        "Al\x00ice",
        "bell\x07",
        "\x1b[31mRed",
        "private\ue000",
        "unassigned\u0378",
    ],
)
def test_an_empty_too_long_or_control_character_name_is_invalid(name: str) -> None:
    assert refusal(lambda: player.create(PlayerState(), "p1", name, WORLD)) == "invalid_name"


def test_creating_a_character_that_exists_is_refused_as_name_taken() -> None:
    assert refusal(lambda: player.create(created(), "p1", "Alice", WORLD)) == "name_taken"


#: Control characters, private-use and unassigned code points are not plain text.
NOT_PLAIN: Final = ("Cc", "Cs", "Co", "Cn")
PLAIN_TEXT = st.text(st.characters(exclude_categories=NOT_PLAIN), min_size=1, max_size=40)


@settings(max_examples=200, deadline=None)
@given(PLAIN_TEXT.filter(lambda name: 0 < len(" ".join(name.split())) <= 32))
def test_any_plain_name_that_fits_is_accepted_trimmed(name: str) -> None:
    assert created(name).name == " ".join(name.split())


@settings(max_examples=200, deadline=None)
@given(
    PLAIN_TEXT,
    st.characters(categories=("Cc", "Co", "Cn")).filter(lambda ch: not ch.isspace()),
    PLAIN_TEXT,
)
def test_any_name_with_a_control_character_is_invalid(
    before: str, control: str, after: str
) -> None:
    assert unicodedata.category(control) in NOT_PLAIN
    name = before[:10] + control + after[:10]
    assert refusal(lambda: player.create(PlayerState(), "p1", name, WORLD)) == "invalid_name"


# -- move ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("words", "direction", "target"),
    [
        ("north", "north", "market_street"),
        ("n", "north", "market_street"),
        ("e", "east", "blacksmith_forge"),
        ("w", "west", "rusty_tankard_inn"),
        ("s", "south", "village_chapel"),
    ],
)
def test_moving_through_an_exit_takes_the_character_to_the_next_room(
    words: str, direction: str, target: str
) -> None:
    events = player.move(created(), words, WORLD)
    assert events == [PlayerMoved(START, target, direction)]
    assert evolve_all(created(), events).room == target


def test_a_diagonal_exit_is_reached_by_its_abbreviation() -> None:
    in_the_pines = replace(created(), room="whispering_pines")
    assert player.move(in_the_pines, "ne", WORLD) == [
        PlayerMoved("whispering_pines", "wolf_den", "northeast")
    ]


@pytest.mark.parametrize("words", ["up", "u", "southeast"])
def test_moving_where_the_room_has_no_exit_is_refused(words: str) -> None:
    assert refusal(lambda: player.move(created(), words, WORLD)) == "no_exit"


def test_the_no_exit_refusal_names_the_direction_in_full() -> None:
    assert refusal_text(lambda: player.move(created(), " U ", WORLD)) == (
        "no_exit",
        "You cannot go up from here.",
    )


@pytest.mark.parametrize("words", ["sideways", "", "nn", "forward"])
def test_moving_in_an_unknown_direction_is_refused(words: str) -> None:
    assert refusal(lambda: player.move(created(), words, WORLD)) == "unknown_direction"


# -- carrying --------------------------------------------------------------------------------


def test_a_character_may_carry_up_to_the_item_limit_and_no_more() -> None:
    nine_coins = holding(*["gold_coin"] * 9)
    player.check_can_carry(nine_coins, "gold_coin", WORLD)
    ten_coins = holding("gold_coin", state=nine_coins)
    assert refusal(lambda: player.check_can_carry(ten_coins, "gold_coin", WORLD)) == (
        "inventory_full"
    )


def test_a_character_may_carry_up_to_the_weight_limit_and_no_more() -> None:
    laden = holding("chain_mail", "battle_axe", "steel_longsword")  # 9 + 7 + 6 = 22 of 25
    assert player.carried_weight(laden, WORLD) == 22
    player.check_can_carry(laden, "coil_of_rope", WORLD)  # 3 more: exactly 25
    assert refusal(lambda: player.check_can_carry(laden, "rusty_sword", WORLD)) == (
        "inventory_full"
    )


def test_the_inventory_full_refusals_say_which_limit_was_reached() -> None:
    ten_coins = holding(*["gold_coin"] * 10)
    assert refusal_text(lambda: player.check_can_carry(ten_coins, "gold_coin", WORLD)) == (
        "inventory_full",
        "You cannot carry more than 10 items.",
    )
    laden = holding("chain_mail", "battle_axe", "steel_longsword")
    assert refusal_text(lambda: player.check_can_carry(laden, "rusty_sword", WORLD)) == (
        "inventory_full",
        "The rusty sword is too heavy: you can carry 25.",
    )


def test_receiving_an_item_that_fits_holds_it_and_remembers_the_hand_over() -> None:
    torch = HeldItem("village_square.torch.0", "torch")
    events = player.receive_item(created(), torch, START, "h1", WORLD)
    assert events == [ItemTaken(torch, START, "h1")]
    state = evolve_all(created(), events)
    assert state.inventory == (torch,)
    assert "h1" in state.recent_handovers


def test_receiving_the_same_hand_over_twice_holds_the_item_once() -> None:
    torch = HeldItem("village_square.torch.0", "torch")
    state = evolve_all(created(), player.receive_item(created(), torch, START, "h1", WORLD))
    assert state.inventory == (torch,)
    assert player.receive_item(state, torch, START, "h1", WORLD) == []


@pytest.mark.parametrize(
    "state",
    [
        pytest.param(holding(*["gold_coin"] * 10), id="too-many-items"),
        pytest.param(holding("chain_mail", "battle_axe", "steel_longsword"), id="too-heavy"),
        pytest.param(dead(), id="dead"),
    ],
)
def test_a_character_who_cannot_take_an_item_settles_the_hand_over_as_refused(
    state: PlayerState,
) -> None:
    sword = HeldItem("blacksmith_forge.rusty_sword.0", "rusty_sword")
    events = player.receive_item(state, sword, START, "h1", WORLD)
    assert len(events) == 1
    assert isinstance(events[0], HandoverSettled)
    assert events[0].handover_id == "h1"
    assert events[0].reason.startswith("refused")
    settled = evolve_all(state, events)
    assert sword not in settled.inventory
    assert player.receive_item(settled, sword, START, "h1", WORLD) == []


@settings(max_examples=100, deadline=None)
@given(st.lists(st.sampled_from(ITEM_KEYS), max_size=30))
def test_receiving_any_items_never_breaks_the_carrying_limits(keys: list[str]) -> None:
    """Each item is held exactly when it fits, and refused exactly when it does not."""
    state = created()
    for n, key in enumerate(keys):
        item = HeldItem(f"item-{n}", key)
        fits = (
            len(state.inventory) < WORLD.player.max_items
            and player.carried_weight(state, WORLD) + WORLD.items[key].weight
            <= WORLD.player.max_weight
        )
        events = player.receive_item(state, item, START, f"h{n}", WORLD)
        assert len(events) == 1
        before = state.inventory
        state = evolve_all(state, events)
        if fits:
            assert events == [ItemTaken(item, START, f"h{n}")]
            assert state.inventory == (*before, item)
        else:
            assert isinstance(events[0], HandoverSettled)
            assert events[0].handover_id == f"h{n}"
            assert events[0].reason.startswith("refused: ")
            assert state.inventory == before
        assert len(state.inventory) <= WORLD.player.max_items
        assert player.carried_weight(state, WORLD) <= WORLD.player.max_weight
    assert len(state.recent_handovers) == min(len(keys), player.RECENT_HANDOVERS)


# -- drop ------------------------------------------------------------------------------------


def test_dropping_a_carried_item_lets_go_of_it_in_the_current_room() -> None:
    state = holding("torch", "healing_potion")
    potion = state.inventory[1]
    events = player.drop(state, "flask", "h1", WORLD)
    assert events == [ItemDropped(potion, START, "h1")]
    assert evolve_all(state, events).inventory == (state.inventory[0],)


def test_dropping_one_of_two_alike_items_keeps_the_other() -> None:
    state = holding("gold_coin", "gold_coin")
    assert evolve_all(state, player.drop(state, "coin", "h1", WORLD)).inventory == (
        state.inventory[1],
    )


def test_dropping_an_item_not_carried_is_refused() -> None:
    assert refusal(lambda: player.drop(holding("torch"), "sword", "h1", WORLD)) == (
        "item_not_carried"
    )
    assert refusal_text(lambda: player.drop(holding("torch"), "  rusty sword ", "h1", WORLD)) == (
        "item_not_carried",
        "You are not carrying any 'rusty sword'.",
    )


# -- use -------------------------------------------------------------------------------------


@pytest.mark.parametrize(("health", "healed"), [(50, 40), (90, 10), (100, 0), (1, 40)])
def test_a_potion_heals_its_amount_capped_at_maximum_health(health: int, healed: int) -> None:
    state = replace(holding("healing_potion"), health=health)
    assert player.use(state, "potion", WORLD) == [ItemUsed(state.inventory[0], healed)]


def test_a_used_potion_is_used_up() -> None:
    state = replace(holding("healing_potion"), health=50)
    assert evolve_all(state, player.use(state, "flask", WORLD)).inventory == ()


def test_drinking_a_potion_restores_health() -> None:
    state = replace(holding("healing_potion"), health=50)
    assert evolve_all(state, player.use(state, "flask", WORLD)).health == 90


@pytest.mark.parametrize("key", ["rusty_sword", "leather_armor", "gold_coin", "torch"])
def test_using_something_that_is_not_a_potion_is_refused(key: str) -> None:
    assert refusal(lambda: player.use(holding(key), key, WORLD)) == "cannot_use"


def test_using_an_item_not_carried_is_refused() -> None:
    assert refusal(lambda: player.use(created(), "potion", WORLD)) == "item_not_carried"


# -- fights ----------------------------------------------------------------------------------


def test_a_fight_outcome_with_damage_lowers_health() -> None:
    state = created()
    events = fight_outcome(state, counter_damage=7)
    assert events == [DamageTaken(7, "goblin", START, "fight-1")]
    assert evolve_all(state, events).health == 93


@pytest.mark.parametrize("damage", [100, 101, 10_000])
def test_damage_that_reaches_zero_health_kills(damage: int) -> None:
    state = created()
    events = fight_outcome(state, counter_damage=damage)
    assert events == [DamageTaken(damage, "goblin", START, "fight-1"), PlayerDied(START, "goblin")]
    after = evolve_all(state, events)
    assert (after.alive, after.health, after.deaths) == (False, 0, 1)


def test_damage_just_short_of_death_leaves_one_health() -> None:
    assert evolve_all(created(), fight_outcome(created(), counter_damage=99)).health == 1


def test_experience_below_the_next_threshold_raises_no_level() -> None:
    state = created()
    events = fight_outcome(state, xp=99)
    assert events == [XpGained(99, "goblin", "fight-1")]
    after = evolve_all(state, events)
    assert (after.xp, after.level, after.kills) == (99, 1, 1)


def test_experience_across_several_thresholds_levels_up_once_per_level() -> None:
    state = replace(created(), health=30)
    events = fight_outcome(state, xp=460)  # thresholds 100, 250 and 450
    assert events == [
        XpGained(460, "goblin", "fight-1"),
        LevelledUp(2, 110),
        LevelledUp(3, 120),
        LevelledUp(4, 130),
    ]
    after = evolve_all(state, events)
    assert (after.level, after.max_health, after.health, after.xp) == (4, 130, 130, 460)


def test_the_same_fight_outcome_applies_once() -> None:
    state = evolve_all(created(), fight_outcome(created(), counter_damage=7, handover_id="f1"))
    assert fight_outcome(state, counter_damage=7, handover_id="f1") == []
    assert fight_outcome(state, xp=50, handover_id="f1") == []
    assert state.health == 93


def test_a_fight_outcome_reaching_a_dead_character_is_settled_without_effect() -> None:
    corpse = dead()
    events = fight_outcome(corpse, xp=500, handover_id="late")
    assert len(events) == 1
    assert isinstance(events[0], HandoverSettled)
    after = evolve_all(corpse, events)
    assert (after.xp, after.level, after.alive) == (0, 1, False)
    assert fight_outcome(after, xp=500, handover_id="late") == []


def test_a_fight_outcome_for_a_character_that_does_not_exist_does_nothing() -> None:
    assert fight_outcome(PlayerState(), counter_damage=5) == []


@settings(max_examples=100, deadline=None)
@given(st.lists(st.integers(1, 600), max_size=12))
def test_level_and_maximum_health_always_follow_total_experience(gains: list[int]) -> None:
    state = created()
    for n, xp in enumerate(gains):
        events = fight_outcome(state, xp=xp, handover_id=f"f{n}")
        levels = [e.level for e in events if isinstance(e, LevelledUp)]
        assert levels == list(range(state.level + 1, state.level + 1 + len(levels)))
        state = evolve_all(state, events)
        assert state.level == WORLD.level_for(state.xp)
        assert state.max_health == WORLD.max_health_at(state.level)
    assert (state.xp, state.kills) == (sum(gains), len(gains))


# -- respawn ---------------------------------------------------------------------------------


def test_a_living_character_cannot_respawn() -> None:
    assert refusal(lambda: player.respawn(created(), WORLD)) == "not_dead"


def test_a_dead_character_respawns_in_the_start_room_at_full_health() -> None:
    levelled = evolve_all(created(), fight_outcome(created(), xp=100, handover_id="win"))
    corpse = dead(replace(levelled, room="hunters_camp"))
    events = player.respawn(corpse, WORLD)
    assert events == [PlayerRespawned(START, 110)]
    after = evolve_all(corpse, events)
    assert (after.alive, after.room, after.health, after.deaths) == (True, START, 110, 1)


def test_a_character_that_does_not_exist_cannot_respawn() -> None:
    assert refusal(lambda: player.respawn(PlayerState(), WORLD)) == "player_not_found"


# -- say -------------------------------------------------------------------------------------


def test_saying_something_is_heard_in_the_current_room_with_whitespace_collapsed() -> None:
    events = player.say(created(), "  hello   there\n ")
    assert events == [PlayerSaid(START, "hello there")]
    assert evolve_all(created(), events) == created()


def test_saying_exactly_the_maximum_length_is_allowed() -> None:
    assert player.say(created(), "a" * 280) == [PlayerSaid(START, "a" * 280)]


@pytest.mark.parametrize("text", ["", "   ", "a" * 281, "ring\x07ring", "nul\x00", "private\ue000"])
def test_saying_nothing_too_much_or_control_characters_is_invalid(text: str) -> None:
    assert refusal(lambda: player.say(created(), text)) == "invalid_text"


# -- the dead and the missing ----------------------------------------------------------------

ACTIONS: Final[dict[str, Callable[[PlayerState], object]]] = {
    "move": lambda s: player.move(s, "north", WORLD),
    "drop": lambda s: player.drop(s, "torch", "h1", WORLD),
    "use": lambda s: player.use(s, "potion", WORLD),
    "say": lambda s: player.say(s, "help"),
    "attack": lambda s: player.attack_power(s, WORLD),
}


@pytest.mark.parametrize("action", ACTIONS.values(), ids=ACTIONS.keys())
def test_a_dead_character_can_do_nothing_but_respawn(
    action: Callable[[PlayerState], object],
) -> None:
    corpse = dead(holding("torch", "healing_potion"))
    assert refusal(lambda: action(corpse)) == "player_dead"


def test_a_dead_character_is_told_how_to_come_back() -> None:
    assert refusal_text(lambda: player.move(dead(), "north", WORLD)) == (
        "player_dead",
        "You are dead. Type 'respawn' to return to the village.",
    )


@pytest.mark.parametrize("action", ACTIONS.values(), ids=ACTIONS.keys())
def test_a_character_that_does_not_exist_can_do_nothing(
    action: Callable[[PlayerState], object],
) -> None:
    assert refusal(lambda: action(PlayerState())) == "player_not_found"


def test_attack_power_comes_from_level_best_weapon_and_best_armour() -> None:
    assert player.attack_power(created(), WORLD) == (4, 0)
    armed = holding("wooden_club", "rusty_sword", "leather_armor", "iron_shield")
    assert player.attack_power(armed, WORLD) == (4 + 5, 3)
    levelled = evolve_all(armed, fight_outcome(armed, xp=250, handover_id="win"))
    assert player.attack_power(levelled, WORLD) == (4 + 2 + 5, 3)


# -- what the player reads when refused, and the state events alone leave ----------------------


@pytest.mark.parametrize(
    ("action", "code", "message"),
    [
        (lambda: player.check_name("  "), "invalid_name", "A name cannot be empty."),
        (
            lambda: player.check_name("x" * 33),
            "invalid_name",
            "A name can be at most 32 characters long.",
        ),
        (
            lambda: player.check_name("Ann\x07"),
            "invalid_name",
            "A name cannot contain control characters.",
        ),
        (
            lambda: player.create(created(), "p2", "Alice", WORLD),
            "name_taken",
            "The name 'Alice' is already taken.",
        ),
        (
            lambda: player.move(PlayerState(), "n", WORLD),
            "player_not_found",
            "There is no such character.",
        ),
        (
            lambda: player.move(created(), "sideways", WORLD),
            "unknown_direction",
            "'sideways' is not a direction.",
        ),
        (
            lambda: player.use(holding("torch"), "torch", WORLD),
            "cannot_use",
            f"You cannot use the {WORLD.items['torch'].name}.",
        ),
        (
            lambda: player.respawn(PlayerState(), WORLD),
            "player_not_found",
            "There is no such character.",
        ),
        (lambda: player.respawn(created(), WORLD), "not_dead", "You are alive and well."),
        (lambda: player.say(created(), " \t "), "invalid_text", "Say what?"),
        (
            lambda: player.say(created(), "x" * 281),
            "invalid_text",
            "You can say at most 280 plain characters.",
        ),
    ],
)
def test_each_refusal_tells_the_player_why_in_words(
    action: Callable[[], object], code: str, message: str
) -> None:
    assert refusal_text(action) == (code, message)


@pytest.mark.parametrize("odd", ["\ud800", "\ue000", "\u0378", "\x00"])
def test_surrogates_private_use_and_unassigned_characters_are_not_plain_text(odd: str) -> None:
    assert unicodedata.category(odd) in {"Cs", "Co", "Cn", "Cc"}
    assert not player.plain_text(f"Ann{odd}")
    assert refusal(lambda: player.check_name(f"Ann{odd}")) == "invalid_name"
    assert refusal(lambda: player.say(created(), f"hi {odd}")) == "invalid_text"


def test_a_blow_of_any_size_leaves_the_character_at_zero_health_at_the_least() -> None:
    state = evolve_all(created(), [DamageTaken(250, "goblin", START, "h-1")])
    assert state.health == 0


def test_a_death_alone_leaves_the_character_dead_at_zero_health() -> None:
    state = evolve_all(created(), [PlayerDied(START, "goblin")])
    assert (state.alive, state.health, state.deaths) == (False, 0, 1)


@pytest.mark.parametrize("xp", [0, 5])
def test_a_fight_outcome_taken_is_not_taken_again(xp: int) -> None:
    state = created()
    state = evolve_all(state, fight_outcome(state, counter_damage=3, xp=xp, handover_id="h-9"))
    assert "h-9" in state.recent_handovers
    assert fight_outcome(state, counter_damage=3, xp=xp, handover_id="h-9") == []


def test_a_dead_character_settles_a_late_fight_saying_so() -> None:
    assert fight_outcome(dead(), counter_damage=3, handover_id="late") == [
        HandoverSettled("late", "the player was already dead")
    ]


def test_a_respawn_counts_once_and_the_room_it_returns_to_is_visited() -> None:
    state = evolve_all(dead(), [PlayerRespawned("chapel_crypt", 100)])
    assert (state.alive, state.room, state.health, state.respawns) == (
        True,
        "chapel_crypt",
        100,
        1,
    )
    assert "chapel_crypt" in state.rooms_visited


def test_a_removed_duplicate_takes_out_one_copy_and_keeps_the_order() -> None:
    torch, coin, herb = (HeldItem(f"i.{k}", k) for k in ("torch", "gold_coin", "healing_herb"))
    state = holding(state=created())
    state = evolve_all(
        state,
        [ItemTaken(item, START, f"h-{n}") for n, item in enumerate([torch, coin, torch, herb])],
    )
    removed = evolve_all(state, [DuplicateRemoved(torch, "repair")])
    assert removed.inventory == (coin, torch, herb)
    again = evolve_all(removed, [DuplicateRemoved(coin, "repair")])
    assert again.inventory == (torch, herb)
    assert evolve_all(again, [DuplicateRemoved(coin, "repair")]).inventory == (torch, herb)
    assert player.without_one((torch, coin), herb) == (torch, coin)
