"""Open stores by URL: ``memory://``, ``sqlite:///PATH``, ``postgresql://…``; commas shard.

``--store postgresql://h/a,postgresql://h/b`` opens two shards: each stream lives on the shard a
stable hash of its id picks (store/sharding.py), each shard keeps its own global log.
"""

from __future__ import annotations

from adventure_quest.store.errors import StoreUrlError, parse_url
from adventure_quest.store.memory import (
    MemoryCheckpointStore,
    MemoryEventStore,
    MemorySnapshotStore,
)
from adventure_quest.store.ports import CheckpointStore, EventStore, SnapshotStore
from adventure_quest.store.sharding import ShardedEventStore, ShardedSnapshotStore
from adventure_quest.store.sqlite.checkpoints import SQLiteCheckpointStore
from adventure_quest.store.sqlite.events import SQLiteEventStore
from adventure_quest.store.sqlite.snapshots import SQLiteSnapshotStore

#: Connections of a PostgreSQL shard's event store pool unless configured (store_pool_size).
DEFAULT_POOL_SIZE = 8

SUPPORTED = "memory://, sqlite:///PATH, postgresql://USER@HOST:PORT/DB, or several joined by commas"


def sqlite_path(url: str) -> str:
    """The file path of a ``sqlite:///PATH`` URL (``sqlite:///rel`` is relative, ``////abs``)."""
    parts = parse_url(url)
    if parts.scheme != "sqlite" or parts.netloc or not parts.path.strip("/"):
        raise StoreUrlError(f"cannot parse store URL {url!r}: expected sqlite:///PATH")
    return parts.path[1:]


def split_urls(url: str) -> list[str]:
    """The shard URLs of a store URL (one for an unsharded store)."""
    urls = [part.strip() for part in url.split(",")]
    if not all(urls):
        raise StoreUrlError(f"cannot parse store URL {url!r}: an empty shard URL")
    return urls


def _scheme(url: str) -> str:
    scheme = parse_url(url).scheme
    if scheme not in ("memory", "sqlite", "postgresql", "postgres"):
        raise StoreUrlError(f"unsupported store URL {url!r}; supported: {SUPPORTED}")
    return scheme


def check_store_url(url: str) -> None:
    """Refuse a store URL ``open_event_store`` would refuse, without opening anything."""
    for one in split_urls(url):
        scheme = _scheme(one)
        if scheme == "sqlite":
            sqlite_path(one)
        elif scheme != "memory":
            from adventure_quest.store.postgres.connect import check_url

            check_url(one)


def _open_one(url: str, shard: int, stream_cache_size: int, pool_size: int) -> EventStore:
    scheme = _scheme(url)
    if scheme == "memory":
        return MemoryEventStore(shard=shard)
    if scheme == "sqlite":
        return SQLiteEventStore(sqlite_path(url), shard=shard, stream_cache_size=stream_cache_size)
    from adventure_quest.store.postgres.connect import check_url
    from adventure_quest.store.postgres.events import PostgresEventStore

    return PostgresEventStore(check_url(url), shard=shard, pool_size=pool_size)


def _open_snapshots(url: str, pool_size: int) -> SnapshotStore:
    scheme = _scheme(url)
    if scheme == "memory":
        return MemorySnapshotStore()
    if scheme == "sqlite":
        return SQLiteSnapshotStore(sqlite_path(url))
    from adventure_quest.store.postgres.connect import check_url
    from adventure_quest.store.postgres.snapshots import PostgresSnapshotStore

    return PostgresSnapshotStore(check_url(url), pool_size=pool_size)


def _open_checkpoints(url: str) -> CheckpointStore:
    scheme = _scheme(url)
    if scheme == "memory":
        return MemoryCheckpointStore()
    if scheme == "sqlite":
        return SQLiteCheckpointStore(sqlite_path(url))
    from adventure_quest.store.postgres.checkpoints import PostgresCheckpointStore
    from adventure_quest.store.postgres.connect import check_url

    return PostgresCheckpointStore(check_url(url))


def open_checkpoint_stores(url: str) -> list[CheckpointStore]:
    """One checkpoint store per shard, in shard order (beside each shard's log)."""
    return [_open_checkpoints(u) for u in split_urls(url)]


def open_event_store(
    url: str, *, stream_cache_size: int = 100_000, pool_size: int = DEFAULT_POOL_SIZE
) -> EventStore:
    """The event store a URL names; raises StoreUrlError naming the supported forms.

    ``pool_size``: connections of each PostgreSQL shard's pool for appends and reads.
    """
    urls = split_urls(url)
    if len(urls) == 1:
        return _open_one(urls[0], 0, stream_cache_size, pool_size)
    return ShardedEventStore(
        [_open_one(u, n, stream_cache_size, pool_size) for n, u in enumerate(urls)]
    )


def open_snapshot_store(url: str, *, pool_size: int = DEFAULT_POOL_SIZE // 2) -> SnapshotStore:
    """The snapshot store kept beside the event store a URL names (on each shard)."""
    urls = split_urls(url)
    if len(urls) == 1:
        return _open_snapshots(urls[0], pool_size)
    return ShardedSnapshotStore([_open_snapshots(u, pool_size) for u in urls])
