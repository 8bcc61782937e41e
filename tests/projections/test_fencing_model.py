"""Fencing tokens against a model: no unit commits under a token older than one that committed.

Workers claim partitions (each claim takes the next revision of a lease bucket, as
processing/leases.py does with ``kv.create``), lose them silently (a lease expires while its
worker is frozen: it still believes it holds the partition, with its old token) and claim them
again, and commit units for any subset of the partitions they believe they hold, alone or two
at once from two workers, on their own handles of one real read database (SQLite, and PostgreSQL
at 127.0.0.1:5432). A unit refused by a fence makes its worker drop those partitions.

After every step, from the database itself: per (group, partition), the tokens of the committed
units, in commit order, never go down; each unit committed or was refused exactly as the model
says (refused iff one of its tokens is below the highest already recorded for its partition);
and the recorded tokens are the model's.
"""

from __future__ import annotations

import asyncio
import itertools
import uuid
from collections.abc import Sequence
from pathlib import Path

import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule, run_state_machine_as_test

from adventure_quest.projections import sql
from adventure_quest.projections.conflicts import retried
from adventure_quest.projections.fencing import Fence, Fenced
from adventure_quest.projections.model import ALL, Table
from adventure_quest.projections.ports import ReadDatabase
from adventure_quest.projections.urls import open_read_database
from tests import postgres

PARTITIONS = 3
WORKERS = 3
#: One row per partition of each committed unit: (generation, partition, token).
COMMITS = Table(
    "fence_commits",
    "entry",
    {"grp": "text", "generation": "integer", "partition": "integer", "token": "integer"},
    indexes=(("grp",),),
)
_databases = itertools.count()


class FencingModel(RuleBasedStateMachine):
    """Workers, leases and units; ``url`` names the read database every example shares."""

    url = ""

    def __init__(self) -> None:
        super().__init__()
        self.loop = asyncio.Runner()
        self.group = f"g{uuid.uuid4().hex[:8]}"  # examples share the database, never a group
        self.dbs: list[ReadDatabase] = []
        for _ in range(WORKERS):
            db = open_read_database(self.url)
            self.dbs.append(db)
        self.loop.run(self.dbs[0].create([COMMITS]))
        self.revision = 0
        #: Partition -> (worker, token) of its live lease, if any.
        self.lease: dict[int, tuple[int, int]] = {}
        #: What each worker believes it holds: partition -> token (zombies included).
        self.held: list[dict[int, int]] = [{} for _ in range(WORKERS)]
        #: The highest token recorded per partition, as the model has it.
        self.recorded: dict[int, int] = {}
        self.commits = 0

    def teardown(self) -> None:
        async def close() -> None:
            for db in self.dbs:
                await db.close()

        self.loop.run(close())
        self.loop.close()

    @rule(worker=st.integers(0, WORKERS - 1), partition=st.integers(0, PARTITIONS - 1))
    def claim(self, worker: int, partition: int) -> None:
        """A create-if-absent on a free (or expired) key: the next revision is the token."""
        if partition in self.lease:
            return
        self.revision += 1
        self.lease[partition] = (worker, self.revision)
        self.held[worker][partition] = self.revision

    @rule(partition=st.integers(0, PARTITIONS - 1))
    def expire(self, partition: int) -> None:
        """The lease runs out while its owner is frozen: the owner still believes it holds it."""
        self.lease.pop(partition, None)

    @rule(worker=st.integers(0, WORKERS - 1), partition=st.integers(0, PARTITIONS - 1))
    def give_back(self, worker: int, partition: int) -> None:
        """A clean release (more workers joined): the worker stops using the partition."""
        if self.lease.get(partition, (None, 0))[0] == worker:
            del self.lease[partition]
            del self.held[worker][partition]

    @rule(worker=st.integers(0, WORKERS - 1), chosen=st.sets(st.integers(0, PARTITIONS - 1)))
    def commit(self, worker: int, chosen: set[int]) -> None:
        fences = self._fences(worker, chosen)
        self.loop.run(self._unit(worker, fences))

    @rule(
        first=st.integers(0, WORKERS - 1),
        second=st.integers(0, WORKERS - 1),
        one=st.sets(st.integers(0, PARTITIONS - 1), min_size=1),
        other=st.sets(st.integers(0, PARTITIONS - 1), min_size=1),
    )
    def commit_together(self, first: int, second: int, one: set[int], other: set[int]) -> None:
        """Two units at once: the second starts while the first holds its fences open."""
        if first == second:
            return
        a, b = self._fences(first, one), self._fences(second, other)

        async def both() -> None:
            fenced = asyncio.Event()
            unit_a = asyncio.create_task(self._unit(first, a, fenced))
            await fenced.wait()
            unit_b = asyncio.create_task(self._unit(second, b))
            await asyncio.sleep(0.01)  # b is under way (waiting for a) before a commits
            await asyncio.gather(unit_a, unit_b)

        self.loop.run(both())

    def _fences(self, worker: int, chosen: set[int]) -> list[Fence]:
        held = self.held[worker]
        return [Fence(self.group, p, held[p]) for p in sorted(chosen) if p in held]

    async def _unit(
        self, worker: int, fences: Sequence[Fence], fenced: asyncio.Event | None = None
    ) -> None:
        """One unit of ``worker``: fences, then a row per partition; checked against the model."""
        db = self.dbs[worker]
        refused: Fenced | None = None

        async def attempt() -> None:
            async with db.unit() as unit:
                await unit.fence(fences)
                if fenced is not None:
                    fenced.set()
                generation = (await unit.generation()).seen[ALL]  # a unit without a scope
                rows = {
                    f"{self.group}.{generation}.{f.partition}": {
                        "grp": self.group,
                        "generation": generation,
                        "partition": f.partition,
                        "token": f.token,
                    }
                    for f in fences
                }
                await unit.write(COMMITS, rows, [])

        try:
            # Units of two handles can conflict (PostgreSQL): callers apply them again.
            await retried(attempt)
        except Fenced as error:
            refused = error
        finally:
            if fenced is not None:
                fenced.set()
        # Decided by what committed before: a second unit waits for the first to end.
        stale = {f.partition for f in fences if f.token < self.recorded.get(f.partition, 0)}
        if refused is not None:
            assert stale, f"refused ({refused}) though no newer token was recorded"
            assert refused.partitions(self.group) == stale
            for partition in stale:
                del self.held[worker][partition]  # the worker drops what it was fenced off
            return
        assert not stale, f"committed under tokens older than recorded ones: {fences}"
        for fence in fences:
            self.recorded[fence.partition] = max(self.recorded.get(fence.partition, 0), fence.token)
        self.commits += 1

    @invariant()
    def committed_tokens_never_go_down(self) -> None:
        rows = self.loop.run(self.dbs[0].select(COMMITS, where={"grp": self.group}))
        by_partition: dict[int, list[tuple[int, int]]] = {}
        for row in rows:
            by_partition.setdefault(row["partition"], []).append((row["generation"], row["token"]))
        for partition, commits in by_partition.items():
            tokens = [token for _, token in sorted(commits)]
            assert tokens == sorted(tokens), f"partition {partition}: tokens {tokens}"
        recorded = {p: max(t for _, t in commits) for p, commits in by_partition.items()}
        assert recorded == self.recorded

    @invariant()
    def the_recorded_fences_are_the_models(self) -> None:
        fences = self.loop.run(_recorded(self.dbs[0], self.group))
        assert fences == self.recorded


async def _recorded(db: ReadDatabase, group: str) -> dict[int, int]:
    table = Table(sql.FENCES_TABLE, "consumer_group", {"partition": "integer", "token": "integer"})
    found = {}
    for partition in range(PARTITIONS):  # one by one: rows come back by key, the group
        where = {"consumer_group": group, "partition": partition}
        for row in await db.select(table, where=where):
            found[row["partition"]] = row["token"]
    return found


@pytest.mark.parametrize("adapter", ["sqlite", "postgres"])
def test_no_unit_commits_under_a_token_older_than_a_committed_one(
    adapter: str, tmp_path: Path
) -> None:
    if adapter == "sqlite":
        url = f"sqlite:///{tmp_path / 'read.sqlite'}"
    else:
        url = asyncio.run(postgres.scratch_database(f"fences_{next(_databases)}"))

    class Machine(FencingModel):
        pass

    Machine.url = url
    run_state_machine_as_test(
        Machine, settings=settings(max_examples=30, stateful_step_count=30, deadline=None)
    )
