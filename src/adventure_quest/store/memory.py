"""In-memory event and snapshot stores: the reference adapters, used by tests and `memory://`."""

from __future__ import annotations

import time
from collections.abc import Sequence

from adventure_quest.store.appending import check_expected, settle_reused_ids, validate_append
from adventure_quest.store.envelope import (
    AppendResult,
    ExpectedVersion,
    Metadata,
    NewEvent,
    RecordedEvent,
    stream_type_of,
)
from adventure_quest.store.errors import StoreClosedError
from adventure_quest.store.ports import Snapshot
from adventure_quest.store.tailing import HeadSignal


class MemoryEventStore:
    """Keeps the global log in a list and each stream as a list of log indexes."""

    def __init__(self, *, shard: int = 0) -> None:
        self.shard = shard
        self._signal = HeadSignal()
        self._log: list[RecordedEvent] = []
        self._streams: dict[str, list[int]] = {}
        self._ids: dict[str, int] = {}
        self._closed = False

    async def append(
        self, stream_id: str, expected_version: ExpectedVersion, events: Sequence[NewEvent]
    ) -> AppendResult:
        if self._closed:
            raise StoreClosedError("the event store is closed")
        validate_append(stream_id, expected_version, events)
        retried = self._retried(stream_id, events)
        if retried is not None:
            return retried
        indexes = self._streams.get(stream_id, [])
        check_expected(stream_id, expected_version, len(indexes))
        stream_type = stream_type_of(stream_id)
        now = time.time()
        version = len(indexes)
        for event in events:
            version += 1
            metadata = event.metadata
            if not metadata.recorded_at:
                metadata = Metadata(
                    metadata.correlation_id, metadata.causation_id, metadata.actor, now
                )
            recorded = RecordedEvent(
                event.event_id,
                stream_id,
                stream_type,
                version,
                len(self._log) + 1,
                event.event_type,
                event.schema_version,
                event.payload,
                metadata,
                self.shard,
            )
            self._ids[event.event_id] = len(self._log)
            indexes.append(len(self._log))
            self._log.append(recorded)
        self._streams[stream_id] = indexes
        self._signal.notify()
        return AppendResult(stream_id, version, len(self._log), shard=self.shard)

    def _retried(self, stream_id: str, events: Sequence[NewEvent]) -> AppendResult | None:
        """The answer to an append reusing recorded ids (store/appending.py), else None."""
        found: dict[str, tuple[str, int, int]] = {}
        for event in events:
            index = self._ids.get(event.event_id)
            if index is not None:
                recorded = self._log[index]
                found[event.event_id] = (recorded.stream_id, recorded.version, recorded.position)
        return settle_reused_ids(stream_id, events, found, self.shard) if found else None

    async def read_stream(
        self, stream_id: str, from_version: int = 1, to_version: int | None = None
    ) -> list[RecordedEvent]:
        indexes = self._streams.get(stream_id, [])
        stop = len(indexes) if to_version is None else min(to_version, len(indexes))
        return [self._log[i] for i in indexes[max(from_version, 1) - 1 : max(stop, 0)]]

    async def stream_version(self, stream_id: str) -> int:
        return len(self._streams.get(stream_id, ()))

    async def read_by_ids(self, stream_id: str, event_ids: Sequence[str]) -> list[RecordedEvent]:
        indexes = {self._ids.get(event_id) for event_id in event_ids}
        found = [self._log[i] for i in indexes if i is not None]
        return sorted((e for e in found if e.stream_id == stream_id), key=lambda e: e.version)

    async def read_all(self, after_position: int = 0, limit: int = 1000) -> list[RecordedEvent]:
        start = max(after_position, 0)
        return self._log[start : start + max(limit, 0)]

    async def head(self) -> int:
        return len(self._log)

    async def wait_for(self, after_position: int, timeout: float) -> int:
        return await self._signal.wait_for(self.head, after_position, timeout)

    def logs(self) -> Sequence[MemoryEventStore]:
        return (self,)

    async def close(self) -> None:
        self._closed = True


class MemoryCheckpointStore:
    """Positions in a dict."""

    def __init__(self) -> None:
        self._positions: dict[str, int] = {}

    async def load(self, name: str) -> int:
        return self._positions.get(name, 0)

    async def save(self, name: str, position: int) -> None:
        self._positions[name] = max(position, self._positions.get(name, 0))

    async def close(self) -> None:
        return None


class MemorySnapshotStore:
    """Keeps the latest snapshot of each stream in a dict."""

    def __init__(self) -> None:
        self._snapshots: dict[str, Snapshot] = {}

    async def save(self, snapshot: Snapshot) -> None:
        if should_replace(self._snapshots.get(snapshot.stream_id), snapshot):
            self._snapshots[snapshot.stream_id] = snapshot

    async def load(self, stream_id: str) -> Snapshot | None:
        return self._snapshots.get(stream_id)

    async def close(self) -> None:
        self._snapshots.clear()


def should_replace(kept: Snapshot | None, new: Snapshot) -> bool:
    """A new snapshot replaces an older one, or any one kept under another schema."""
    return kept is None or kept.schema_version != new.schema_version or new.version > kept.version
