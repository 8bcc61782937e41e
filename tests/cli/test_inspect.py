"""``aq events`` and ``aq state``: a stream's history, and an aggregate now or at a past version."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner, Result

from adventure_quest.app.aggregates import player_id_for
from adventure_quest.cli.main import app

ALICE = f"player-{player_id_for('Alice')}"
ALICE_HISTORY = ["PlayerCreated", "ItemTaken", "PlayerMoved", "PlayerSaid"]


def aq(*args: str, env: dict[str, str] | None = None, stdin: str | None = None) -> Result:
    """Run the ``aq`` command line in process, away from the caller's AQ_* settings."""
    cleared: dict[str, str | None] = {key: None for key in os.environ if key.startswith("AQ_")}
    return CliRunner().invoke(app, list(args), input=stdin, env={**cleared, **(env or {})})


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A store where Alice took the torch, walked north and spoke; snapshots after every event.

    Snapshotting every event means time travel must ignore snapshots newer than its version.
    """
    path = tmp_path_factory.mktemp("inspect")
    played = aq(
        "play",
        "--data-dir",
        str(path),
        "--name",
        "Alice",
        env={"AQ_SNAPSHOT_EVERY": "1"},
        stdin="take torch\nn\nsay hi\nquit\n",
    )
    assert played.exit_code == 0, played.output
    return path


def inspect(data_dir: Path, *args: str) -> Result:
    return aq(*args, "--data-dir", str(data_dir))


def json_lines(result: Result) -> list[dict[str, Any]]:
    return [json.loads(line) for line in result.stdout.splitlines()]


def state_of(data_dir: Path, *args: str) -> dict[str, Any]:
    result = inspect(data_dir, "state", *args)
    assert result.exit_code == 0, result.output
    body: dict[str, Any] = json.loads(result.stdout)
    return body


def assert_refused(result: Result, code: str) -> None:
    assert result.exit_code == 2
    assert result.stderr.startswith(f"error [{code}]: ")
    assert result.stdout == ""
    assert isinstance(result.exception, SystemExit), "the error is a message, not a crash"


# -- aq events -----------------------------------------------------------------------------------


def test_events_print_a_player_history_in_version_order(data_dir: Path) -> None:
    result = inspect(data_dir, "events", ALICE)

    lines = result.stdout.splitlines()
    assert result.exit_code == 0
    assert [line.split()[0] for line in lines] == ["v1", "v2", "v3", "v4"]
    assert [line.split()[2] for line in lines] == ALICE_HISTORY
    assert '"name":"Alice"' in lines[0]
    assert '"text":"hi"' in lines[3]


def test_events_as_json_give_one_parseable_object_per_event(data_dir: Path) -> None:
    lines = json_lines(inspect(data_dir, "events", ALICE, "--json"))

    assert [line["version"] for line in lines] == [1, 2, 3, 4]
    assert [line["event_type"] for line in lines] == ALICE_HISTORY
    positions = [line["position"] for line in lines]
    assert positions == sorted(positions)
    assert len(set(positions)) == 4
    for line in lines:
        assert {"version", "position", "event_type", "payload", "metadata"} <= line.keys()
    assert lines[0]["payload"]["name"] == "Alice"
    assert lines[1]["payload"]["item"]["item_key"] == "torch"
    assert lines[2]["payload"] == {
        "from_room": "village_square",
        "to_room": "market_street",
        "direction": "north",
    }


def test_events_as_json_name_the_metadata_fields(data_dir: Path) -> None:
    first = json_lines(inspect(data_dir, "events", ALICE, "--json"))[0]

    assert first["metadata"]["actor"] == player_id_for("Alice")
    assert first["metadata"]["recorded_at"] > 0


def test_events_carry_the_actor_in_their_metadata(data_dir: Path) -> None:
    lines = json_lines(inspect(data_dir, "events", ALICE, "--json"))

    assert all(line["metadata"]["actor"] == player_id_for("Alice") for line in lines)


@pytest.mark.parametrize("shortcut", ["player:Alice", "player:alice", "player:  ALICE "])
def test_player_name_shortcut_reads_the_characters_stream(data_dir: Path, shortcut: str) -> None:
    by_name = inspect(data_dir, "events", shortcut, "--json")

    assert by_name.exit_code == 0
    assert by_name.stdout == inspect(data_dir, "events", ALICE, "--json").stdout


def test_events_of_a_room_show_what_happened_there(data_dir: Path) -> None:
    lines = json_lines(inspect(data_dir, "events", "room-village_square", "--json"))

    assert [line["event_type"] for line in lines] == ["ItemPickedUp"]
    assert lines[0]["payload"]["player_id"] == player_id_for("Alice")


@pytest.mark.parametrize("stream", ["player:Nobody", "room-market_street", "room-nowhere"])
def test_events_of_a_stream_without_events_are_refused(data_dir: Path, stream: str) -> None:
    assert_refused(inspect(data_dir, "events", stream), "stream_not_found")


# -- aq state ------------------------------------------------------------------------------------


def test_state_at_version_1_shows_the_character_as_first_created(data_dir: Path) -> None:
    body = state_of(data_dir, "player:Alice", "--version", "1")

    assert (body["stream"], body["version"]) == (ALICE, 1)
    assert body["state"]["name"] == "Alice"
    assert body["state"]["room"] == "village_square"
    assert body["state"]["inventory"] == []


def test_current_state_holds_the_item_taken_since(data_dir: Path) -> None:
    body = state_of(data_dir, "player:Alice")

    assert body["version"] == 4
    assert body["state"]["room"] == "market_street"
    assert [item["item_key"] for item in body["state"]["inventory"]] == ["torch"]


def test_state_at_each_version_replays_exactly_that_far(data_dir: Path) -> None:
    rooms = [
        state_of(data_dir, ALICE, "--version", str(version))["state"]["room"]
        for version in (0, 1, 2, 3)
    ]

    assert rooms == ["", "village_square", "village_square", "market_street"]


def test_a_rooms_state_at_version_0_is_the_world_files_layout(data_dir: Path) -> None:
    before = state_of(data_dir, "room-village_square", "--version", "0")
    now = state_of(data_dir, "room-village_square")

    assert [item["item_key"] for item in before["state"]["items"]] == ["torch"]
    assert (now["version"], now["state"]["items"]) == (1, [])


@pytest.mark.parametrize("version", ["5", "99", "-1"])
def test_a_version_out_of_range_is_refused(data_dir: Path, version: str) -> None:
    result = inspect(data_dir, "state", "player:Alice", "--version", version)

    assert_refused(result, "version_out_of_range")
    assert f"has versions 0..4; got {version}" in result.stderr


@pytest.mark.parametrize("stream", ["foo-bar", "players-x", "village_square"])
def test_state_of_a_stream_that_is_neither_player_nor_room_is_refused(
    data_dir: Path, stream: str
) -> None:
    assert_refused(inspect(data_dir, "state", stream), "unknown_stream_type")


def test_state_of_a_room_the_world_does_not_have_is_refused(data_dir: Path) -> None:
    assert_refused(inspect(data_dir, "state", "room-nowhere"), "room_not_found")


def test_state_of_a_character_that_does_not_exist_is_refused(data_dir: Path) -> None:
    assert_refused(inspect(data_dir, "state", "player:Nobody"), "stream_not_found")
