"""The in-process queue of the embedded shape.

It holds nothing across a restart, so "held for good" means "applied by every consumer group":
``publish`` returns only when each group named at construction has acknowledged the events.
The relay therefore never moves its checkpoint past an event a consumer could lose in a crash.
Like JetStream's duplicate window, it remembers the ids of the last DEDUP_WINDOW delivered
events of each partition and drops them when they are published again.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Sequence

from adventure_quest.messaging.ports import DEFAULT_PARTITIONS, partition_of
from adventure_quest.store.envelope import RecordedEvent

#: Ids of delivered events remembered per partition, so a re-published event is dropped.
DEDUP_WINDOW = 100_000


class _Partition:
    def __init__(self) -> None:
        self.events: list[RecordedEvent] = []
        self.offset = 0  # sequence number of events[0]
        self.seen: set[str] = set()
        self.forgetting: deque[str] = deque()
        self.acked: dict[str, int] = {}
        self.arrived = asyncio.Event()
        self.progressed = asyncio.Event()

    def end(self) -> int:
        return self.offset + len(self.events)

    def trim(self) -> None:
        done = min(self.acked.values(), default=self.end())
        drop = done - self.offset
        if drop > 0:
            self.forgetting.extend(event.event_id for event in self.events[:drop])
            while len(self.forgetting) > DEDUP_WINDOW:
                self.seen.discard(self.forgetting.popleft())
            del self.events[:drop]
            self.offset = done


class MemoryConsumer:
    """One group's cursor over one partition."""

    def __init__(self, partition_number: int, part: _Partition, group: str) -> None:
        self.partition = partition_number
        self._part = part
        self._group = group
        self._fetched = part.acked.setdefault(group, part.offset)

    async def fetch(self, max_events: int, timeout: float) -> list[RecordedEvent]:
        part = self._part
        if self._fetched >= part.end():
            part.arrived.clear()
            try:
                # asyncio.timeout, not wait_for: on 3.11 wait_for can swallow a cancellation
                # that races with the wake-up, and a consumer loop would then never stop.
                async with asyncio.timeout(timeout):
                    await part.arrived.wait()
            except TimeoutError:
                return []
        start = max(self._fetched, part.offset) - part.offset
        batch = part.events[start : start + max_events]
        self._fetched = part.offset + start + len(batch)
        return batch

    async def ack(self) -> None:
        part = self._part
        part.acked[self._group] = self._fetched
        part.trim()
        part.progressed.set()

    async def pending(self) -> int:
        return self._part.end() - self._part.acked[self._group]

    async def oldest_pending(self) -> RecordedEvent | None:
        part = self._part
        index = part.acked[self._group] - part.offset
        return part.events[index] if 0 <= index < len(part.events) else None

    def rewind(self) -> None:
        """Forget unacknowledged fetches (what a crash-restarted consumer would see)."""
        self._fetched = self._part.acked[self._group]


class MemoryQueue:
    """Partitioned in-process queue; ``groups`` are the consumer groups publishing waits for."""

    def __init__(self, groups: Sequence[str], partitions: int = DEFAULT_PARTITIONS) -> None:
        self.partitions = partitions
        self.groups = tuple(groups)
        self._parts = [_Partition() for _ in range(partitions)]
        for part in self._parts:
            for group in self.groups:
                part.acked[group] = 0

    async def publish(self, events: Sequence[RecordedEvent]) -> None:
        targets: dict[int, int] = {}
        for event in events:
            number = partition_of(event.stream_id, self.partitions)
            part = self._parts[number]
            if event.event_id in part.seen:
                continue  # a re-published event: the queue holds it already
            part.seen.add(event.event_id)
            part.events.append(event)
            targets[number] = part.end()
        for number in targets:
            self._parts[number].arrived.set()
        for number, end in targets.items():
            part = self._parts[number]
            while min(part.acked.values(), default=end) < end:
                part.progressed.clear()
                await part.progressed.wait()

    def consumer(self, group: str, partition: int) -> MemoryConsumer:
        if group not in self.groups:
            raise ValueError(f"consumer group {group!r} was not declared (have {self.groups})")
        return MemoryConsumer(partition, self._parts[partition], group)

    async def ready(self) -> None:
        return None  # in this process: it answers while the process does

    async def close(self) -> None:
        return None
