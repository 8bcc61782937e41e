"""The snapshot-store contract, run against every adapter."""

from __future__ import annotations

from adventure_quest.store.ports import Snapshot
from tests.conftest import SnapshotFactory


async def test_latest_snapshot_is_loaded(make_snapshot_store: SnapshotFactory) -> None:
    store = make_snapshot_store()
    assert await store.load("player-a") is None
    await store.save(Snapshot("player-a", 10, 1, b"ten"))
    await store.save(Snapshot("player-a", 20, 1, b"twenty"))
    await store.save(Snapshot("player-b", 5, 1, b"other"))
    assert await store.load("player-a") == Snapshot("player-a", 20, 1, b"twenty")


async def test_an_older_snapshot_never_replaces_a_newer_one(
    make_snapshot_store: SnapshotFactory,
) -> None:
    store = make_snapshot_store()
    await store.save(Snapshot("player-a", 20, 1, b"twenty"))
    await store.save(Snapshot("player-a", 10, 1, b"ten"))
    loaded = await store.load("player-a")
    assert loaded is not None
    assert loaded.version == 20


async def test_a_snapshot_under_another_schema_is_replaced_whatever_its_version(
    make_snapshot_store: SnapshotFactory,
) -> None:
    store = make_snapshot_store()
    await store.save(Snapshot("player-a", 20, 1, b"old shape"))
    await store.save(Snapshot("player-a", 15, 2, b"new shape"))
    assert await store.load("player-a") == Snapshot("player-a", 15, 2, b"new shape")
