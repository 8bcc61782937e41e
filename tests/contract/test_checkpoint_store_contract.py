"""The checkpoint-store contract, run against every adapter.

Memory, SQLite and PostgreSQL (the real server, never mocked: fresh databases from
tests/postgres.py), each built directly, and the shard stores ``open_checkpoint_stores`` opens
for a sharded URL (two SQLite files, two PostgreSQL databases). Every store a test opens is
closed on the test's own loop when it ends (tests/conftest.py), whether it passes or fails.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from adventure_quest.store.memory import MemoryCheckpointStore
from adventure_quest.store.ports import CheckpointStore
from adventure_quest.store.postgres.checkpoints import PostgresCheckpointStore
from adventure_quest.store.sqlite.checkpoints import SQLiteCheckpointStore
from adventure_quest.store.urls import open_checkpoint_stores, sqlite_path
from tests.conftest import _opened, store_url

ADAPTERS = ["memory", "sqlite", "postgres", "sqlite-sharded", "postgres-sharded"]
# A memory store lives in its process: a new one (a restart, another process) starts empty, so
# surviving a reopen and sharing saves between two handles are not its contract.
DURABLE = [adapter for adapter in ADAPTERS if adapter != "memory"]
SHARDED = [adapter for adapter in ADAPTERS if adapter.endswith("-sharded")]
_examples = itertools.count()


@dataclass(frozen=True)
class Checkpoints:
    """One fresh, empty database of one adapter (one per shard when sharded).

    ``open()`` is a new handle on it: for a sharded URL, the last shard's store of a new
    ``open_checkpoint_stores`` (``open_all()`` gives every shard's).
    """

    adapter: str
    url: str

    def open(self) -> CheckpointStore:
        if self.adapter.endswith("-sharded"):
            return self.open_all()[-1]
        store: CheckpointStore
        if self.adapter == "memory":
            store = MemoryCheckpointStore()
        elif self.adapter == "sqlite":
            store = SQLiteCheckpointStore(sqlite_path(self.url))
        else:
            store = PostgresCheckpointStore(self.url)
        _opened.append(store)  # closed on the test's loop when it ends (tests/conftest.py)
        return store

    def open_all(self) -> list[CheckpointStore]:
        stores = open_checkpoint_stores(self.url)
        _opened.extend(stores)
        return stores


def _checkpoints(request: pytest.FixtureRequest, tmp_path: Path) -> Checkpoints:
    adapter: str = request.param
    return Checkpoints(adapter, store_url(adapter, tmp_path / "checkpoints.sqlite"))


@pytest.fixture(params=ADAPTERS)
def checkpoints(request: pytest.FixtureRequest, tmp_path: Path) -> Checkpoints:
    return _checkpoints(request, tmp_path)


@pytest.fixture(params=DURABLE)
def durable(request: pytest.FixtureRequest, tmp_path: Path) -> Checkpoints:
    return _checkpoints(request, tmp_path)


@pytest.fixture(params=SHARDED)
def sharded(request: pytest.FixtureRequest, tmp_path: Path) -> Checkpoints:
    return _checkpoints(request, tmp_path)


async def closed(store: CheckpointStore) -> None:
    """Close ``store`` now (a process stopping), and not again when the test ends."""
    _opened.remove(store)
    await store.close()


async def test_a_name_never_saved_loads_zero(checkpoints: Checkpoints) -> None:
    store = checkpoints.open()
    assert await store.load("relay") == 0
    await store.save("relay-0", 7)
    assert await store.load("relay") == 0


async def test_saves_only_move_forward(checkpoints: Checkpoints) -> None:
    store = checkpoints.open()
    await store.save("relay", 10)
    assert await store.load("relay") == 10
    await store.save("relay", 25)
    assert await store.load("relay") == 25
    await store.save("relay", 7)  # a relay that fell behind, or a late retry
    assert await store.load("relay") == 25
    await store.save("relay", 0)
    assert await store.load("relay") == 25
    await store.save("relay", 25)
    assert await store.load("relay") == 25


async def test_names_are_independent(checkpoints: Checkpoints) -> None:
    store = checkpoints.open()
    await store.save("relay-0", 5)
    await store.save("relay-1", 9)
    assert (await store.load("relay-0"), await store.load("relay-1")) == (5, 9)
    await store.save("relay-1", 20)
    await store.save("relay-0", 1)
    assert (await store.load("relay-0"), await store.load("relay-1")) == (5, 20)
    assert await store.load("relay") == 0


NAMES = ["relay", "relay-0", "relay-1", "projections"]
SAVES = st.lists(st.tuples(st.sampled_from(NAMES), st.integers(0, 10**12)), max_size=20)


@settings(
    max_examples=50, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(saves=SAVES)
async def test_each_load_is_the_highest_position_saved_under_its_name(
    checkpoints: Checkpoints, saves: list[tuple[str, int]]
) -> None:
    # Every example shares the test's database: its names are its own.
    prefix = f"example-{next(_examples)}/"
    model: dict[str, int] = {}

    store = checkpoints.open()
    for name, position in saves:
        await store.save(prefix + name, position)
        model[name] = max(position, model.get(name, 0))
        assert {n: await store.load(prefix + n) for n in NAMES} == {
            n: model.get(n, 0) for n in NAMES
        }


async def test_what_was_saved_survives_closing_and_reopening(durable: Checkpoints) -> None:
    store = durable.open()
    await store.save("relay-0", 10**12)
    await store.save("relay-1", 42)
    await closed(store)

    reopened = durable.open()
    assert await reopened.load("relay-0") == 10**12
    assert await reopened.load("relay-1") == 42
    await reopened.save("relay-1", 41)
    assert await reopened.load("relay-1") == 42
    assert await reopened.load("relay") == 0


async def test_two_stores_on_one_database_see_each_others_saves(durable: Checkpoints) -> None:
    first, second = durable.open(), durable.open()  # as two processes would
    await first.save("relay", 5)
    assert await second.load("relay") == 5
    await second.save("relay", 3)
    assert await first.load("relay") == 5
    await second.save("relay", 8)
    assert (await first.load("relay"), await second.load("relay")) == (8, 8)


async def test_each_shard_of_a_sharded_url_keeps_its_own_names(sharded: Checkpoints) -> None:
    stores = sharded.open_all()
    assert len(stores) == 2
    zero, one = stores
    await zero.save("relay", 5)
    assert await one.load("relay") == 0
    await one.save("relay", 3)
    await one.save("projections", 7)
    assert (await zero.load("relay"), await one.load("relay")) == (5, 3)
    assert await zero.load("projections") == 0
    for store in stores:
        await closed(store)

    again = sharded.open_all()  # a restart finds each shard's positions on that shard
    assert [await store.load("relay") for store in again] == [5, 3]
    assert [await store.load("projections") for store in again] == [0, 7]


async def test_open_checkpoint_stores_opens_one_store_per_shard_in_order(tmp_path: Path) -> None:
    assert [type(store) for store in opened("memory://")] == [MemoryCheckpointStore]
    memory = opened("memory://,memory://")
    assert [type(store) for store in memory] == [MemoryCheckpointStore] * 2
    assert memory[0] is not memory[1]

    paths = [tmp_path / "a.sqlite", tmp_path / "b.sqlite"]
    sqlite = opened(f"sqlite:///{paths[0]}, sqlite:///{paths[1]}")
    assert [type(store) for store in sqlite] == [SQLiteCheckpointStore] * 2
    assert [store.path for store in sqlite if isinstance(store, SQLiteCheckpointStore)] == [
        str(path) for path in paths
    ]

    # PostgreSQL stores connect on first use: nothing is reached here.
    urls = ["postgresql://u@127.0.0.1:5432/a", "postgresql://u@127.0.0.1:5432/b"]
    pg = opened(",".join(urls))
    assert [type(store) for store in pg] == [PostgresCheckpointStore] * 2
    assert [store.dsn for store in pg if isinstance(store, PostgresCheckpointStore)] == urls


def opened(url: str) -> list[CheckpointStore]:
    stores = open_checkpoint_stores(url)
    _opened.extend(stores)
    return stores
