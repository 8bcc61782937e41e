"""The item duplication repro, end to end through the `aq` command (embedded shape).

A character takes and drops the square's torch 70 times in `aq play` while nothing processes
the log, so every hand-over is finished inline. Then `aq process` starts: its hand-over manager
is 140 hand-overs behind and runs every finish again. Before hand-over finishes were recorded
once by their derived event ids, the receiver only remembered its last 64 hand-overs, the late
repeats went through and the room ended with 200 ``ItemPutDown`` (and the torch on the floor
many times over). Now nothing is appended: not by the first run, not by a restart, and not when
the relay lost its checkpoint and every hand-over goes through the manager once more.

Everything runs as subprocesses of the installed `aq`, so ``PYTHONPATH=/path/to/src`` runs the
same test against another checkout of the code.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import sqlite3
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

AQ = str(Path(sys.executable).with_name("aq"))
CYCLES = 70
ROOM = "room-village_square"
PLAYER = "player:Dupe"
TORCH = {"item_id": "village_square.torch.0", "item_key": "torch"}
#: World-clock ticks (and the restocks they bring) are not what this is about: one an hour.
ENV = {**os.environ, "AQ_TICK_SECONDS": "3600"}
#: Longest wait for `aq process` to catch up with a few hundred events (it takes about a second).
CATCH_UP_S = 40.0


def aq(*args: str, data_dir: Path, stdin: str | None = None, timeout: float = 60) -> str:
    """Run `aq ARGS --data-dir DATA_DIR`; its stdout (it must succeed)."""
    done = subprocess.run(
        [AQ, *args, "--data-dir", str(data_dir)],
        input=stdin,
        env=ENV,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    assert done.returncode == 0, f"aq {' '.join(args)} exited {done.returncode}: {done.stderr}"
    return done.stdout


def events(stream: str, data_dir: Path) -> list[dict[str, Any]]:
    """A stream's history through `aq events --json` (one JSON object per line)."""
    lines = aq("events", stream, "--json", data_dir=data_dir).splitlines()
    return [json.loads(line) for line in lines if line.strip()]


def counts(history: list[dict[str, Any]]) -> Counter[str]:
    return Counter(event["event_type"] for event in history)


def handovers(history: list[dict[str, Any]], event_type: str) -> Counter[str]:
    """How often each hand-over id appears in events of one type."""
    return Counter(
        event["payload"]["handover_id"] for event in history if event["event_type"] == event_type
    )


def caught_up(data_dir: Path) -> tuple[bool, list[int]]:
    """Whether every relay has published up to its shard's head, and the heads.

    With the in-process queue a relay's checkpoint moves only once every consumer group, the
    hand-over manager's included, has handled and acknowledged the batch; and whatever the
    manager appends while handling it is in the log before that. So a relay at its head means
    the manager has seen every hand-over and nothing it did is left to publish.
    """
    status = json.loads(aq("status", "--json", data_dir=data_dir))
    relays = status["relays"]
    done = bool(relays) and all(r["position"] == r["head"] for r in relays)
    return done and status["dead_letters"] == 0, [r["head"] for r in relays]


@contextlib.contextmanager
def processing(data_dir: Path, log: Path) -> Iterator[subprocess.Popen[bytes]]:
    """`aq process` until the block ends; then SIGINT, and it must exit cleanly (status 0)."""
    with log.open("wb") as out:
        process = subprocess.Popen(
            [AQ, "process", "--data-dir", str(data_dir)], env=ENV, stdout=out, stderr=out
        )
    try:
        yield process
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGINT)
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
                raise AssertionError(f"aq process ignored SIGINT: {log.read_text()}") from None
    assert process.returncode == 0, f"aq process exited {process.returncode}: {log.read_text()}"


def run_until_caught_up(data_dir: Path, log: Path) -> int:
    """Run `aq process` until two looks in a row find it caught up at the same heads; how many
    events it published (from its last progress line, printed as it stops)."""
    with processing(data_dir, log) as process:
        deadline = time.monotonic() + CATCH_UP_S
        previous: list[int] | None = None
        while True:
            assert process.poll() is None, f"aq process died: {log.read_text()}"
            done, heads = caught_up(data_dir)
            if done and heads == previous:
                break
            previous = heads if done else None
            assert time.monotonic() < deadline, f"not caught up in {CATCH_UP_S} s: {heads}"
    published = re.findall(r"^published (\d+),", log.read_text(), re.MULTILINE)
    assert published, log.read_text()
    return int(published[-1])


def check_the_torch(data_dir: Path, round_name: str) -> tuple[list[str], list[str]]:
    """Exact counts, each hand-over finished once, the torch once on the floor; the event ids."""
    room, player = events(ROOM, data_dir), events(PLAYER, data_dir)
    on_room, on_player = counts(room), counts(player)
    assert (on_room["ItemPickedUp"], on_room["ItemPutDown"]) == (CYCLES, CYCLES), (
        round_name,
        on_room,
    )
    assert (on_player["ItemTaken"], on_player["ItemDropped"]) == (CYCLES, CYCLES), (
        round_name,
        on_player,
    )
    assert on_player["HandoverSettled"] == 0, (round_name, on_player)
    # Each hand-over started on one stream is finished exactly once on the other.
    taken, picked = handovers(player, "ItemTaken"), handovers(room, "ItemPickedUp")
    dropped, put_down = handovers(player, "ItemDropped"), handovers(room, "ItemPutDown")
    assert taken == picked, round_name
    assert put_down == dropped, round_name
    assert set(taken.values()) == set(dropped.values()) == {1}, round_name
    assert len(taken) == len(dropped) == CYCLES, round_name
    square = json.loads(aq("state", ROOM, data_dir=data_dir))["state"]
    assert square["items"] == [TORCH], (round_name, square["items"])
    dupe = json.loads(aq("state", PLAYER, data_dir=data_dir))["state"]
    assert dupe["inventory"] == [], (round_name, dupe["inventory"])
    return [e["event_id"] for e in room], [e["event_id"] for e in player]


def test_a_manager_140_handovers_behind_finishes_none_of_them_twice(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    script = "\n".join(["Dupe", *["take torch", "drop torch"] * CYCLES, "quit", ""])
    played = aq("play", data_dir=data_dir, stdin=script)
    assert played.count("You take the torch.") == CYCLES, played[-2000:]
    assert played.count("You drop the torch.") == CYCLES, played[-2000:]
    # Nothing processed yet: the log holds every finish, made inline, and nothing else.
    inline = check_the_torch(data_dir, "after play")

    # The hand-over manager starts 140 hand-overs behind and finishes each one again.
    assert run_until_caught_up(data_dir, tmp_path / "process1.log") >= 4 * CYCLES
    processed = check_the_torch(data_dir, "first aq process")
    # The room got nothing more; the character only what the achievements manager unlocked.
    assert processed[0] == inline[0]
    assert processed[1][: len(inline[1])] == inline[1]
    added = counts(events(PLAYER, data_dir)[len(inline[1]) :])
    assert set(added) <= {"AchievementUnlocked"}, added

    # A restart adds nothing.
    assert run_until_caught_up(data_dir, tmp_path / "process2.log") == 0
    assert check_the_torch(data_dir, "second aq process") == processed

    # A relay that lost its checkpoint publishes everything again ("a lost checkpoint only
    # means events published again"): the manager sees all 140 hand-overs once more.
    with contextlib.closing(sqlite3.connect(data_dir / "events.sqlite")) as db, db:
        forgotten = db.execute("DELETE FROM checkpoints").rowcount
    assert forgotten == 1
    assert run_until_caught_up(data_dir, tmp_path / "process3.log") >= 4 * CYCLES
    assert check_the_torch(data_dir, "aq process after the relay lost its checkpoint") == processed

    # The audit of every room and character finds no instance in two places.
    audit = aq("items", "check", data_dir=data_dir)
    assert "0 in more than one place" in audit, audit
