"""``aq play`` as a real process with piped standard input: it plays like a person typing.

Each process costs a few hundred milliseconds, so each test plays a whole scene.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import NamedTuple

AQ = Path(sys.executable).parent / "aq"
QUESTION = "What is your name, adventurer?"


class Played(NamedTuple):
    exit_code: int
    stdout: str
    stderr: str

    @property
    def lines(self) -> list[str]:
        return self.stdout.splitlines()


def play(data_dir: Path, stdin: str | bytes, *flags: str) -> Played:
    """Run ``aq play`` on ``data_dir`` with ``stdin`` piped in, away from any AQ_* settings."""
    env = {key: value for key, value in os.environ.items() if not key.startswith("AQ_")}
    typed = stdin.encode() if isinstance(stdin, str) else stdin
    done = subprocess.run(
        [str(AQ), "play", "--data-dir", str(data_dir), *flags],
        input=typed,
        capture_output=True,
        env=env,
        timeout=60,
        check=False,
    )
    return Played(
        done.returncode,
        done.stdout.decode("utf-8", "replace"),
        done.stderr.decode("utf-8", "replace"),
    )


def assert_clean(played: Played) -> None:
    assert "Traceback" not in played.stdout + played.stderr
    assert played.stderr == ""
    assert played.exit_code == 0


def test_a_new_character_plays_the_village_and_every_mistake_reads_as_game_text(
    tmp_path: Path,
) -> None:
    commands = [
        "Alice",
        "look",
        "take torch",
        "n",
        "inventory",
        "stats",
        "say hi",
        "help",
        "dance",
        "go sideways",
        "w",
        "take sword",
        "drop sword",
        "",
        "quit",
        "look",
    ]

    played = play(tmp_path, "\n".join(commands) + "\n")

    assert_clean(played)
    assert played.lines[:3] == [
        QUESTION,
        "Welcome, Alice. Your adventure begins.",
        "== Village Square ==",
    ]
    for told in [
        "You see: torch.",
        "You take the torch.",
        "You go north.",
        "== Market Street ==",
        "You carry (1/10 items, weight 1/25): torch.",
        "Alice: level 1, 0 XP, 100 XP to level 2; health 100/100; 0 monsters defeated; "
        "0 deaths; alive; in Market Street.",
        'You say: "hi"',
        "Commands:",
        "  help, quit",
        "I don't know how to 'dance'. Type 'help' for the commands.",
        "'sideways' is not a direction.",
        "You cannot go west from here.",
        "There is no 'sword' here.",
        "You are not carrying any 'sword'.",
    ]:
        assert told in played.lines
    assert played.lines[-1] == "Farewell."
    assert played.stdout.count("== Market Street ==") == 1, "nothing is played after quit"
    assert (tmp_path / "events.sqlite").is_file()


def test_playing_again_with_the_same_name_resumes_with_the_inventory_kept(tmp_path: Path) -> None:
    first = play(tmp_path, "Alice\ntake torch\nn\nquit\n")
    again = play(tmp_path, "alice\ninventory\nlook\n")

    assert_clean(first)
    assert_clean(again)
    assert again.lines[:3] == [QUESTION, "Welcome back, Alice.", "== Market Street =="]
    assert "You carry (1/10 items, weight 1/25): torch." in again.lines
    assert "Welcome, Alice. Your adventure begins." not in again.stdout


def test_the_name_flag_skips_the_question_and_end_of_input_ends_the_game_cleanly(
    tmp_path: Path,
) -> None:
    played = play(tmp_path, "take torch\ni", "--name", "Bob")

    assert_clean(played)
    assert QUESTION not in played.stdout
    assert played.lines[0] == "Welcome, Bob. Your adventure begins."
    assert played.lines[-2:] == ["You carry (1/10 items, weight 1/25): torch.", "Farewell."]


def test_an_invalid_name_gets_a_clear_message_and_the_question_again(tmp_path: Path) -> None:
    played = play(tmp_path, "\n" + "x" * 40 + "\nBob\n")

    assert_clean(played)
    assert played.lines[:5] == [
        QUESTION,
        "A name cannot be empty.",
        QUESTION,
        "A name can be at most 32 characters long.",
        QUESTION,
    ]
    assert played.lines[5] == "Welcome, Bob. Your adventure begins."
    assert played.lines[-1] == "Farewell."


def test_end_of_input_at_the_name_question_ends_without_creating_anyone(tmp_path: Path) -> None:
    played = play(tmp_path, "")

    assert_clean(played)
    assert played.lines == [QUESTION]


def test_a_line_that_is_not_utf8_is_answered_as_game_text(tmp_path: Path) -> None:
    played = play(tmp_path, b"Alice\nsay caf\xe9\nlook\nquit\n")

    assert_clean(played)
    assert played.lines[-1] == "Farewell."
