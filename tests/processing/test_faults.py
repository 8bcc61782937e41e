"""Kill -9 the relay and the workers at random moments; nothing is lost or applied twice.

Real parts only: a SQLite event store written by a player process, NATS JetStream (a stream of
this test's own on 127.0.0.1:4222), relay and worker processes (`aq relay`, `aq worker`) that
are killed and restarted, a SQLite read database. Afterwards every stream's tally of applied
events equals its version (counted, not sampled) and every read model equals a rebuild.
"""

from __future__ import annotations

import asyncio
import os
import random
import signal
import subprocess
import sys
import textwrap
import time
import uuid
from pathlib import Path

import nats
import pytest

from adventure_quest.app.aggregates import event_codec
from adventure_quest.app.worlds import load_world
from adventure_quest.config import load_settings
from adventure_quest.processing import Processing, projections
from adventure_quest.projections.runner import ProjectionRunner
from adventure_quest.projections.sqlite import SQLiteReadDatabase
from adventure_quest.projections.world import STREAM_TALLY
from adventure_quest.store.sqlite import SQLiteEventStore
from tests.conftest import run

AQ = str(Path(sys.executable).parent / "aq")
PLAYERS = textwrap.dedent(
    """
    import asyncio, contextlib, random, sys, time
    from adventure_quest.app.aggregates import event_codec, player_id_for
    from adventure_quest.app.game import Game
    from adventure_quest.app.repository import Repository
    from adventure_quest.app.worlds import load_world
    from adventure_quest.domain.errors import DomainError
    from adventure_quest.store.sqlite import SQLiteEventStore
    from adventure_quest.store.sqlite_snapshots import SQLiteSnapshotStore

    VERBS = {"move": ["north", "south", "east", "west"], "take": ["torch", "rope", "club", "herb"],
             "drop": ["torch", "rope", "club"], "attack": ["rat", "spider"], "say": ["hi"]}

    async def main(path: str, seconds: float) -> None:
        store, snapshots = SQLiteEventStore(path), SQLiteSnapshotStore(path)
        game = Game(Repository(store, snapshots, event_codec()), load_world())
        rng, names = random.Random(7), [f"Faulty{n}" for n in range(6)]
        for name in names:
            with contextlib.suppress(DomainError):
                await game.create_character(name)
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            name, verb = rng.choice(names), rng.choice(list(VERBS))
            try:
                await getattr(game, verb)(player_id_for(name), rng.choice(VERBS[verb]))
            except DomainError:
                with contextlib.suppress(DomainError):
                    await game.respawn(player_id_for(name))
            await asyncio.sleep(0.002)
        await store.close()
        await snapshots.close()

    asyncio.run(main(sys.argv[1], float(sys.argv[2])))
    """
)


def spawn(args: list[str], env: dict[str, str]) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [AQ, *args], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )


async def delete_stream(name: str) -> None:
    client = await nats.connect("nats://127.0.0.1:4222")
    try:
        await client.jetstream().delete_stream(name)
    finally:
        await client.close()


async def tally_and_tables(
    store_path: Path, read_path: Path
) -> tuple[dict[str, int], dict[str, int]]:
    store = SQLiteEventStore(str(store_path))
    db = SQLiteReadDatabase(str(read_path))
    versions: dict[str, int] = {}
    after = 0
    while page := await store.read_all(after, 5000):
        for event in page:
            versions[event.stream_id] = event.version
        after = page[-1].position
    tally = {r["stream_id"]: r["events"] for r in await db.select(STREAM_TALLY)}
    await db.close()
    await store.close()
    return versions, tally


async def rebuild_equals_live(
    store_path: Path, live_path: Path, rebuilt_path: Path, partitions: int
) -> list[str]:
    """The tables that differ between the live read models and a replay of the whole log.

    The recorded progress (applied_positions) is compared too: live, it must have reached the
    last position of every (shard, partition), as a replay does.
    """
    store = SQLiteEventStore(str(store_path))
    live = SQLiteReadDatabase(str(live_path))
    rebuilt = SQLiteReadDatabase(str(rebuilt_path))
    runner = ProjectionRunner(
        rebuilt, projections(load_world()), store, event_codec(), partitions=partitions
    )
    await runner.setup()
    after = 0
    while page := await store.read_all(after, 1000):
        await runner.apply(page)
        after = page[-1].position
    differing = []
    for table in runner.tables:
        order = [(table.key, False)]
        if await live.select(table, order_by=order) != await rebuilt.select(table, order_by=order):
            differing.append(table.name)
    for db in (live, rebuilt):
        await db.close()
    await store.close()
    return differing


async def drain(
    env: dict[str, str], store_path: Path, read_path: Path, seconds: float = 90.0
) -> tuple[dict[str, int], dict[str, int]]:
    """Run a relay and a projection worker (no managers) until every event is applied."""
    config = load_settings(
        {},
        store_url=env["AQ_STORE"],
        read_db_url=env["AQ_READ_DB"],
        queue_url=env["AQ_QUEUE"],
        partitions=int(env["AQ_PARTITIONS"]),
    )
    async with Processing.open(config, load_world()) as processing:
        stop = asyncio.Event()
        parts = [processing.relays[0].run, processing.worker(range(config.partitions)).run]
        tasks = [asyncio.create_task(part(stop)) for part in parts]
        deadline = time.monotonic() + seconds
        while True:
            versions, tally = await tally_and_tables(store_path, read_path)
            if tally == versions or time.monotonic() > deadline:
                break
            await asyncio.sleep(0.3)
        stop.set()
        await asyncio.gather(*tasks)
    return versions, tally


def run_with_kills(tmp_path: Path, kills: int) -> None:
    stream = f"AQT_{os.getpid()}_{uuid.uuid4().hex[:8]}"
    store_path, read_path = tmp_path / "events.sqlite", tmp_path / "read.sqlite"
    env = {
        **os.environ,
        "AQ_STORE": f"sqlite:///{store_path}",
        "AQ_READ_DB": f"sqlite:///{read_path}",
        "AQ_QUEUE": f"nats://127.0.0.1:4222/{stream}",
        "AQ_PARTITIONS": "8",
    }
    roles = {
        "relay": ["relay"],
        "worker-a": ["worker", "--partitions", "0-3"],
        "worker-b": ["worker", "--partitions", "4-7"],
    }
    rng = random.Random(kills)
    players = subprocess.Popen([sys.executable, "-c", PLAYERS, str(store_path), "12"])
    time.sleep(1.0)  # the store exists before the relay opens it
    running = {role: spawn(args, env) for role, args in roles.items()}
    try:
        for _ in range(kills):
            time.sleep(rng.uniform(0.05, 0.35))
            role = rng.choice(list(roles))
            running[role].send_signal(signal.SIGKILL)
            running[role].wait()
            running[role] = spawn(roles[role], env)
        assert players.wait(timeout=120) == 0
        # Stop everything: the process managers in the workers append events of their own
        # (achievements, the clock's ticks), so the log only stands still once they are gone.
        for process in running.values():
            process.send_signal(signal.SIGTERM)
        for process in running.values():
            process.wait(timeout=20)
        # One last relay and worker, without managers, carry what was left to the read models.
        versions, tally = run(drain(env, store_path, read_path))
    finally:
        for process in running.values():
            if process.poll() is None:
                process.kill()
        players.kill()
        run(delete_stream(stream))
    lost = {s: v - tally.get(s, 0) for s, v in versions.items() if tally.get(s, 0) < v}
    doubled = {s: c - versions.get(s, 0) for s, c in tally.items() if c > versions.get(s, 0)}
    assert not lost, f"events never applied: {lost}"
    assert not doubled, f"events applied twice: {doubled}"
    assert sum(versions.values()) > 200  # the players really did play
    rebuilt_path = tmp_path / "rebuilt.sqlite"
    assert run(rebuild_equals_live(store_path, read_path, rebuilt_path, 8)) == []


def test_fifty_kills_of_relay_and_workers_lose_nothing_and_double_nothing(tmp_path: Path) -> None:
    run_with_kills(tmp_path, kills=50)


@pytest.mark.soak
def test_soak_three_hundred_kills(tmp_path: Path) -> None:
    run_with_kills(tmp_path, kills=300)
