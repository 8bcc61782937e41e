"""Delivered twice and out of order: the read models come out as if delivered once, in order."""

from __future__ import annotations

import random

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from adventure_quest.app.aggregates import event_codec
from adventure_quest.app.game import Game
from adventure_quest.app.repository import Repository
from adventure_quest.app.world_loader import load_world
from adventure_quest.projections.catalog import projections
from adventure_quest.projections.model import Row
from adventure_quest.projections.runner import ProjectionRunner
from adventure_quest.projections.sqlite import SQLiteReadDatabase
from adventure_quest.projections.world_stats import STREAM_TALLY
from adventure_quest.store.envelope import RecordedEvent
from adventure_quest.store.memory import MemoryEventStore, MemorySnapshotStore
from tests.projections.test_pipeline import play

WORLD = load_world()


async def tables(runner: ProjectionRunner) -> dict[str, list[Row]]:
    return {t.name: await runner.db.select(t, order_by=[(t.key, False)]) for t in runner.tables}


@settings(
    max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(seed=st.integers(0, 10_000), repeats=st.floats(0, 0.6), batch=st.integers(1, 40))
async def test_shuffled_and_repeated_delivery_applies_each_event_exactly_once(
    tmp_path_factory: pytest.TempPathFactory, seed: int, repeats: float, batch: int
) -> None:
    folder = tmp_path_factory.mktemp("order")

    store = MemoryEventStore()
    game = Game(Repository(store, MemorySnapshotStore(), event_codec()), WORLD, roll=lambda: 2)
    await play(game, ["Ann", "Bob", "Cid"], 20, seed)
    log = await store.read_all(0, 100_000)
    rng = random.Random(seed)
    # At least once, in any order, across and within streams, some of it twice or more.
    deliveries: list[RecordedEvent] = list(log)
    while rng.random() < repeats:
        deliveries += rng.sample(log, k=max(1, len(log) // 5))
    rng.shuffle(deliveries)

    def runner(name: str) -> ProjectionRunner:
        db = SQLiteReadDatabase(str(folder / f"{name}.sqlite"))
        return ProjectionRunner(db, projections(WORLD), store, event_codec())

    chaotic, orderly = runner("chaos"), runner("order")
    for each in (chaotic, orderly):
        await each.setup()
    for start in range(0, len(deliveries), batch):
        await chaotic.apply(deliveries[start : start + batch])
    for start in range(0, len(log), 50):
        await orderly.apply(log[start : start + 50])
    versions = {event.stream_id: event.version for event in log}
    tally = {r["stream_id"]: r["events"] for r in await chaotic.db.select(STREAM_TALLY)}
    assert tally == versions  # every event applied once: none lost, none twice
    assert await tables(chaotic) == await tables(orderly)
    for each in (chaotic, orderly):
        await each.db.close()
