"""A worker frozen past its partition leases wakes as a zombie: it is fenced, it applies nothing.

Real processes: `aq relay` and two `aq worker --partitions auto` around NATS JetStream (a stream
and lease bucket of this test's own at 127.0.0.1:4222), a SQLite event store the test appends to,
a SQLite read database. Worker a applies the first traffic alone. Then the test holds the read
database's write lock, so a's next batch (fetched, not acknowledged) waits for it inside a's
applier, and freezes a there (SIGSTOP); it lets the lock go. Once a's leases have expired
(AQ_LEASE_TTL of a second and a half), worker b claims every partition, applies a's batch again
and more traffic. Then a is woken (SIGCONT) with its batch: the read database refuses its unit
(a newer token is recorded for those partitions), so a commits nothing of it and drops those
partitions; its metrics say so. Afterwards every event is applied once and the read models
equal a rebuild from the log.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sqlite3
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import nats

from adventure_quest.processing.groups import GROUP
from adventure_quest.store.envelope import ANY, NewEvent
from adventure_quest.store.sqlite.events import SQLiteEventStore
from tests.conftest import run
from tests.processing.test_auto_assign import delete_stream_and_bucket
from tests.processing.test_faults import drain, rebuild_equals_live
from tests.prometheus_text import sample
from tests.services import free_port

AQ = str(Path(sys.executable).parent / "aq")
PARTITIONS = 4
TTL_S = 1.5


@contextlib.contextmanager
def process(args: list[str], env: dict[str, str], log: Path) -> Iterator[subprocess.Popen[bytes]]:
    """``aq ARGS``, its output in ``log``; woken and stopped (killed if it must) at the end."""
    with log.open("wb") as out:
        started = subprocess.Popen([AQ, *args], env=env, stdout=out, stderr=out)
    try:
        yield started
    finally:
        if started.poll() is None:
            started.send_signal(signal.SIGCONT)  # a frozen process handles no SIGTERM
            started.send_signal(signal.SIGTERM)
            try:
                started.wait(timeout=20)
            except subprocess.TimeoutExpired:
                started.kill()
                started.wait()


def until(condition: Callable[[], bool], what: str, seconds: float = 30.0) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, f"{what}: not within {seconds} s"
        time.sleep(0.1)


async def say(store_path: Path, round_: int, count: int = 24) -> None:
    """``count`` events on twelve streams, which fall in each of the four partitions."""
    store = SQLiteEventStore(str(store_path))
    try:
        for n in range(count):
            event = NewEvent(
                "PlayerSaid", f'{{"room":"village_square","text":"{round_}"}}'.encode()
            )
            await store.append(f"player-zombie{n % 12}", ANY, [event])
    finally:
        await store.close()


def all_applied(store_path: Path, read_path: Path) -> bool:
    with contextlib.closing(sqlite3.connect(store_path, timeout=30)) as events:
        versions = dict(
            events.execute("SELECT stream_id, max(version) FROM events GROUP BY stream_id")
        )
    try:
        with contextlib.closing(sqlite3.connect(read_path, timeout=30)) as read:
            tally = dict(read.execute("SELECT stream_id, events FROM stream_tally"))
    except sqlite3.OperationalError:  # no tables yet
        return False
    return bool(versions) and tally == versions


async def unacknowledged(stream: str) -> list[int]:
    """Per partition: how many events the projection group was delivered and has not acked."""
    client = await nats.connect("nats://127.0.0.1:4222")
    try:
        js = client.jetstream()
        pending = []
        for partition in range(PARTITIONS):
            info = await js.consumer_info(stream, f"{GROUP}-p{partition}")
            pending.append(info.num_ack_pending or 0)
        return pending
    finally:
        await client.close()


def holds_a_batch_of_each_partition(stream: str) -> bool:
    """The streams the test appends to cover every partition, so each has a batch to hold."""
    return all(run(unacknowledged(stream)))


def figures(port: int) -> dict[str, float]:
    text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text
    names = ("applied_events", "duplicates_events", "fenced_units")
    return {name: sample(text, f"aq_projection_{name}_total") for name in names}


def test_a_worker_woken_after_its_leases_moved_is_fenced_and_commits_nothing(
    tmp_path: Path,
) -> None:
    stream = f"AQZOMBIE{uuid.uuid4().hex[:8].upper()}"
    store_path, read_path = tmp_path / "events.sqlite", tmp_path / "read.sqlite"
    env = {
        **os.environ,
        "AQ_STORE": f"sqlite:///{store_path}",
        "AQ_READ_DB": f"sqlite:///{read_path}",
        "AQ_QUEUE": f"nats://127.0.0.1:4222/{stream}",
        "AQ_PARTITIONS": str(PARTITIONS),
        "AQ_LEASE_TTL": str(TTL_S),
        "AQ_TICK_SECONDS": "3600",  # no world-clock traffic of the workers' own meanwhile
    }
    port_a = free_port()
    auto = ["worker", "--partitions", "auto"]
    run(say(store_path, 0))  # the store exists before the relay opens it
    try:
        with (
            process(["relay"], env, tmp_path / "relay.log"),
            process(auto, {**env, "AQ_METRICS_PORT": str(port_a)}, tmp_path / "a.log") as a,
        ):
            until(lambda: all_applied(store_path, read_path), "a applies the first traffic")
            held = sqlite3.connect(read_path, isolation_level=None)
            try:
                held.execute("BEGIN IMMEDIATE")  # a's next unit waits for this lock
                run(say(store_path, 1))
                until(lambda: holds_a_batch_of_each_partition(stream), "a fetches its batches")
                before = figures(port_a)
                a.send_signal(signal.SIGSTOP)
            finally:
                held.execute("ROLLBACK")
                held.close()
            with process(auto, env, tmp_path / "b.log") as b:
                until(lambda: all_applied(store_path, read_path), "b applies a's batch", 40)
                run(say(store_path, 2))
                until(lambda: all_applied(store_path, read_path), "b applies more traffic")
                a.send_signal(signal.SIGCONT)
                until(lambda: figures(port_a) != before, "a does something with its batch", 20)
                time.sleep(TTL_S)  # and anything else it would do with it
                after = figures(port_a)
                assert after["applied_events"] == before["applied_events"]
                assert after["duplicates_events"] == before["duplicates_events"], (
                    "a committed its stale batch after waking"
                )
                assert after["fenced_units"] >= 1
                run(say(store_path, 3))  # a and b share the partitions again, under new tokens
                until(lambda: all_applied(store_path, read_path), "a and b apply the rest")
                assert b.poll() is None
            assert a.poll() is None
        dropped = (tmp_path / "a.log").read_text()
        assert "dropping partition" in dropped, dropped
        # What the workers' process managers may have appended meanwhile is applied too.
        versions, tally = run(drain(env, store_path, read_path))
        assert tally == versions
        rebuilt = tmp_path / "rebuilt.sqlite"
        assert run(rebuild_equals_live(store_path, read_path, rebuilt, PARTITIONS)) == []
    finally:
        asyncio.run(delete_stream_and_bucket(stream))
