"""Fixtures shared by every test: store factories for each adapter the contract suites cover."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine, Iterator
from pathlib import Path
from typing import Any, Protocol, TypeVar

import pytest

from adventure_quest.store.memory import MemoryEventStore, MemorySnapshotStore
from adventure_quest.store.ports import EventStore, SnapshotStore
from adventure_quest.store.sqlite import SQLiteEventStore
from adventure_quest.store.sqlite_snapshots import SQLiteSnapshotStore

T = TypeVar("T")

EVENT_STORES = ["memory", "sqlite"]
StoreFactory = Callable[[], EventStore]
SnapshotFactory = Callable[[], SnapshotStore]


def run(coroutine: Coroutine[Any, Any, T]) -> T:
    """Run one scenario on a fresh event loop."""
    return asyncio.run(coroutine)


class Closable(Protocol):
    async def close(self) -> None: ...


S = TypeVar("S", bound=Closable)


def _factory(
    adapter: str, build: Callable[[str, Path], S], tmp_path: Path
) -> Iterator[Callable[[], S]]:
    opened: list[S] = []
    counter = iter(range(1_000_000))

    def make() -> S:
        opened.append(build(adapter, tmp_path / f"s{next(counter)}.sqlite"))
        return opened[-1]

    yield make
    for store in opened:
        run(store.close())


def _event_store(adapter: str, path: Path) -> EventStore:
    return MemoryEventStore() if adapter == "memory" else SQLiteEventStore(str(path))


def _snapshot_store(adapter: str, path: Path) -> SnapshotStore:
    return MemorySnapshotStore() if adapter == "memory" else SQLiteSnapshotStore(str(path))


@pytest.fixture(params=EVENT_STORES)
def make_store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[StoreFactory]:
    """A factory of fresh, empty event stores of one adapter (each call: a new store)."""
    yield from _factory(request.param, _event_store, tmp_path)


@pytest.fixture(params=EVENT_STORES)
def make_snapshot_store(
    request: pytest.FixtureRequest, tmp_path: Path
) -> Iterator[SnapshotFactory]:
    """A factory of fresh snapshot stores of one adapter."""
    yield from _factory(request.param, _snapshot_store, tmp_path)
