"""The terminal Session in process, on memory stores: every verb, alias and mistake is text."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import pytest

from adventure_quest.app.aggregates import event_codec, player_id_for
from adventure_quest.app.game import Game
from adventure_quest.app.repository import Repository
from adventure_quest.app.world_loader import load_world
from adventure_quest.cli.play import HELP, QUIT, enter
from adventure_quest.domain.errors import DomainError
from adventure_quest.domain.events import PlayerDied
from adventure_quest.store.envelope import AppendResult, ExpectedVersion, Metadata, NewEvent
from adventure_quest.store.errors import ConcurrencyError
from adventure_quest.store.memory import MemoryEventStore, MemorySnapshotStore

VILLAGE = "== Village Square =="
TO_THE_CRYPT = ("s", "d")
TO_WHISPERING_PINES = ("n", "n", "n", "n")
TO_UNDERGROUND_LAKE = (*TO_WHISPERING_PINES, "n", "n", "n", "d", "n", "n")


class ContestedEventStore(MemoryEventStore):
    """A memory store where, once ``contested``, every append loses to another writer."""

    contested = False

    async def append(
        self, stream_id: str, expected_version: ExpectedVersion, events: Sequence[NewEvent]
    ) -> AppendResult:
        if self.contested:
            raise ConcurrencyError(stream_id, expected_version, expected_version + 1)
        return await super().append(stream_id, expected_version, events)


def new_game(store: MemoryEventStore | None = None) -> Game:
    repository = Repository(store or MemoryEventStore(), MemorySnapshotStore(), event_codec())
    return Game(repository, load_world(), roll=lambda: 0)


async def _answers(lines: Sequence[str]) -> list[object]:
    session, _ = await enter(new_game(), "Alice")
    return [await session.handle(line) for line in lines]


def answers(*lines: str) -> list[object]:
    """What Alice, new in a fresh world, is told for each line, in order."""
    return asyncio.run(_answers(lines))


def last_answer_object(*lines: str) -> object:
    """The answer to the last line, whatever it is."""
    return answers(*lines)[-1]


def last_answer(*lines: str) -> str:
    """The text answering the last line, after the earlier lines were played."""
    answer = last_answer_object(*lines)
    assert isinstance(answer, str)
    return answer


# -- entering the game ---------------------------------------------------------------------------


async def test_a_new_character_is_welcomed_and_sees_the_village_square() -> None:
    _, greeting = await enter(new_game(), "Alice")

    assert greeting.splitlines()[:2] == ["Welcome, Alice. Your adventure begins.", VILLAGE]
    assert "You see: torch." in greeting


async def test_entering_again_with_the_name_in_other_case_and_spacing_resumes_the_character() -> (
    None
):
    game = new_game()
    first, _ = await enter(game, "Alice")
    await first.handle("take torch")
    await first.handle("n")
    again, greeting = await enter(game, "  ALICE ")
    inventory = str(await again.handle("i"))

    assert greeting.splitlines()[:2] == ["Welcome back, Alice.", "== Market Street =="]
    assert inventory == "You carry (1/10 items, weight 1/25): torch."


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("", "A name cannot be empty."),
        ("   ", "A name cannot be empty."),
        ("x" * 40, "A name can be at most 32 characters long."),
        ("Bob\x07Smith", "A name cannot contain control characters."),
    ],
)
async def test_an_invalid_name_is_refused_with_a_clear_message(name: str, message: str) -> None:
    with pytest.raises(DomainError) as refused:
        await enter(new_game(), name)

    assert (refused.value.code, refused.value.message) == ("invalid_name", message)


async def test_a_new_name_ending_in_a_carriage_return_is_trimmed_like_other_whitespace() -> None:
    _, greeting = await enter(new_game(), "Dana\r")
    assert greeting.startswith("Welcome, Dana.")


# -- verbs and their aliases ---------------------------------------------------------------------


@pytest.mark.parametrize("line", ["look", "l", "LOOK", "look around", "  l  "])
def test_look_and_its_alias_describe_the_room(line: str) -> None:
    answer = last_answer(line)

    assert answer.splitlines()[0] == VILLAGE
    assert answer.splitlines()[-1] == "Exits: north, east, west, south."


@pytest.mark.parametrize(
    "line", ["go north", "walk north", "move north", "north", "n", "N", "go n", "GO NORTH"]
)
def test_go_its_aliases_and_bare_directions_walk_through_an_exit(line: str) -> None:
    answer = last_answer(line)

    assert answer.splitlines()[:2] == ["You go north.", "== Market Street =="]


@pytest.mark.parametrize(
    ("path", "abbreviation", "arrival"),
    [
        ((), "n", "You go north.\n== Market Street =="),
        ((), "s", "You go south.\n== Village Chapel =="),
        ((), "e", "You go east.\n== Blacksmith's Forge =="),
        ((), "w", "You go west.\n== The Rusty Tankard Inn =="),
        (("w",), "u", "You go up.\n== Inn Loft =="),
        (("s",), "d", "You go down.\n== Chapel Crypt =="),
        (TO_WHISPERING_PINES, "ne", "You go northeast.\n== Wolf Den =="),
        ((*TO_WHISPERING_PINES, "ne"), "sw", "You go southwest.\n== Whispering Pines =="),
        (TO_UNDERGROUND_LAKE, "nw", "You go northwest.\n== Ancient Ruins Gate =="),
        ((*TO_UNDERGROUND_LAKE, "nw"), "se", "You go southeast.\n== Underground Lake =="),
    ],
)
def test_every_direction_abbreviation_walks_that_way(
    path: tuple[str, ...], abbreviation: str, arrival: str
) -> None:
    assert last_answer(*path, abbreviation).startswith(arrival + "\n")


def test_a_direction_without_an_exit_is_refused_and_the_player_stays() -> None:
    refused, look = answers("ne", "look")

    assert refused == "You cannot go northeast from here."
    assert str(look).startswith(VILLAGE)


def test_a_word_that_is_not_a_direction_is_refused() -> None:
    assert last_answer("go sideways") == "'sideways' is not a direction."


@pytest.mark.parametrize(
    "line",
    ["take torch", "get torch", "pick torch", "pick up torch", "take up torch", "TAKE Torch"],
)
def test_take_and_its_aliases_pick_up_an_item(line: str) -> None:
    taken, inventory, look = answers(line, "inventory", "look")

    assert taken == "You take the torch."
    assert inventory == "You carry (1/10 items, weight 1/25): torch."
    assert "torch" not in str(look)


def test_drop_puts_a_carried_item_back_on_the_floor() -> None:
    _, dropped, inventory, look = answers("take torch", "drop torch", "i", "l")

    assert dropped == "You drop the torch."
    assert inventory == "You are carrying nothing."
    assert "You see: torch." in str(look)


@pytest.mark.parametrize("line", ["inventory", "i", "inv"])
def test_inventory_and_its_aliases_list_what_is_carried(line: str) -> None:
    assert last_answer(line) == "You are carrying nothing."
    assert last_answer("take torch", line) == "You carry (1/10 items, weight 1/25): torch."


@pytest.mark.parametrize("line", ["use herb", "drink herb", "use healing herb"])
def test_use_and_its_alias_consume_a_potion(line: str) -> None:
    used, inventory = answers("s", "take herb", line, "i")[-2:]

    assert used == "You use the healing herb and recover 0 health."
    assert inventory == "You are carrying nothing."


def test_using_an_item_that_is_not_a_potion_is_refused() -> None:
    assert last_answer("take torch", "use torch") == "You cannot use the torch."


@pytest.mark.parametrize("line", ["stats", "status"])
def test_stats_and_its_alias_show_the_character_sheet(line: str) -> None:
    assert last_answer(line) == (
        "Alice: level 1, 0 XP, 100 XP to level 2; health 100/100; 0 monsters defeated; "
        "0 deaths; alive; in Village Square."
    )


def test_say_repeats_the_words_as_typed() -> None:
    assert last_answer("say Hello   there, Bob!") == 'You say: "Hello there, Bob!"'


@pytest.mark.parametrize("line", ["help", "?", "HELP"])
def test_help_and_its_alias_list_the_commands(line: str) -> None:
    assert last_answer(line) == HELP


@pytest.mark.parametrize("line", ["attack rat", "fight rat", "kill rat", "attack giant rat"])
def test_attack_and_its_aliases_strike_a_monster_here(line: str) -> None:
    answer = last_answer(*TO_THE_CRYPT, line)

    assert answer == (
        "You hit the giant rat for 4 damage (4 health left).\nThe giant rat misses you."
    )


def test_attacking_a_weak_monster_until_it_falls_earns_xp_and_drops_its_loot() -> None:
    played = answers(*TO_THE_CRYPT, "attack rat", "attack rat", "stats", "look")
    first, second, stats, look = played[len(TO_THE_CRYPT) :]

    assert first == "You hit the giant rat for 4 damage (4 health left).\nThe giant rat misses you."
    assert second == (
        "You hit the giant rat for 4 damage (0 health left).\n"
        "The giant rat is defeated! It drops: rat tail.\n"
        "You gain 10 XP."
    )
    assert str(stats).startswith("Alice: level 1, 10 XP, 90 XP to level 2;")
    assert "1 monsters defeated" in str(stats)
    assert "You see: brass key, rat tail." in str(look)
    assert str(look).count("A giant rat is here (8/8 health).") == 1


def test_respawning_while_alive_is_refused() -> None:
    assert last_answer("respawn") == "You are alive and well."


async def test_a_dead_character_is_told_to_respawn_and_respawning_returns_them_to_the_village() -> (
    None
):
    game = new_game()
    session, _ = await enter(game, "Alice")
    told = [await session.handle("s")]
    await game.repository.update(
        game.players,
        game.players.stream_id(player_id_for("Alice")),
        lambda _: [PlayerDied("village_chapel", "giant_rat")],
        Metadata(),
    )
    for line in ("n", "take herb", "stats", "respawn", "respawn"):
        told.append(await session.handle(line))

    _, walk, take, stats, respawned, again = told

    dead = "You are dead. Type 'respawn' to return to the village."
    assert (walk, take) == (dead, dead)
    assert "1 deaths; dead; in Village Chapel." in str(stats)
    assert str(respawned).splitlines()[:2] == [
        "You awaken in the Village Square, whole again.",
        VILLAGE,
    ]
    assert again == "You are alive and well."


# -- mistakes read as game text ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("line", "question"),
    [
        ("take", "Take what?"),
        ("get", "Take what?"),
        ("take   ", "Take what?"),
        ("pick up", "Take what?"),
        ("drop", "Drop what?"),
        ("attack", "Attack what?"),
        ("use", "Use what?"),
        ("go", "Go where?"),
        ("say", "Say what?"),
        ("say    ", "Say what?"),
    ],
)
def test_a_verb_without_its_object_asks_for_it(line: str, question: str) -> None:
    assert last_answer(line) == question


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("take sword", "There is no 'sword' here."),
        ("drop sword", "You are not carrying any 'sword'."),
        ("use elixir", "You are not carrying any 'elixir'."),
        ("attack dragon", "There is no 'dragon' to fight here."),
    ],
)
def test_naming_something_that_is_not_there_is_refused_as_game_text(
    line: str, message: str
) -> None:
    assert last_answer(line) == message


@pytest.mark.parametrize("line", ["dance", "DANCE with wolves"])
def test_an_unknown_verb_points_to_help(line: str) -> None:
    assert last_answer(line) == "I don't know how to 'dance'. Type 'help' for the commands."


@pytest.mark.parametrize("line", ["", "   ", "\t"])
def test_an_empty_line_gets_no_answer(line: str) -> None:
    assert last_answer(line) == ""


async def test_a_command_that_keeps_losing_to_other_writers_asks_to_try_again() -> None:
    store = ContestedEventStore()
    game = new_game(store)

    session, _ = await enter(game, "Alice")
    store.contested = True
    moved = await session.handle("n")
    look = await session.handle("look")

    assert moved == "The world shifted around you; try that again."
    assert str(look).startswith(VILLAGE)


# -- leaving -------------------------------------------------------------------------------------


@pytest.mark.parametrize("line", ["quit", "exit", "q", "QUIT", "  Quit  ", "exit now"])
def test_quit_and_its_aliases_return_the_quit_sentinel(line: str) -> None:
    assert last_answer_object(line) is QUIT


def test_only_the_quit_words_return_the_quit_sentinel() -> None:
    assert all(answer is not QUIT for answer in answers("quiet", "look", "help", ""))


async def test_a_session_belongs_to_the_character_it_entered_as() -> None:
    session, _ = await enter(new_game(), "Alice")
    assert session.player_id == player_id_for("alice")
