"""The message-queue port: events partitioned by stream id, in order within a partition.

Publishing is at-least-once into the queue and deduplicated by event id; consuming is
at-least-once out of it. Consumers make the effect exactly-once by applying idempotently
(see projections/runner.py).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from adventure_quest.store.envelope import RecordedEvent
from adventure_quest.store.errors import StoreError
from adventure_quest.store.sharding import shard_of

DEFAULT_PARTITIONS = 16


def partition_of(stream_id: str, partitions: int) -> int:
    """The partition that carries ``stream_id``'s events (the same stable hash as sharding)."""
    return shard_of(stream_id, partitions)


class QueueUnavailableError(StoreError):
    """The broker cannot be reached or refused the operation; retry later."""

    code = "queue_unavailable"


class Consumer(Protocol):
    """A durable reader of one partition for one consumer group."""

    partition: int

    async def fetch(self, max_events: int, timeout: float) -> list[RecordedEvent]:
        """The next events of the partition in order; [] when none arrived within ``timeout``.

        Events fetched but not acknowledged are delivered again (to this consumer or, after a
        crash, to the next one of the same group and partition).
        """
        ...

    async def ack(self) -> None:
        """Acknowledge every event fetched so far."""
        ...

    async def pending(self) -> int:
        """How many events of the partition this group has not acknowledged yet."""
        ...

    async def oldest_pending(self) -> RecordedEvent | None:
        """The oldest event of the partition this group has not acknowledged, if any."""
        ...


class MessageQueue(Protocol):
    """Partitioned, ordered, deduplicating queue of recorded events."""

    partitions: int

    async def publish(self, events: Sequence[RecordedEvent]) -> None:
        """Return once the queue holds every event for good (each event at most once).

        Raises QueueUnavailableError when it cannot; publishing the same events again is safe.
        """
        ...

    def consumer(self, group: str, partition: int) -> Consumer:
        """The durable consumer of ``partition`` for consumer group ``group``."""
        ...

    async def ready(self) -> None:
        """Return when the queue answers (its stream exists); raise QueueUnavailableError."""
        ...

    async def close(self) -> None:
        """Release connections."""
        ...
