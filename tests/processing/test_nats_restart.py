"""The whole pipeline through a NATS server that crashes and comes back: nothing lost or doubled."""

from __future__ import annotations

import asyncio
import contextlib
import random
import signal
from pathlib import Path

from adventure_quest.app.aggregates import event_codec, player_id_for
from adventure_quest.app.game import Game
from adventure_quest.app.repository import Repository
from adventure_quest.app.world_loader import load_world
from adventure_quest.domain.errors import DomainError
from adventure_quest.messaging.nats import NatsQueue
from adventure_quest.processing.groups import GROUP
from adventure_quest.processing.projection_worker import ProjectionWorker
from adventure_quest.processing.relay import Relay
from adventure_quest.projections.catalog import projections
from adventure_quest.projections.runner import ProjectionRunner
from adventure_quest.projections.sqlite import SQLiteReadDatabase
from adventure_quest.projections.world_stats import STREAM_TALLY
from adventure_quest.store.memory import MemoryCheckpointStore, MemorySnapshotStore
from adventure_quest.store.sqlite.events import SQLiteEventStore
from tests.processing.test_faults import rebuild_equals_live
from tests.services import NatsServer

WORLD = load_world()


async def test_a_nats_crash_and_restart_in_mid_traffic_loses_and_doubles_nothing(
    tmp_path: Path,
) -> None:
    server = NatsServer(tmp_path / "nats")
    (tmp_path / "nats").mkdir()
    server.start()
    store_path, read_path = tmp_path / "events.sqlite", tmp_path / "read.sqlite"

    try:
        store = SQLiteEventStore(str(store_path))
        game = Game(Repository(store, MemorySnapshotStore(), event_codec()), WORLD)
        queue = NatsQueue(server.url, stream="AQ_RESTART", partitions=4, timeout=1.0)
        db = SQLiteReadDatabase(str(read_path))
        runner = ProjectionRunner(db, projections(WORLD, 4), store, event_codec(), partitions=4)
        await runner.setup()
        relay = Relay(store, queue, MemoryCheckpointStore(), idle_wait_s=0.05)
        worker = ProjectionWorker(runner, queue, range(4), group=GROUP, fetch_timeout_s=0.1)
        stop = asyncio.Event()
        tasks = [asyncio.create_task(relay.run(stop)), asyncio.create_task(worker.run(stop))]
        names = [f"Storm{n}" for n in range(4)]
        for name in names:
            await game.create_character(name)
        rng = random.Random(3)

        async def play(seconds: float) -> None:
            deadline = asyncio.get_running_loop().time() + seconds
            while asyncio.get_running_loop().time() < deadline:
                me = player_id_for(rng.choice(names))
                with contextlib.suppress(DomainError):
                    await rng.choice([game.say, game.move])(me, rng.choice(["north", "south"]))
                await asyncio.sleep(0.002)

        await play(0.5)
        server.stop(signal.SIGKILL)  # the broker crashes in mid-traffic
        await play(0.7)  # the game goes on: the store does not need the queue
        server.start()
        await play(0.5)
        versions: dict[str, int] = {}
        tally: dict[str, int] = {}
        for _ in range(600):
            versions = {}
            for event in await store.read_all(0, 100_000):
                versions[event.stream_id] = event.version
            tally = {r["stream_id"]: r["events"] for r in await db.select(STREAM_TALLY)}
            if tally == versions:
                break
            await asyncio.sleep(0.05)
        stop.set()
        await asyncio.gather(*tasks)
        relay_failures = relay.failures
        await queue.close()
        await db.close()
        await store.close()
    finally:
        server.stop(signal.SIGKILL)
    assert relay_failures > 0, "the relay never saw the broker down: the test tested nothing"
    assert tally == versions  # every stream: applied exactly as many events as it has
    assert sum(versions.values()) > 100
    assert await rebuild_equals_live(store_path, read_path, tmp_path / "rebuilt.sqlite", 4) == []
