"""Several processes sharing one SQLite store file keep every acknowledged append.

A process with two store objects on the file (an event store and a snapshot store, as `aq relay`,
`aq worker` and `aq play` have) used to read the file's header with a plain open() and close()
after its first connection was open. Closing any descriptor of a file drops all of the process's
POSIX locks on it, so its connection lost its WAL read lock; the next process to close its last
connection deleted the WAL, and the appends the first process went on acknowledging were written
to a deleted file: lost to everyone else.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

CHILD = textwrap.dedent(
    """
    import asyncio, sys
    from adventure_quest.store.envelope import ANY, NewEvent
    from adventure_quest.store.sqlite.events import SQLiteEventStore
    from adventure_quest.store.sqlite.checkpoints import SQLiteCheckpointStore
    from adventure_quest.store.sqlite.snapshots import SQLiteSnapshotStore

    async def main(path: str, role: str) -> None:
        store = SQLiteEventStore(path)
        if role == "long-lived":
            await store.append("stream-a1", ANY, [NewEvent("E", b"{}")])
            others = [SQLiteSnapshotStore(path), SQLiteCheckpointStore(path)]
            print("ready", flush=True)
            sys.stdin.readline()
            result = await store.append("stream-a2", ANY, [NewEvent("E", b"{}")])
            print(result.position, flush=True)
            sys.stdin.readline()
            for other in others:
                await other.close()
        elif role == "read":
            print(",".join(sorted(e.stream_id for e in await store.read_all(0, 100))))
        else:
            await store.append(role, ANY, [NewEvent("E", b"{}")])
        await store.close()

    asyncio.run(main(sys.argv[1], sys.argv[2]))
    """
)


def child(path: Path, role: str) -> str:
    done = subprocess.run(
        [sys.executable, "-c", CHILD, str(path), role],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return done.stdout.strip()


def test_a_process_with_several_store_objects_loses_no_acknowledged_append(
    tmp_path: Path,
) -> None:
    path = tmp_path / "events.sqlite"
    child(path, "stream-first")
    with subprocess.Popen(
        [sys.executable, "-c", CHILD, str(path), "long-lived"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    ) as long_lived:
        try:
            assert long_lived.stdout is not None
            assert long_lived.stdin is not None
            assert long_lived.stdout.readline().strip() == "ready"
            child(path, "stream-b1")  # appends and closes: its last connection ends the WAL
            long_lived.stdin.write("append\n")
            long_lived.stdin.flush()
            assert long_lived.stdout.readline().strip() == "4"  # acknowledged
            assert child(path, "read") == "stream-a1,stream-a2,stream-b1,stream-first"
            child(path, "stream-b2")
            long_lived.stdin.write("close\n")
            long_lived.stdin.flush()
            assert long_lived.wait(timeout=60) == 0
        finally:
            long_lived.kill()
    assert child(path, "read") == "stream-a1,stream-a2,stream-b1,stream-b2,stream-first"
