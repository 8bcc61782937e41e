"""The world map: the shipped world checks out, broken worlds are refused, and lookups behave."""

from __future__ import annotations

import json
from collections import deque
from collections.abc import Callable
from typing import Any, Final

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from adventure_quest.app.world_loader import load_world
from adventure_quest.domain.errors import DomainError
from adventure_quest.domain.world import DIRECTIONS, World, normalise_direction, parse_world

Breakage = Callable[[dict[str, Any]], None]

WORLD: Final = load_world()
OPPOSITES: Final = {
    "north": "south", "south": "north", "east": "west", "west": "east", "up": "down",
    "down": "up", "northeast": "southwest", "southwest": "northeast",
    "northwest": "southeast", "southeast": "northwest",
}  # fmt: skip


def small_world() -> dict[str, Any]:
    """A valid two-room world as plain data, for tests to break one piece at a time."""
    return {
        "start_room": "hall",
        "player": {
            "base_health": 50,
            "health_per_level": 5,
            "base_damage": 3,
            "damage_per_level": 1,
            "xp_thresholds": [0, 10, 30],
            "max_items": 3,
            "max_weight": 10,
        },
        "items": {
            "old_lamp": {"name": "old lamp", "description": "Dented.", "kind": "misc", "weight": 2},
        },
        "monsters": {
            "mouse": {
                "name": "grey mouse",
                "description": "Small.",
                "health": 1,
                "damage": 1,
                "xp": 1,
                "loot": ["old_lamp"],
            },
        },
        "rooms": {
            "hall": {
                "name": "Hall",
                "description": "A hall.",
                "exits": {"north": "attic"},
                "items": ["old_lamp"],
                "monsters": ["mouse"],
            },
            "attic": {"name": "Attic", "description": "Dusty.", "exits": {"south": "hall"}},
        },
    }


def parsed(data: dict[str, Any]) -> World:
    return parse_world(json.dumps(data).encode())


def refusal_of(data: bytes) -> DomainError:
    with pytest.raises(DomainError) as caught:
        parse_world(data)
    return caught.value


# -- the shipped world -----------------------------------------------------------------------


def test_the_shipped_world_parses_and_passes_its_checks() -> None:
    assert WORLD.check() is WORLD
    assert WORLD.start_room == "village_square"
    assert WORLD.start_room in WORLD.rooms


def test_every_exit_of_the_shipped_world_leads_back_the_opposite_way() -> None:
    one_way = [
        (key, direction, target)
        for key, room in WORLD.rooms.items()
        for direction, target in room.exits.items()
        if WORLD.rooms[target].exits.get(OPPOSITES[direction]) != key  # type: ignore[call-overload]
    ]
    assert one_way == []


def test_every_room_of_the_shipped_world_is_reachable_from_the_start() -> None:
    seen = {WORLD.start_room}
    queue = deque([WORLD.start_room])
    while queue:
        for target in WORLD.rooms[queue.popleft()].exits.values():
            if target not in seen:
                seen.add(target)
                queue.append(target)
    assert seen == set(WORLD.rooms)


def test_every_item_name_and_alias_of_the_shipped_world_is_lower_case() -> None:
    # item_matches compares the player's case-folded words with these as they are written.
    spelled = [word for item in WORLD.items.values() for word in (item.name, *item.aliases)]
    assert [word for word in spelled if word != word.casefold()] == []


# -- broken worlds ---------------------------------------------------------------------------


def test_a_small_valid_world_parses() -> None:
    world = parsed(small_world())
    assert world.rooms["hall"].exits == {"north": "attic"}
    assert world.items["old_lamp"].aliases == []


def break_exit(data: dict[str, Any]) -> None:
    data["rooms"]["hall"]["exits"]["north"] = "nowhere"


def break_room_item(data: dict[str, Any]) -> None:
    data["rooms"]["attic"]["items"] = ["golden_fleece"]


def break_room_monster(data: dict[str, Any]) -> None:
    data["rooms"]["attic"]["monsters"] = ["kraken"]


def break_loot(data: dict[str, Any]) -> None:
    data["monsters"]["mouse"]["loot"] = ["cheese"]


def break_start(data: dict[str, Any]) -> None:
    data["start_room"] = "cellar"


@pytest.mark.parametrize(
    ("breakage", "problem"),
    [
        (break_exit, "hall: exit north to unknown room 'nowhere'"),
        (break_room_item, "attic: unknown item 'golden_fleece'"),
        (break_room_monster, "attic: unknown monster 'kraken'"),
        (break_loot, "mouse: unknown loot 'cheese'"),
        (break_start, "start room 'cellar' does not exist"),
    ],
)
def test_a_world_with_a_dangling_reference_is_invalid(breakage: Breakage, problem: str) -> None:
    data = small_world()
    breakage(data)
    error = refusal_of(json.dumps(data).encode())
    assert error.code == "world_invalid"
    assert problem in str(error)


def test_every_problem_of_a_broken_world_is_reported_at_once() -> None:
    data = small_world()
    break_exit(data)
    break_loot(data)
    message = str(refusal_of(json.dumps(data).encode()))
    assert "unknown room 'nowhere'" in message
    assert "unknown loot 'cheese'" in message


def add_top_level_field(data: dict[str, Any]) -> None:
    data["weather"] = "rainy"


def add_item_field(data: dict[str, Any]) -> None:
    data["items"]["old_lamp"]["colour"] = "brass"


def use_unknown_direction(data: dict[str, Any]) -> None:
    data["rooms"]["hall"]["exits"] = {"sideways": "attic"}


def use_unknown_item_kind(data: dict[str, Any]) -> None:
    data["items"]["old_lamp"]["kind"] = "furniture"


def give_weight_as_text(data: dict[str, Any]) -> None:
    data["items"]["old_lamp"]["weight"] = "heavy"


def leave_out_player_rules(data: dict[str, Any]) -> None:
    del data["player"]


@pytest.mark.parametrize(
    "breakage",
    [
        add_top_level_field,
        add_item_field,
        use_unknown_direction,
        use_unknown_item_kind,
        give_weight_as_text,
        leave_out_player_rules,
    ],
)
def test_a_world_file_of_the_wrong_shape_is_invalid(breakage: Breakage) -> None:
    data = small_world()
    breakage(data)
    error = refusal_of(json.dumps(data).encode())
    assert error.code == "world_invalid"
    assert "malformed" in str(error)


def test_a_world_file_that_is_json_of_the_wrong_type_is_invalid() -> None:
    assert refusal_of(b"[1, 2, 3]").code == "world_invalid"


@pytest.mark.parametrize("data", [b"{not json", b"", b'{"start_room": "hall"'])
def test_a_world_file_that_is_not_json_is_invalid(data: bytes) -> None:
    assert refusal_of(data).code == "world_invalid"


# -- levels and health -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("xp", "level"),
    [(0, 1), (99, 1), (100, 2), (249, 2), (250, 3), (699, 4), (3199, 9), (3200, 10), (10**9, 10)],
)
def test_level_for_counts_the_thresholds_reached(xp: int, level: int) -> None:
    assert WORLD.level_for(xp) == level


@settings(max_examples=200, deadline=None)
@given(st.integers(0, 5000), st.integers(0, 5000))
def test_more_experience_never_means_a_lower_level(xp: int, more: int) -> None:
    assert 1 <= WORLD.level_for(xp) <= WORLD.level_for(xp + more) <= len(WORLD.player.xp_thresholds)


@pytest.mark.parametrize(("level", "health"), [(1, 100), (2, 110), (5, 140), (10, 190)])
def test_max_health_grows_by_the_per_level_amount(level: int, health: int) -> None:
    assert WORLD.max_health_at(level) == health


# -- naming items and monsters ---------------------------------------------------------------


@pytest.mark.parametrize(
    "words", ["healing_potion", "healing potion", "flask", "potion", "  Healing   POTION ", "FLASK"]
)
def test_an_item_is_named_by_its_key_name_alias_or_last_word(words: str) -> None:
    assert WORLD.item_matches("healing_potion", words)


@pytest.mark.parametrize(
    "words", ["healing", "heal", "small healing potion", "vial", "", "healing potion please"]
)
def test_other_words_do_not_name_an_item(words: str) -> None:
    assert not WORLD.item_matches("healing_potion", words)


def test_the_last_word_of_a_name_is_shared_by_every_item_ending_in_it() -> None:
    named = {key for key in WORLD.items if WORLD.item_matches(key, "potion")}
    assert named == {"small_healing_potion", "healing_potion", "greater_healing_potion"}


def test_an_item_with_a_capitalised_name_is_named_by_that_name() -> None:
    data = small_world()
    data["items"]["old_lamp"]["name"] = "Old Lamp"
    assert parsed(data).item_matches("old_lamp", "Old Lamp")


@pytest.mark.parametrize("words", ["rat", "giant rat", "giant_rat", "Giant Rat", " RAT "])
def test_a_monster_is_named_by_its_key_name_alias_or_last_word(words: str) -> None:
    assert WORLD.monster_matches("giant_rat", words)


@pytest.mark.parametrize("words", ["giant", "rats", "spider", ""])
def test_other_words_do_not_name_a_monster(words: str) -> None:
    assert not WORLD.monster_matches("giant_rat", words)


# -- directions ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("words", "direction"),
    [
        ("n", "north"),
        ("S", "south"),
        (" ne ", "northeast"),
        ("u", "up"),
        ("North", "north"),
        ("down", "down"),
        ("  Sideways ", "sideways"),
    ],
)
def test_normalise_direction_expands_abbreviations_and_lower_cases(
    words: str, direction: str
) -> None:
    assert normalise_direction(words) == direction


@settings(max_examples=200, deadline=None)
@given(
    st.sampled_from(sorted({*DIRECTIONS, *DIRECTIONS.values()})),
    st.lists(st.booleans(), min_size=9, max_size=9),
    st.text(" \t", max_size=3),
    st.text(" \t", max_size=3),
)
def test_any_spelling_of_a_direction_normalises_to_its_full_name(
    word: str, upper: list[bool], before: str, after: str
) -> None:
    spelled = "".join(ch.upper() if up else ch for ch, up in zip(word, upper, strict=False))
    assert normalise_direction(before + spelled + after) == DIRECTIONS.get(word, word)


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=12))
def test_normalising_a_direction_twice_changes_nothing(words: str) -> None:
    once = normalise_direction(words)
    assert normalise_direction(once) == once
