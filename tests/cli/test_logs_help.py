"""The command line's own options: ``--version``, ``-h`` on every command, and help that shows
the ``[env AQ_…]`` hint of every option that has one (Rich markup used to eat them)."""

from __future__ import annotations

import os
import re
import tomllib
from collections.abc import Iterator
from importlib.metadata import version
from pathlib import Path
from typing import Any

import typer
from typer.testing import CliRunner, Result

from adventure_quest.cli.main import every_command

ROOT = Path(__file__).resolve().parents[2]

#: Wide enough that no help text is wrapped in the middle of a hint.
WIDE = {"COLUMNS": "200", "TERMINAL_WIDTH": "200"}


def aq(*args: str, env: dict[str, str] | None = None) -> Result:
    """Run ``aq`` in process, with every command attached, away from the caller's AQ_*."""
    cleared: dict[str, str | None] = {key: None for key in os.environ if key.startswith("AQ_")}
    return CliRunner().invoke(every_command(), list(args), env={**cleared, **WIDE, **(env or {})})


def commands() -> Iterator[tuple[tuple[str, ...], Any]]:
    """(path, command) of the root and every command and group under it."""

    def walk(path: tuple[str, ...], command: Any) -> Iterator[tuple[tuple[str, ...], Any]]:
        yield path, command
        for name, sub in getattr(command, "commands", {}).items():
            yield from walk((*path, name), sub)

    yield from walk((), typer.main.get_command(every_command()))


def test_version_prints_the_package_version() -> None:
    shown = aq("--version")
    assert shown.exit_code == 0, shown.output
    declared = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
    assert shown.stdout == f"aq {declared}\n" == f"aq {version('adventure-quest')}\n"


def test_every_command_takes_dash_h_for_its_help() -> None:
    paths = [path for path, _ in commands()]
    assert len(paths) > 20
    for path in paths:
        short, long = aq(*path, "-h"), aq(*path, "--help")
        assert (short.exit_code, long.exit_code) == (0, 0), (path, short.output)
        assert short.stdout == long.stdout
        assert "Usage:" in short.stdout


def test_help_shows_every_env_hint_written_in_an_options_help() -> None:
    hinted = 0
    for path, command in commands():
        hints = [
            hint
            for param in command.params
            for hint in re.findall(r"\[env AQ_\w+\]", getattr(param, "help", None) or "")
        ]
        if not hints:
            continue
        shown = aq(*path, "--help")
        assert shown.exit_code == 0, shown.output
        for hint in hints:
            hinted += 1
            assert hint in shown.stdout, (path, hint)
    assert hinted >= 30  # --data-dir, --store, ... on most commands, and the log options
