"""Workers that own different queue partitions never write the same read-model row.

This is what lets projection throughput grow with workers on one read database (issue 13,
docs/scaling.md): a unit holds its rows' locks until it commits, so a row that units of two
partitions both wrote would make their workers wait for each other. Every row a read model
writes must therefore be written by the events of one partition only; and projecting the
partitions apart, in any interleaving, must leave the rows that projecting the log in order
leaves (a rebuild equals the live read models).
"""

from __future__ import annotations

import random
from collections.abc import AsyncIterator, Collection, Sequence
from contextlib import asynccontextmanager
from itertools import combinations
from typing import Any, cast

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from adventure_quest.app.aggregates import event_codec
from adventure_quest.app.game import Game
from adventure_quest.app.repository import Repository
from adventure_quest.app.world_loader import load_world
from adventure_quest.messaging.ports import partition_of
from adventure_quest.projections.catalog import projections
from adventure_quest.projections.model import Row, RowKey, Table, Unit
from adventure_quest.projections.ports import ReadDatabase
from adventure_quest.projections.runner import ProjectionRunner
from adventure_quest.projections.sqlite import SQLiteReadDatabase
from adventure_quest.projections.world_stats import EVENTS_PER_MINUTE
from adventure_quest.store.memory import MemoryEventStore, MemorySnapshotStore
from tests.projections.test_bulk import tables
from tests.projections.test_pipeline import play

WORLD = load_world()
NAMES = ["Ann", "Bob", "Cid", "Dee", "Eve", "Fay"]


class Written:
    """A read database whose units note every row they write or delete."""

    def __init__(self, db: ReadDatabase) -> None:
        self.db = db
        self.keys: set[RowKey] = set()
        self.scopes: set[tuple[int, ...]] = set()

    def __getattr__(self, name: str) -> Any:
        return getattr(self.db, name)

    @asynccontextmanager
    async def unit(self, scope: Collection[int] | None = None) -> AsyncIterator[Unit]:
        self.scopes.add(tuple(scope or ()))
        async with self.db.unit(scope) as unit:
            yield cast(Unit, _NotingUnit(unit, self.keys))


class _NotingUnit:
    def __init__(self, unit: Unit, keys: set[RowKey]) -> None:
        self._unit, self._keys = unit, keys

    def __getattr__(self, name: str) -> Any:
        return getattr(self._unit, name)

    async def write(self, table: Table, puts: dict[str, Row], deletes: Sequence[str]) -> None:
        self._keys.update((table.name, key) for key in [*puts, *deletes])
        await self._unit.write(table, puts, deletes)


@settings(
    max_examples=10, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    seed=st.integers(0, 10_000),
    partitions=st.sampled_from([2, 3, 4, 8]),
    batch=st.integers(1, 40),
    turns=st.lists(st.integers(0, 7), min_size=1, max_size=20),
)
async def test_partitions_projected_apart_write_disjoint_rows_and_equal_the_whole_log(
    tmp_path_factory: pytest.TempPathFactory,
    seed: int,
    partitions: int,
    batch: int,
    turns: list[int],
) -> None:
    folder = tmp_path_factory.mktemp("partitions")
    store = MemoryEventStore()
    rolls = random.Random(seed)
    game = Game(
        Repository(store, MemorySnapshotStore(), event_codec()),
        WORLD,
        roll=lambda: rolls.randint(1, 6),
    )
    await play(game, NAMES, 20, seed)
    log = await store.read_all(0, 100_000)
    whole = ProjectionRunner(
        SQLiteReadDatabase(str(folder / "whole.sqlite")),
        projections(WORLD, partitions),
        store,
        event_codec(),
        partitions=partitions,
    )
    await whole.setup()
    await whole.apply(log)

    shared = SQLiteReadDatabase(str(folder / "apart.sqlite"))
    spies = [Written(shared) for _ in range(partitions)]
    workers = [
        ProjectionRunner(
            cast(ReadDatabase, spy),
            projections(WORLD, partitions),
            store,
            event_codec(),
            partitions=partitions,
        )
        for spy in spies
    ]
    await workers[0].setup()
    backlog = [
        [e for e in log if partition_of(e.stream_id, partitions) == p] for p in range(partitions)
    ]
    assert sum(map(len, backlog)) == len(log)
    turn = 0
    while any(backlog):  # the drawn turns say which worker applies its next batch
        p = turns[turn % len(turns)] % partitions
        turn += 1
        if not backlog[p]:
            p = next(q for q in range(partitions) if backlog[q])
        await workers[p].apply(backlog[p][:batch])
        backlog[p] = backlog[p][batch:]

    for p, spy in enumerate(spies):  # each unit said it changes rows of its partition only
        assert spy.scopes <= {(p,)}, spy.scopes
    for (p, one), (q, other) in combinations(enumerate(spies), 2):
        both = one.keys & other.keys
        assert not both, f"partitions {p} and {q} both wrote {sorted(both)[:5]}"
    assert await tables(workers[0]) == await tables(whole)
    minutes = await shared.totals(EVENTS_PER_MINUTE, "minute", summed="events")
    assert sum(minutes.values()) == len(log)  # the partitions' rows of a minute add up
    await shared.close()
    await whole.db.close()
