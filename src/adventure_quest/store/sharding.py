"""Sharding by aggregate id: a stable hash of the stream id picks the shard.

The hash is Jump Consistent Hash (Lamping and Veach, 2014) over the first 8 bytes of BLAKE2b of
the stream id: stable across processes, machines and Python versions (unlike ``hash()``), and
when shards go from N to N+1 only about 1/(N+1) of the streams move (docs/postgres.md,
"Adding shards").
"""

from __future__ import annotations

import functools
import hashlib
from collections.abc import Sequence

from adventure_quest.store.envelope import AppendResult, ExpectedVersion, NewEvent, RecordedEvent
from adventure_quest.store.errors import StoreUrlError
from adventure_quest.store.ports import EventStore, GlobalLog, Snapshot, SnapshotStore


def jump_hash(key: int, buckets: int) -> int:
    """Jump Consistent Hash: a bucket in [0, buckets) for a 64-bit key."""
    b, j = -1, 0
    while j < buckets:
        b = j
        key = (key * 2862933555777941757 + 1) & 0xFFFF_FFFF_FFFF_FFFF
        j = int((b + 1) * ((1 << 31) / ((key >> 33) + 1)))
    return b


@functools.lru_cache(maxsize=1 << 16)
def shard_of(stream_id: str, shards: int) -> int:
    """The shard that owns ``stream_id`` among ``shards`` shards.

    Pure, and asked for every event by the relay, the queue and the projections' progress:
    remembered for the 65,536 most recent streams.
    """
    digest = hashlib.blake2b(stream_id.encode(), digest_size=8).digest()
    return jump_hash(int.from_bytes(digest, "big"), shards)


class ShardedEventStore:
    """Routes each stream to its shard; every shard keeps its own global log and head."""

    def __init__(self, shards: Sequence[EventStore]) -> None:
        if not shards:
            raise StoreUrlError("a sharded store needs at least one shard")
        self.shards = list(shards)

    def _shard(self, stream_id: str) -> EventStore:
        return self.shards[shard_of(stream_id, len(self.shards))]

    async def append(
        self, stream_id: str, expected_version: ExpectedVersion, events: Sequence[NewEvent]
    ) -> AppendResult:
        return await self._shard(stream_id).append(stream_id, expected_version, events)

    async def read_stream(
        self, stream_id: str, from_version: int = 1, to_version: int | None = None
    ) -> list[RecordedEvent]:
        return await self._shard(stream_id).read_stream(stream_id, from_version, to_version)

    async def stream_version(self, stream_id: str) -> int:
        return await self._shard(stream_id).stream_version(stream_id)

    async def read_by_ids(self, stream_id: str, event_ids: Sequence[str]) -> list[RecordedEvent]:
        return await self._shard(stream_id).read_by_ids(stream_id, event_ids)

    def logs(self) -> Sequence[GlobalLog]:
        return [log for shard in self.shards for log in shard.logs()]

    async def close(self) -> None:
        for shard in self.shards:
            await shard.close()


class ShardedSnapshotStore:
    """Keeps each stream's snapshot on the stream's own shard."""

    def __init__(self, shards: Sequence[SnapshotStore]) -> None:
        self.shards = list(shards)

    def _shard(self, stream_id: str) -> SnapshotStore:
        return self.shards[shard_of(stream_id, len(self.shards))]

    async def save(self, snapshot: Snapshot) -> None:
        await self._shard(snapshot.stream_id).save(snapshot)

    async def load(self, stream_id: str) -> Snapshot | None:
        return await self._shard(stream_id).load(stream_id)

    async def close(self) -> None:
        for shard in self.shards:
            await shard.close()
