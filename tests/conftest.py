"""Fixtures shared by every test: store factories for each adapter the contract suites cover."""

from __future__ import annotations

import asyncio
import functools
import inspect
from collections.abc import Awaitable, Callable, Coroutine, Iterator
from pathlib import Path
from typing import Any, Protocol, TypeVar

import pytest

from adventure_quest.store.ports import EventStore, SnapshotStore
from adventure_quest.store.urls import open_event_store, open_snapshot_store
from tests import postgres
from tests.services import RedisServer, private_redis

T = TypeVar("T")

EVENT_STORES = ["memory", "sqlite", "sqlite-sharded", "postgres", "postgres-sharded"]
StoreFactory = Callable[[], EventStore]
SnapshotFactory = Callable[[], SnapshotStore]


class Closable(Protocol):
    async def close(self) -> None: ...


_opened: list[Closable] = []


async def close_opened() -> None:
    """Close, newest first, the stores the factories below opened."""
    while _opened:
        await _opened.pop().close()


def run(coroutine: Coroutine[Any, Any, T]) -> T:
    """Run a coroutine from a test that is not async itself (one that drives ``aq`` processes)
    on a fresh event loop; stores it opened are closed on that loop."""

    async def scenario() -> T:
        try:
            return await coroutine
        finally:
            await close_opened()

    return asyncio.run(scenario())


@pytest.fixture(scope="session")
def anyio_backend() -> str:
    """Async tests (anyio's plugin, ``anyio_mode = "auto"``) run on asyncio."""
    return "asyncio"


def _closing(test: Callable[..., Awaitable[Any]]) -> Callable[..., Awaitable[Any]]:
    """``test``, then the stores it opened closed, on the test's own event loop."""

    @functools.wraps(test)
    async def closing(*args: Any, **kwargs: Any) -> Any:
        try:
            return await test(*args, **kwargs)
        finally:
            await close_opened()

    closing._aq_closing = True  # type: ignore[attr-defined]
    return closing


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Every async test closes what the store factories opened for it: a Hypothesis test after
    each example (each runs on an event loop of its own), any other when it ends."""
    for item in items:
        if not isinstance(item, pytest.Function):
            continue
        hypothesis = getattr(item.obj, "hypothesis", None)
        if hypothesis is not None:
            inner = hypothesis.inner_test
            if inspect.iscoroutinefunction(inner) and not getattr(inner, "_aq_closing", False):
                hypothesis.inner_test = _closing(inner)
        elif inspect.iscoroutinefunction(item.obj):
            item.obj = _closing(item.obj)


S = TypeVar("S", bound=Closable)


def _factory(
    adapter: str, build: Callable[[str, Path], S], tmp_path: Path
) -> Iterator[Callable[[], S]]:
    counter = iter(range(1_000_000))

    def make() -> S:
        store = build(adapter, tmp_path / f"s{next(counter)}.sqlite")
        _opened.append(store)
        return store

    yield make


def store_url(adapter: str, path: Path) -> str:
    """The URL of a fresh store of one of EVENT_STORES (``path``: where SQLite files go)."""
    if adapter == "memory":
        return "memory://"
    if adapter == "sqlite":
        return f"sqlite:///{path}"
    if adapter == "sqlite-sharded":
        return f"sqlite:///{path}.0,sqlite:///{path}.1"
    databases = postgres.fresh(2 if adapter == "postgres-sharded" else 1)
    return ",".join(databases)


def _event_store(adapter: str, path: Path) -> EventStore:
    return open_event_store(store_url(adapter, path))


def _snapshot_store(adapter: str, path: Path) -> SnapshotStore:
    return open_snapshot_store(store_url(adapter, path))


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


@pytest.fixture(scope="session", autouse=True)
def _drop_test_databases() -> Iterator[None]:
    yield
    postgres.drop_all()


@pytest.fixture
def redis_server(tmp_path: Path) -> Iterator[RedisServer]:
    """A Redis server of the test's own (tests/services.py), killed at the end."""
    with private_redis(tmp_path) as server:
        yield server
