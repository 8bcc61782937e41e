"""Every subcommand given a bad value says ``error [code]: message`` and exits 2 (issue 12).

Seen: ``aq worker --partitions 99`` (also ``garbage``, ``7-3``, empty), ``--data-dir`` naming a
file and a data directory on a read-only mount ended in a Python traceback and exit 1. The table
runs each subcommand with values it must refuse, in process (typer's runner), and asserts the
message, the exit status, that no traceback was printed and that nothing was written.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner, Result

from adventure_quest.cli.main import every_command

NATS = "nats://127.0.0.1:4222/AQBADVALUES"
SHARED = ("--queue", NATS)

#: (arguments, the code of the error). ``FILE`` stands for a path that is a plain file.
CASES: list[tuple[tuple[str, ...], str]] = [
    (("worker", *SHARED, "--partitions", "99"), "invalid_partitions"),
    (("worker", *SHARED, "--partitions", "garbage"), "invalid_partitions"),
    (("worker", *SHARED, "--partitions", "7-3"), "invalid_partitions"),
    (("worker", *SHARED, "--partitions", ""), "invalid_partitions"),
    (("worker", *SHARED, "--partitions", "1,-2"), "invalid_partitions"),
    (("worker", "--partitions", "1"), "queue_not_shared"),
    (("process", "--partitions", "16"), "invalid_partitions"),
    (("serve", "--partitions", "x"), "invalid_partitions"),
    (("serve", "--role", "bogus"), "invalid_role"),
    (("serve", "--port", "99999"), "invalid_setting"),
    (("serve", "--cache", "bogus://"), "store_url_invalid"),
    (("serve", "--config", "missing.toml"), "invalid_setting"),
    (("serve", "--role", "api"), "queue_not_shared"),
    (("process", "--queue", "bogus://x"), "store_url_invalid"),
    (("process", "--read-db", "bogus://x"), "store_url_invalid"),
    (("relay", "--store", "bogus://x", *SHARED), "store_url_invalid"),
    (("status", "--store", "bogus://x"), "store_url_invalid"),
    (("db", "upgrade", "--store", "bogus://x"), "store_url_invalid"),
    (("play", "--store", "bogus://x", "--name", "Bob"), "store_url_invalid"),
    (("play", "--url", "ftp://x"), "invalid_url"),
    (("events", "player:Bob"), "store_not_found"),
    (("loadtest", "--url", "ftp://x"), "loadtest"),
    *(
        ((*command, "--data-dir", "FILE"), "invalid_data_dir")
        for command in (
            ("play", "--name", "Bob"),
            ("events", "player:Bob"),
            ("state", "player:Bob"),
            ("process",),
            ("relay", *SHARED),
            ("worker", *SHARED),
            ("status",),
            ("serve",),
            ("db", "upgrade"),
            ("dlq", "list"),
            ("projections", "rebuild", "rooms"),
        )
    ),
]


def aq(*args: str, cwd: Path) -> Result:
    """The command line in process, in ``cwd``, away from the caller's AQ_* settings."""
    cleared: dict[str, str | None] = {key: None for key in os.environ if key.startswith("AQ_")}
    with contextlib.chdir(cwd):
        return CliRunner().invoke(every_command(), list(args), input="", env=cleared)


def assert_refused(result: Result, code: str) -> None:
    assert "Traceback" not in result.output, result.output
    assert result.exit_code == 2, result.output
    assert isinstance(result.exception, SystemExit), "the error is a message, not a crash"
    assert result.stderr.startswith(f"error [{code}]: "), result.stderr


def tree(directory: Path) -> list[str]:
    return sorted(str(p.relative_to(directory)) for p in directory.rglob("*"))


def shown(value: object) -> str:
    return " ".join(value) or "''" if isinstance(value, tuple) else str(value)


@pytest.mark.parametrize(("args", "code"), CASES, ids=shown)
def test_a_bad_value_is_an_error_with_a_code_and_exit_2(
    tmp_path: Path, args: tuple[str, ...], code: str
) -> None:
    (tmp_path / "FILE").write_text("not a directory\n")
    before = tree(tmp_path)
    assert_refused(aq(*args, cwd=tmp_path), code)
    assert tree(tmp_path) == before, "a refused command wrote nothing"


@contextlib.contextmanager
def read_only_directory(path: Path) -> Iterator[Path]:
    """A directory nobody may write in: a read-only mount as root, else one without write bits."""
    path.mkdir()
    if os.geteuid() == 0:
        subprocess.run(["mount", "-t", "tmpfs", "-o", "ro,size=1m", "tmpfs", str(path)], check=True)
        try:
            yield path
        finally:
            subprocess.run(["umount", str(path)], check=True)
    else:
        path.chmod(0o555)
        try:
            yield path
        finally:
            path.chmod(0o755)


@pytest.mark.parametrize(
    "command",
    [("play", "--name", "Bob"), ("serve",), ("process",), ("db", "upgrade")],
    ids=shown,
)
def test_a_data_directory_that_cannot_be_written_is_refused_before_anything_starts(
    tmp_path: Path, command: tuple[str, ...]
) -> None:
    with read_only_directory(tmp_path / "ro") as directory:
        for data_dir in (directory, directory / "inside"):
            result = aq(*command, "--data-dir", str(data_dir), cwd=tmp_path)
            assert_refused(result, "invalid_data_dir")
            why = "read-only file system" if os.geteuid() == 0 else "permission denied"
            assert why in result.stderr
        assert tree(directory) == []
