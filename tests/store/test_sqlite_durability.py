"""SQLite specifics: durable on acknowledge (invariant 1), group commit, multi-process safety."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

from adventure_quest.store.envelope import NO_STREAM, NewEvent
from adventure_quest.store.sqlite.events import SQLiteEventStore

WRITER = textwrap.dedent(
    """
    import asyncio, sys
    from adventure_quest.store.envelope import NewEvent
    from adventure_quest.store.sqlite.events import SQLiteEventStore

    async def main(path: str, prefix: str) -> None:
        store = SQLiteEventStore(path)

        async def client(n: int) -> None:
            version = 0
            while True:
                event = NewEvent("Happened", b"{}")
                result = await store.append(f"{prefix}-{n}", version, [event])
                version = result.version
                print(event.event_id, flush=True)  # acknowledged: durable from here on

        await asyncio.gather(*(client(n) for n in range(16)))

    asyncio.run(main(sys.argv[1], sys.argv[2]))
    """
)


def acknowledged_until_kill_9(path: Path, attempt: int) -> list[str]:
    """Run WRITER on ``path``, kill -9 it once it acknowledged enough: the ids it acknowledged."""
    writer = subprocess.Popen(
        [sys.executable, "-c", WRITER, str(path), f"run{attempt}"],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert writer.stdout is not None
    acknowledged: list[str] = []
    deadline = time.monotonic() + 30
    while len(acknowledged) < 500 * (attempt + 1) and time.monotonic() < deadline:
        acknowledged.append(writer.stdout.readline().strip())
    os.kill(writer.pid, signal.SIGKILL)
    acknowledged += [line.strip() for line in writer.stdout if line.strip()]
    writer.stdout.close()
    writer.wait()
    return acknowledged


async def test_every_acknowledged_append_survives_a_kill_9(tmp_path: Path) -> None:
    path = tmp_path / "events.sqlite"
    for attempt in range(3):
        # The writer is driven with blocking reads: off the event loop.
        acknowledged = await asyncio.to_thread(acknowledged_until_kill_9, path, attempt)
        assert len(acknowledged) >= 500

        store = SQLiteEventStore(str(path))
        try:
            ids: set[str] = set()
            position = 0
            while page := await store.read_all(position, 5000):
                ids.update(e.event_id for e in page)
                position = page[-1].position
            assert position == await store.head()
        finally:
            await store.close()

        missing = set(acknowledged) - ids
        assert not missing, f"{len(missing)} acknowledged events lost after kill -9"


async def test_concurrent_appends_share_commits(tmp_path: Path) -> None:
    store = SQLiteEventStore(str(tmp_path / "events.sqlite"))
    try:
        await asyncio.gather(
            *(store.append(f"s-{n}", NO_STREAM, [NewEvent("Happened", b"{}")]) for n in range(500))
        )
        commits, head = store.commits, await store.head()
    finally:
        await store.close()
    assert head == 500
    assert commits <= 50, f"{commits} commits for 500 concurrent appends: no group commit"


APPENDER = textwrap.dedent(
    """
    import asyncio, sys
    from adventure_quest.store.envelope import ANY, NewEvent
    from adventure_quest.store.sqlite.events import SQLiteEventStore

    async def main(path: str, name: str) -> None:
        store = SQLiteEventStore(path)
        event = NewEvent("Happened", b"{}")
        await asyncio.gather(
            *(store.append(f"{name}-{n % 7}", ANY, [event.__replace__(event_id=str(n) + name)])
              for n in range(300))
        )
        await store.close()

    asyncio.run(main(sys.argv[1], sys.argv[2]))
    """
)


async def test_several_processes_appending_to_one_file_keep_the_log_gap_free(
    tmp_path: Path,
) -> None:
    path = tmp_path / "events.sqlite"
    await SQLiteEventStore(str(path)).close()  # create the schema once, before the race
    writers = [
        subprocess.Popen([sys.executable, "-c", APPENDER, str(path), f"p{n}"]) for n in range(3)
    ]
    # Waiting for the writers blocks: off the event loop.
    assert await asyncio.to_thread(lambda: all(writer.wait(timeout=60) == 0 for writer in writers))

    store = SQLiteEventStore(str(path))
    try:
        log = await store.read_all(0, 10_000)
        assert [e.position for e in log] == list(range(1, 901))
        for stream in {e.stream_id for e in log}:
            versions = [e.version for e in log if e.stream_id == stream]
            assert versions == list(range(1, len(versions) + 1))
    finally:
        await store.close()
