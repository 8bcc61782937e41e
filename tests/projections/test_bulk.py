"""A projection's whole-batch ``apply_all`` leaves the rows as applying each event in turn.

The reference also reads every row from the database, so the rows the batched runner keeps
between batches (``RowCache``) are checked against it too.
"""

from __future__ import annotations

import random
from collections.abc import Iterable, Sequence

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from adventure_quest.app.aggregates import event_codec
from adventure_quest.app.game import Game
from adventure_quest.app.repository import Repository
from adventure_quest.app.world_loader import load_world
from adventure_quest.domain.events import Event
from adventure_quest.projections.catalog import projections
from adventure_quest.projections.model import (
    Projection,
    ReadModel,
    Row,
    RowKey,
    Rows,
    Table,
)
from adventure_quest.projections.runner import ProjectionRunner
from adventure_quest.projections.sqlite import SQLiteReadDatabase
from adventure_quest.store.envelope import RecordedEvent
from adventure_quest.store.memory import MemoryEventStore, MemorySnapshotStore
from tests.projections.test_pipeline import play

WORLD = load_world()


class OneByOne(ReadModel):
    """A projection without its ``apply_all``: the reference, one event at a time."""

    def __init__(self, projection: Projection) -> None:
        self.projection = projection
        self.name = projection.name
        self.tables: Sequence[Table] = projection.tables
        self.handles = projection.handles

    def prefetch(self, event: Event, recorded: RecordedEvent) -> Iterable[RowKey]:
        return self.projection.prefetch(event, recorded)

    async def apply(self, event: Event, recorded: RecordedEvent, rows: Rows) -> None:
        await self.projection.apply(event, recorded, rows)


async def tables(runner: ProjectionRunner) -> dict[str, list[Row]]:
    return {t.name: await runner.db.select(t, order_by=[(t.key, False)]) for t in runner.tables}


def test_every_read_model_but_two_applies_whole_batches() -> None:
    bulk = {p.name for p in projections(WORLD) if type(p).apply_all is not ReadModel.apply_all}
    assert bulk == {"player_details", "room_view", "world_stats"}


@settings(
    max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(seed=st.integers(0, 10_000), cuts=st.lists(st.integers(1, 120), min_size=1, max_size=8))
async def test_whole_batches_leave_every_row_as_one_event_at_a_time(
    tmp_path_factory: pytest.TempPathFactory, seed: int, cuts: list[int]
) -> None:
    folder = tmp_path_factory.mktemp("bulk")

    store = MemoryEventStore()
    rolls = random.Random(seed)
    game = Game(
        Repository(store, MemorySnapshotStore(), event_codec()),
        WORLD,
        roll=lambda: rolls.randint(1, 6),
    )
    await play(game, ["Ann", "Bob", "Cid", "Dee"], 25, seed)
    log = await store.read_all(0, 100_000)
    reference = ProjectionRunner(
        SQLiteReadDatabase(str(folder / "one.sqlite")),
        [OneByOne(p) for p in projections(WORLD)],
        store,
        event_codec(),
        cache_rows=0,  # and every row read from the database
    )
    batched = ProjectionRunner(
        SQLiteReadDatabase(str(folder / "bulk.sqlite")),
        projections(WORLD),
        store,
        event_codec(),
    )
    for each in (reference, batched):
        await each.setup()
    for event in log:
        await reference.apply([event])
    start, n = 0, 0
    while start < len(log):  # batches of the drawn sizes, in turn
        size = cuts[n % len(cuts)]
        await batched.apply(log[start : start + size])
        start, n = start + size, n + 1
    assert batched.totals.applied == reference.totals.applied == len(log) * 5
    assert await tables(batched) == await tables(reference)
    for each in (reference, batched):
        await each.db.close()
