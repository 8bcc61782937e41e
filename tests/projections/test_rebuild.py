"""Rebuilding a read model from the log while live traffic goes on (invariant 5)."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path

from adventure_quest.app.aggregates import event_codec
from adventure_quest.app.game import Game
from adventure_quest.app.repository import Repository
from adventure_quest.app.world_loader import load_world
from adventure_quest.messaging.memory import MemoryQueue
from adventure_quest.processing.projection_worker import ProjectionWorker
from adventure_quest.processing.relay import Relay
from adventure_quest.projections.catalog import projections
from adventure_quest.projections.rebuild import rebuild
from adventure_quest.projections.rooms import ROOM_VIEW
from adventure_quest.projections.runner import ProjectionRunner
from adventure_quest.projections.sqlite import SQLiteReadDatabase
from adventure_quest.store.memory import (
    MemoryCheckpointStore,
    MemoryEventStore,
    MemorySnapshotStore,
)
from tests.projections.test_pipeline import dump, play
from tests.projections.test_pipeline import rebuild as rebuild_from_scratch

WORLD = load_world()


async def test_a_rebuild_during_live_traffic_ends_equal_to_the_log(tmp_path: Path) -> None:
    store = MemoryEventStore()
    game = Game(Repository(store, MemorySnapshotStore(), event_codec()), WORLD, roll=lambda: 1)
    db = SQLiteReadDatabase(str(tmp_path / "live.sqlite"))
    runner = ProjectionRunner(db, projections(WORLD), store, event_codec())
    await runner.setup()
    queue = MemoryQueue(["projections"], 4)
    relay = Relay(store, queue, MemoryCheckpointStore(), idle_wait_s=0.02)
    worker = ProjectionWorker(runner, queue, range(4), fetch_timeout_s=0.02)
    stop = asyncio.Event()
    tasks = [asyncio.create_task(relay.run(stop)), asyncio.create_task(worker.run(stop))]
    await play(game, ["Ada", "Bo", "Cy"], 30, seed=5)
    while await relay.lag():
        await asyncio.sleep(0.01)
    # Damage the live read model, as a buggy projection version would have.
    async with db.unit() as unit:
        await unit.write(ROOM_VIEW, {}, [WORLD.start_room, "market_street"])
    seen: list[tuple[int, int]] = []
    more = asyncio.create_task(play(game, ["Dee"], 20, seed=6))  # live traffic meanwhile
    result = await rebuild(runner, "room_view", lambda done, total: seen.append((done, total)))
    await more
    while await relay.lag():
        await asyncio.sleep(0.01)
    stop.set()
    await asyncio.gather(*tasks)
    assert result.events > 0
    assert seen
    assert seen[-1][0] == seen[-1][1]  # progress reached its total
    assert all(done <= total for done, total in seen)
    live = await dump(db)
    await db.close()
    assert live == await rebuild_from_scratch(store, tmp_path / "scratch.sqlite")
    with sqlite3.connect(tmp_path / "live.sqlite") as conn:  # the shadow's versions are gone
        names = conn.execute(
            "SELECT DISTINCT key FROM projection_stream_versions, json_each(versions)"
        ).fetchall()
    assert {name for (name,) in names} == {p.name for p in runner.projections}
    assert any(row["room"] == WORLD.start_room for row in live["room_view"])
