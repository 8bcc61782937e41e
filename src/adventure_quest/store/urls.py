"""Open stores by URL: ``memory://`` and ``sqlite:///PATH`` (more backends join here)."""

from __future__ import annotations

from urllib.parse import urlsplit

from adventure_quest.store.errors import StoreUrlError
from adventure_quest.store.memory import MemoryEventStore, MemorySnapshotStore
from adventure_quest.store.ports import EventStore, SnapshotStore
from adventure_quest.store.sqlite import SQLiteEventStore
from adventure_quest.store.sqlite_snapshots import SQLiteSnapshotStore

SUPPORTED = "memory://, sqlite:///PATH"


def sqlite_path(url: str) -> str:
    """The file path of a ``sqlite:///PATH`` URL (``sqlite:///rel`` is relative, ``////abs``)."""
    parts = urlsplit(url)
    if parts.scheme != "sqlite" or parts.netloc or not parts.path.strip("/"):
        raise StoreUrlError(f"cannot parse store URL {url!r}: expected sqlite:///PATH")
    return parts.path[1:]


def open_event_store(url: str, *, stream_cache_size: int = 100_000) -> EventStore:
    """The event store a URL names; raises StoreUrlError naming the supported forms."""
    scheme = urlsplit(url).scheme
    if scheme == "memory":
        return MemoryEventStore()
    if scheme == "sqlite":
        return SQLiteEventStore(sqlite_path(url), stream_cache_size=stream_cache_size)
    raise StoreUrlError(f"unsupported store URL {url!r}; supported: {SUPPORTED}")


def open_snapshot_store(url: str) -> SnapshotStore:
    """The snapshot store kept beside the event store a URL names."""
    scheme = urlsplit(url).scheme
    if scheme == "memory":
        return MemorySnapshotStore()
    if scheme == "sqlite":
        return SQLiteSnapshotStore(sqlite_path(url))
    raise StoreUrlError(f"unsupported store URL {url!r}; supported: {SUPPORTED}")
