"""Units of several writers on one PostgreSQL read database run at once and lose nothing.

Each handle here stands for a worker: its own pool, its own caches, its own runner. They apply
events that share rows (a room's view, a minute's count) at the same time, in tasks of one
process and in separate processes, and the tables must be what one writer applying every event
in order makes (SQLite, which serializes writers by nature).
"""

from __future__ import annotations

import asyncio
import multiprocessing
import pickle
import random
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from adventure_quest.app.aggregates import event_codec
from adventure_quest.app.game import Game
from adventure_quest.app.repository import Repository
from adventure_quest.app.world_loader import load_world
from adventure_quest.domain.events import Event, XpGained
from adventure_quest.messaging.ports import partition_of
from adventure_quest.projections.catalog import projections
from adventure_quest.projections.conflicts import UnitConflictError, retried
from adventure_quest.projections.model import (
    Decoded,
    Memo,
    Projection,
    ReadModel,
    Row,
    RowKey,
    Rows,
    Table,
)
from adventure_quest.projections.players import LEADERBOARD, Leaderboard
from adventure_quest.projections.postgres import PostgresReadDatabase
from adventure_quest.projections.runner import ProjectionRunner
from adventure_quest.projections.sqlite import SQLiteReadDatabase
from adventure_quest.store.envelope import ANY, RecordedEvent
from adventure_quest.store.memory import MemoryEventStore, MemorySnapshotStore
from tests import postgres
from tests.projections.test_pipeline import play

WORLD = load_world()
COUNTERS = Table("counters", key="name", columns={"n": "integer"})
_databases = iter(range(1_000_000))


class Slowed(ReadModel):
    """A read model that waits after changing its rows and before the runner writes them: the
    window in which a unit that did not lock what it read would lose another's update."""

    def __init__(self, projection: Projection, delays: Sequence[float]) -> None:
        self.projection = projection
        self.name = projection.name
        self.tables = projection.tables
        self.handles = projection.handles
        self.delays = list(delays) or [0.0]
        self.calls = 0

    def prefetch(self, event: Event, recorded: RecordedEvent) -> Iterable[RowKey]:
        return self.projection.prefetch(event, recorded)

    async def apply(self, event: Event, recorded: RecordedEvent, rows: Rows) -> None:
        await self.projection.apply(event, recorded, rows)

    async def apply_all(self, todo: Sequence[Decoded], rows: Rows, memo: Memo) -> None:
        await self.projection.apply_all(todo, rows, memo)
        self.calls += 1
        await asyncio.sleep(self.delays[self.calls % len(self.delays)])


def slowed(delays: Sequence[float]) -> list[Projection]:
    """Every read model, each waiting its own turn of ``delays``."""
    return [
        Slowed(projection, [*delays[n:], *delays[:n]])
        for n, projection in enumerate(projections(WORLD))
    ]


async def game_log(
    seed: int, players: int, steps: int
) -> tuple[MemoryEventStore, list[RecordedEvent]]:
    store = MemoryEventStore()
    rolls = random.Random(seed)
    game = Game(
        Repository(store, MemorySnapshotStore(), event_codec()),
        WORLD,
        roll=lambda: rolls.randint(1, 6),
    )
    await play(game, ["Ann", "Bob", "Cid", "Dee", "Eve"][:players], steps, seed)
    return store, await store.read_all(0, 100_000)


async def tables_of(db: SQLiteReadDatabase | PostgresReadDatabase) -> dict[str, list[Row]]:
    return {
        t.name: await db.select(t, order_by=[(t.key, False)])
        for p in projections(WORLD)
        for t in p.tables
    }


async def serially(folder: Path, store: MemoryEventStore, log: list[RecordedEvent]) -> object:
    reference = ProjectionRunner(
        SQLiteReadDatabase(str(folder / "serial.sqlite")), projections(WORLD), store, event_codec()
    )
    await reference.setup()
    for event in log:
        await reference.apply([event])
    try:
        return await tables_of(reference.db)  # type: ignore[arg-type]
    finally:
        await reference.db.close()


async def scratch() -> str:
    return await postgres.scratch_database(f"concurrent_{next(_databases)}")


async def commit_elsewhere(url: str) -> None:
    """A unit of another handle: no handle's caches are the database's now, so their units
    lock rows (a handle whose own commit was the last locks the tables as its unit begins)."""
    db = PostgresReadDatabase(url)
    try:
        async with db.unit():
            pass
    finally:
        await db.close()


async def test_units_of_two_handles_run_at_the_same_time() -> None:
    """Each unit waits, inside its transaction, for the other to have begun: under one lock
    every writer takes, the second never begins and the first waits for ever."""
    url = await scratch()
    first, second = PostgresReadDatabase(url), PostgresReadDatabase(url)
    try:
        await first.create([COUNTERS])
        await commit_elsewhere(url)
        began = [asyncio.Event(), asyncio.Event()]

        async def unit(db: PostgresReadDatabase, me: int) -> None:
            async with db.unit() as unit:
                await unit.load(COUNTERS, [f"c{me}"])
                await unit.write(COUNTERS, {f"c{me}": {"n": me}}, [])
                began[me].set()
                await began[1 - me].wait()

        await asyncio.wait_for(asyncio.gather(unit(first, 0), unit(second, 1)), 10)
        assert await first.get(COUNTERS, "c0") == {"n": 0}
        assert await first.get(COUNTERS, "c1") == {"n": 1}
    finally:
        await first.close()
        await second.close()


async def test_units_of_disjoint_scopes_run_at_once_and_units_sharing_a_partition_take_turns() -> (
    None
):
    """Scoped units (a worker's: the partitions of its events) lock their partitions' counts:
    [0, 1] and [2] run at the same time; [1, 3] begins only once [0, 1] committed."""
    url = await scratch()
    dbs = [PostgresReadDatabase(url) for _ in range(3)]
    try:
        await dbs[0].create([COUNTERS])
        began = [asyncio.Event() for _ in dbs]
        release = asyncio.Event()
        order: list[str] = []

        async def unit(me: int, scope: list[int], wait_for: int | None) -> None:
            async with dbs[me].unit(scope) as unit:
                order.append(f"begin {me}")
                began[me].set()
                await unit.write(COUNTERS, {f"c{me}": {"n": me}}, [])
                if wait_for is not None:
                    await began[wait_for].wait()  # inside: the other must begin meanwhile
                if me == 0:
                    await release.wait()
                order.append(f"end {me}")

        first = asyncio.create_task(unit(0, [0, 1], wait_for=1))
        second = asyncio.create_task(unit(1, [2], wait_for=0))
        await asyncio.wait_for(second, 10)  # ran while the first was inside its unit
        third = asyncio.create_task(unit(2, [1, 3], wait_for=None))
        await asyncio.sleep(0.5)
        assert not began[2].is_set(), "a unit sharing partition 1 began inside another's"
        release.set()
        await asyncio.wait_for(asyncio.gather(first, third), 10)
        assert order.index("end 0") < order.index("begin 2")
        for me in range(3):
            assert await dbs[0].get(COUNTERS, f"c{me}") == {"n": me}
    finally:
        for db in dbs:
            await db.close()


async def test_a_unit_without_a_scope_and_scoped_units_never_overlap() -> None:
    """One without a scope may change any row, so it waits for the scoped units in progress,
    and they for it (the scopes' counts: SHARE against ROW EXCLUSIVE)."""
    url = await scratch()
    scoped, unscoped, later = (PostgresReadDatabase(url) for _ in range(3))
    try:
        await scoped.create([COUNTERS])
        inside, release = asyncio.Event(), asyncio.Event()
        order: list[str] = []

        async def scoped_unit(db: PostgresReadDatabase, name: str) -> None:
            async with db.unit([5]):
                order.append(f"begin {name}")
                inside.set()
                await release.wait()
                order.append(f"end {name}")

        async def unscoped_unit() -> None:
            async with unscoped.unit() as unit:
                order.append("begin unscoped")
                await unit.write(COUNTERS, {"u": {"n": 1}}, [])
                await asyncio.sleep(0.3)
                order.append("end unscoped")

        first = asyncio.create_task(scoped_unit(scoped, "scoped"))
        await asyncio.wait_for(inside.wait(), 10)
        waiting = asyncio.create_task(unscoped_unit())
        await asyncio.sleep(0.3)
        assert "begin unscoped" not in order
        release.set()
        await asyncio.wait_for(first, 10)
        await asyncio.sleep(0.05)
        inside.clear()
        second = asyncio.create_task(scoped_unit(later, "later"))  # [5] again, or any scope
        await asyncio.wait_for(asyncio.gather(waiting, second), 10)
        assert order.index("end scoped") < order.index("begin unscoped")
        assert order.index("end unscoped") < order.index("begin later")
    finally:
        for db in (scoped, unscoped, later):
            await db.close()


async def test_opposite_lock_orders_deadlock_one_unit_and_its_retry_finishes_both() -> None:
    url = await scratch()
    dbs = [PostgresReadDatabase(url), PostgresReadDatabase(url)]
    try:
        await dbs[0].create([COUNTERS])
        async with dbs[0].unit() as unit:
            await unit.write(COUNTERS, {"x": {"n": 0}, "y": {"n": 0}}, [])
        await commit_elsewhere(url)
        holding = [asyncio.Event(), asyncio.Event()]
        attempts = [0, 0]
        conflicts: list[UnitConflictError] = []

        async def increment(me: int, order: tuple[str, str]) -> None:
            attempts[me] += 1
            try:
                async with dbs[me].unit() as unit:
                    row = (await unit.load(COUNTERS, [order[0]]))[order[0]]
                    holding[me].set()
                    await holding[1 - me].wait()  # both hold their first row
                    other = (await unit.load(COUNTERS, [order[1]]))[order[1]]
                    await unit.write(
                        COUNTERS,
                        {order[0]: {"n": row["n"] + 1}, order[1]: {"n": other["n"] + 1}},
                        [],
                    )
            except UnitConflictError as error:
                conflicts.append(error)
                raise

        await asyncio.wait_for(
            asyncio.gather(
                retried(lambda: increment(0, ("x", "y"))),
                retried(lambda: increment(1, ("y", "x"))),
            ),
            30,
        )
        assert len(conflicts) == 1
        assert "deadlock" in str(conflicts[0])
        assert sorted(attempts) == [1, 2]
        assert await dbs[0].get(COUNTERS, "x") == {"n": 2}
        assert await dbs[0].get(COUNTERS, "y") == {"n": 2}
    finally:
        for db in dbs:
            await db.close()


async def waiting_for_a_table_lock(url: str) -> None:
    """Until some unit of the database waits for a lock another holds."""
    conn = await asyncpg.connect(url, timeout=10)
    try:
        query = (
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()"
            " AND wait_event_type = 'Lock'"
        )
        while not await conn.fetchval(query):
            await asyncio.sleep(0.01)
    finally:
        await conn.close()


async def test_a_runner_that_used_kept_rows_while_another_writer_committed_applies_again() -> None:
    """A unit that trusts its caches (its handle made the last commit) but finds another unit
    writing its tables locks rows, and uses rows kept in memory the other one changes. Before
    it commits it finds the other committed: it is rolled back and applied again from the
    database, counted once."""
    store, log = await game_log(7, 2, 4)
    url = await scratch()
    mine, theirs = PostgresReadDatabase(url), PostgresReadDatabase(url)
    runner = ProjectionRunner(mine, [Leaderboard()], store, event_codec())
    try:
        await runner.setup()
        await runner.apply(log)
        ann = next(r["player_id"] for r in await mine.select(LEADERBOARD) if r["name"] == "Ann")
        assert runner.cache is not None
        assert (LEADERBOARD.name, ann) in runner.cache.rows
        await store.append(f"player-{ann}", ANY, [event_codec().encode(XpGained(5, "rat", "h1"))])
        more = (await store.read_all(0, 100_000))[len(log) :]
        async with theirs.unit() as unit:
            await unit.write(LEADERBOARD, {ann: {"name": "Ann", "level": 4, "xp": 70}}, [])
            applying = asyncio.create_task(runner.apply(more))
            await asyncio.wait_for(waiting_for_a_table_lock(url), 10)
        counts = await asyncio.wait_for(applying, 30)
        assert counts.applied == len(more)  # the retry counted once
        assert await mine.get(LEADERBOARD, ann) == {"name": "Ann", "level": 4, "xp": 75}
    finally:
        await mine.close()
        await theirs.close()


async def feed(runner: ProjectionRunner, share: list[RecordedEvent], cuts: Sequence[int]) -> None:
    """Apply ``share`` in order, in batches of the sizes ``cuts`` names, in turn."""
    start, n = 0, 0
    while start < len(share):
        size = cuts[n % len(cuts)]
        await runner.apply(share[start : start + size])
        start, n = start + size, n + 1


@settings(
    max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    seed=st.integers(0, 10_000),
    handles=st.integers(2, 3),
    owners=st.lists(st.integers(0, 2), min_size=1, max_size=200),
    cuts=st.lists(st.integers(1, 40), min_size=1, max_size=6),
    delays=st.lists(st.sampled_from([0.0, 0.0005, 0.003, 0.01]), min_size=1, max_size=6),
)
async def test_handles_applying_arbitrary_shares_at_once_make_the_serial_tables(  # noqa: PLR0917
    tmp_path_factory: pytest.TempPathFactory,
    seed: int,
    handles: int,
    owners: list[int],
    cuts: list[int],
    delays: list[float],
) -> None:
    """Any event may go to any handle (a partition changing hands does that): each handle
    applies its share in order, reading what the others applied first as a gap, while the
    others apply theirs; every event takes effect once and no shared row loses an update."""
    folder = tmp_path_factory.mktemp("concurrent")
    store, log = await game_log(seed, 4, 10)
    shares: list[list[RecordedEvent]] = [[] for _ in range(handles)]
    for n, event in enumerate(log):  # round robin, moved by the drawn owners
        shares[(n + owners[n % len(owners)]) % handles].append(event)
    url = await scratch()
    dbs = [PostgresReadDatabase(url) for _ in range(handles)]
    runners = [
        ProjectionRunner(db, slowed(delays[h:] + delays[:h]), store, event_codec())
        for h, db in enumerate(dbs)
    ]
    try:
        await asyncio.gather(*(runner.setup() for runner in runners))
        await asyncio.wait_for(
            asyncio.gather(*(feed(r, s, cuts) for r, s in zip(runners, shares, strict=True))), 120
        )
        assert sum(r.totals.applied for r in runners) == len(log) * len(runners[0].projections)
        assert await tables_of(dbs[0]) == await serially(folder, store, log)
    finally:
        for db in dbs:
            await db.close()


def _apply_in_a_process(  # noqa: PLR0917 - a process target takes positional arguments
    url: str, share: bytes, delays: list[float], ready: Any, go: Any, done: Any
) -> None:
    """A worker process: its own handle and runner, applying its share in batches of 3 once
    every process is ready (imports take longer than the work)."""

    async def work() -> int:
        db = PostgresReadDatabase(url)
        runner = ProjectionRunner(db, slowed(delays), MemoryEventStore(), event_codec())
        try:
            async with db.unit():
                pass  # connected
            ready.put(True)
            await asyncio.to_thread(go.wait, 60)
            await feed(runner, pickle.loads(share), [3])
            return runner.totals.applied
        finally:
            await db.close()

    done.put(asyncio.run(work()))


async def test_worker_processes_applying_streams_of_their_partitions_make_the_serial_tables(
    tmp_path: Path,
) -> None:
    """Each process applies the streams of its partitions, as workers do; rooms and minutes
    are rows every process changes."""
    store, log = await game_log(11, 5, 60)
    url = await scratch()
    setup = ProjectionRunner(PostgresReadDatabase(url), projections(WORLD), store, event_codec())
    await setup.setup()
    await setup.db.close()
    processes = 2
    shares = [
        [e for e in log if partition_of(e.stream_id, processes) == p] for p in range(processes)
    ]
    assert all(shares)
    context = multiprocessing.get_context("spawn")
    ready, go, done = context.Queue(), context.Event(), context.Queue()
    workers = [
        context.Process(
            target=_apply_in_a_process,
            args=(url, pickle.dumps(share), [0.0, 0.004, 0.001, 0.008][p:], ready, go, done),
        )
        for p, share in enumerate(shares)
    ]
    try:
        for worker in workers:
            worker.start()
        for _ in workers:
            await asyncio.to_thread(ready.get, True, 120)
        go.set()
        applied = [await asyncio.to_thread(done.get, True, 120) for _ in workers]
        for worker in workers:
            await asyncio.to_thread(worker.join, 30)
        assert [worker.exitcode for worker in workers] == [0] * processes
        assert sum(applied) == len(log) * 5
        db = PostgresReadDatabase(url)
        try:
            assert await tables_of(db) == await serially(tmp_path, store, log)
        finally:
            await db.close()
    finally:
        for worker in workers:
            if worker.is_alive():
                worker.kill()
            worker.join(5)
