"""A damaged, foreign or misnamed store, or a bad setting: a clear error, exit 2, no writes."""

from __future__ import annotations

import hashlib
import json
import os
import random
import sqlite3
from importlib import resources
from pathlib import Path

import pytest
from typer.testing import CliRunner, Result

from adventure_quest.app.world_loader import load_world
from adventure_quest.cli.main import app
from adventure_quest.store.sqlite.schema import SCHEMA_VERSION

#: Every command that opens the store, each on a stream it would find in a healthy store.
OPENING_COMMANDS = [
    pytest.param(("events", "player:Tess"), id="events"),
    pytest.param(("state", "player:Tess"), id="state"),
    pytest.param(("play", "--name", "Tess"), id="play"),
]


def aq(*args: str, env: dict[str, str] | None = None, stdin: str = "look\n") -> Result:
    """Run the ``aq`` command line in process, away from the caller's AQ_* settings."""
    cleared: dict[str, str | None] = {key: None for key in os.environ if key.startswith("AQ_")}
    return CliRunner().invoke(app, list(args), input=stdin, env={**cleared, **(env or {})})


def on_file(path: Path, command: tuple[str, ...]) -> Result:
    return aq(*command, "--store", f"sqlite:///{path}")


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def assert_refused(result: Result, code: str, *naming: str) -> None:
    assert result.exit_code == 2
    assert result.stderr.startswith(f"error [{code}]: ")
    for words in naming:
        assert words in result.stderr
    assert isinstance(result.exception, SystemExit), "the error is a message, not a crash"
    assert "Traceback" not in result.output


def assert_untouched(path: Path, before: str) -> None:
    assert digest(path) == before
    assert not Path(f"{path}-wal").exists()
    assert not Path(f"{path}-shm").exists()
    assert not Path(f"{path}-journal").exists()


def real_store(directory: Path) -> Path:
    """A store that Tess filled with long speeches (tens of kilobytes), closed and checkpointed."""
    speeches = "".join(f"say speech {n} {'la' * 120}\n" for n in range(60))
    played = aq("play", "--data-dir", str(directory), "--name", "Tess", stdin=speeches)
    assert played.exit_code == 0, played.output
    path = directory / "events.sqlite"
    assert not Path(f"{path}-wal").exists(), "closing the store checkpoints its WAL"
    assert path.stat().st_size >= 32 * 1024
    return path


@pytest.mark.parametrize("command", OPENING_COMMANDS)
def test_a_file_of_random_bytes_is_refused_as_corrupt_and_left_untouched(
    tmp_path: Path, command: tuple[str, ...]
) -> None:
    path = tmp_path / "events.sqlite"
    path.write_bytes(random.Random(7).randbytes(8192))
    before = digest(path)

    result = on_file(path, command)

    assert_refused(result, "store_corrupt", str(path), "not a SQLite database")
    assert_untouched(path, before)


@pytest.mark.parametrize("command", OPENING_COMMANDS)
def test_a_file_shorter_than_a_sqlite_header_is_refused_as_corrupt(
    tmp_path: Path, command: tuple[str, ...]
) -> None:
    path = tmp_path / "events.sqlite"
    path.write_bytes(b"SQLite format 3\x00")
    before = digest(path)

    assert_refused(on_file(path, command), "store_corrupt", "bad header")
    assert_untouched(path, before)


@pytest.mark.parametrize("command", OPENING_COMMANDS)
def test_a_store_truncated_to_half_is_refused_as_corrupt_and_left_untouched(
    tmp_path: Path, command: tuple[str, ...]
) -> None:
    path = real_store(tmp_path)
    full_size = path.stat().st_size
    os.truncate(path, full_size // 2)
    before = digest(path)

    result = on_file(path, command)

    assert_refused(result, "store_corrupt", "truncated", str(full_size), str(full_size // 2))
    assert_untouched(path, before)


@pytest.mark.parametrize("command", OPENING_COMMANDS)
def test_a_store_whose_pages_are_damaged_behind_a_good_header_is_refused_as_corrupt(
    tmp_path: Path, command: tuple[str, ...]
) -> None:
    path = real_store(tmp_path)
    pages = bytearray(path.read_bytes())
    page_size = int.from_bytes(pages[16:18], "big")
    pages[page_size:] = random.Random(7).randbytes(len(pages) - page_size)
    path.write_bytes(pages)
    before = digest(path)

    result = on_file(path, command)

    assert_refused(result, "store_corrupt", "not a readable Adventure Quest store")
    assert_untouched(path, before)


@pytest.mark.parametrize("command", OPENING_COMMANDS)
def test_a_sqlite_database_of_another_program_is_refused_and_left_untouched(
    tmp_path: Path, command: tuple[str, ...]
) -> None:
    path = tmp_path / "address-book.sqlite"
    with sqlite3.connect(path) as other:
        other.execute("CREATE TABLE contacts (name TEXT, phone TEXT)")
        other.execute("INSERT INTO contacts VALUES ('Tess', '555-0100')")
    other.close()
    before = digest(path)

    result = on_file(path, command)

    assert_refused(result, "store_schema", "not an Adventure Quest store", "contacts")
    assert_untouched(path, before)


def test_a_store_from_a_newer_version_of_the_game_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "events.sqlite"
    with sqlite3.connect(path) as newer:
        newer.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    newer.close()
    before = digest(path)

    result = on_file(path, ("events", "player:Tess"))

    assert_refused(
        result, "store_schema", f"schema version {SCHEMA_VERSION + 1}", "upgrade Adventure Quest"
    )
    assert_untouched(path, before)


@pytest.mark.parametrize(
    ("url", "problem"),
    [
        ("foo://x", "unsupported store URL 'foo://x'"),
        ("postgresql://[bad/aq", "cannot parse store URL"),
        ("postgresql://127.0.0.1:5432", "cannot parse store URL"),
        ("sqlite:///a.sqlite,,sqlite:///b.sqlite", "an empty shard URL"),
        ("sqlite://", "cannot parse store URL 'sqlite://'"),
        ("sqlite:///", "cannot parse store URL"),
        ("sqlite://host/events.sqlite", "cannot parse store URL"),
        ("events.sqlite", "unsupported store URL"),
    ],
)
@pytest.mark.parametrize("command", OPENING_COMMANDS)
def test_a_store_url_that_cannot_be_used_is_refused_and_creates_nothing(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    url: str,
    problem: str,
    command: tuple[str, ...],
) -> None:
    monkeypatch.chdir(tmp_path)

    result = aq(*command, "--store", url)

    assert_refused(result, "store_url_invalid", problem)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    ("variable", "value", "setting"),
    [
        ("AQ_SNAPSHOT_EVERY", "-1", "snapshot_every must be >= 0, got -1"),
        ("AQ_SNAPSHOT_EVERY", "often", "snapshot_every"),
        ("AQ_MAX_ATTEMPTS", "abc", "max_attempts"),
        ("AQ_MAX_ATTEMPTS", "0", "max_attempts must be >= 1, got 0"),
        ("AQ_AGGREGATE_CACHE_SIZE", "-5", "aggregate_cache_size must be >= 0"),
        ("AQ_STREAM_CACHE_SIZE", "lots", "stream_cache_size"),
    ],
)
@pytest.mark.parametrize("command", OPENING_COMMANDS)
def test_an_invalid_setting_in_the_environment_is_refused_before_the_store_is_opened(
    tmp_path: Path, variable: str, value: str, setting: str, command: tuple[str, ...]
) -> None:
    data_dir = tmp_path / "data"

    result = aq(*command, "--data-dir", str(data_dir), env={variable: value})

    assert_refused(result, "invalid_setting", setting)
    assert not data_dir.exists()


def test_a_data_dir_from_the_environment_is_used(tmp_path: Path) -> None:
    result = aq("play", "--name", "Tess", env={"AQ_DATA_DIR": str(tmp_path)})

    assert result.exit_code == 0, result.stderr
    assert (tmp_path / "events.sqlite").is_file()


def test_a_world_file_from_the_environment_is_played(tmp_path: Path) -> None:
    world = json.loads(resources.files("adventure_quest").joinpath("data/world.json").read_text())
    world["rooms"]["village_square"]["items"] = ["brass_key"]
    world_path = tmp_path / "world.json"
    world_path.write_text(json.dumps(world))
    assert load_world(world_path).rooms["village_square"].items == ["brass_key"]
    created = aq("play", "--data-dir", str(tmp_path), "--name", "Tess", stdin="quit\n")
    assert created.exit_code == 0, created.stderr

    result = aq(
        "state",
        "room-village_square",
        "--data-dir",
        str(tmp_path),
        env={"AQ_WORLD": str(world_path)},
    )

    assert result.exit_code == 0, result.stderr
    assert '"item_key": "brass_key"' in result.stdout
