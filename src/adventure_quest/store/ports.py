"""Ports of the write side's storage: the event store, its global logs, the snapshot store."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

import msgspec

from adventure_quest.store.envelope import AppendResult, ExpectedVersion, NewEvent, RecordedEvent


class GlobalLog(Protocol):
    """One shard's log of every event, in commit order, numbered 1, 2, 3… without holes."""

    shard: int

    async def read_all(self, after_position: int = 0, limit: int = 1000) -> list[RecordedEvent]:
        """Up to ``limit`` events with position > after_position, in order; never skips one."""
        ...

    async def head(self) -> int:
        """The position of the last committed event; 0 when empty."""
        ...

    async def wait_for(self, after_position: int, timeout: float) -> int:
        """Wait (without busy polling) until head > after_position or timeout; return head."""
        ...


class EventStore(Protocol):
    """Append-only streams with optimistic concurrency; one global log per shard."""

    async def append(
        self, stream_id: str, expected_version: ExpectedVersion, events: Sequence[NewEvent]
    ) -> AppendResult:
        """Append atomically at versions expected+1.., durable before returning; else raise."""
        ...

    async def read_stream(
        self, stream_id: str, from_version: int = 1, to_version: int | None = None
    ) -> list[RecordedEvent]:
        """The stream's events with from_version <= version <= to_version, in version order."""
        ...

    async def stream_version(self, stream_id: str) -> int:
        """The stream's current version; 0 when it has no events."""
        ...

    async def read_by_ids(self, stream_id: str, event_ids: Sequence[str]) -> list[RecordedEvent]:
        """Those of ``event_ids`` recorded on the stream, in version order ([] if none).

        Found through the unique index on event ids, however far back they are: what a
        decision with derived ids (``Repository.update(once=...)``) recorded, whoever recorded it.
        """
        ...

    def logs(self) -> Sequence[GlobalLog]:
        """The global log of each shard, in shard order (one for an unsharded store)."""
        ...

    async def close(self) -> None:
        """Finish in-flight appends and release resources."""
        ...


class CheckpointStore(Protocol):
    """Named positions kept beside a shard's log (where a relay has published up to)."""

    async def load(self, name: str) -> int:
        """The saved position; 0 when none was saved."""
        ...

    async def save(self, name: str, position: int) -> None:
        """Keep ``position`` for ``name`` (it only moves forward)."""
        ...

    async def close(self) -> None:
        """Release resources."""
        ...


class Snapshot(msgspec.Struct, frozen=True):
    """An aggregate's state at ``version``, encoded under a snapshot ``schema_version``."""

    stream_id: str
    version: int
    schema_version: int
    state: bytes


class SnapshotStore(Protocol):
    """Latest snapshot per stream; a newer one replaces the older."""

    async def save(self, snapshot: Snapshot) -> None:
        """Keep ``snapshot`` unless one of a higher version with the same schema is kept."""
        ...

    async def load(self, stream_id: str) -> Snapshot | None:
        """The latest snapshot of the stream, or None."""
        ...

    async def close(self) -> None:
        """Release resources."""
        ...
