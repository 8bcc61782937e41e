"""World statistics: events per minute, and how many events of each stream were applied.

Each minute is counted in one row per queue partition (``<minute>/<partition>``) and summed on
read: a row every unit wrote would serialize the workers, which own disjoint partitions, on
its row lock (docs/scaling.md). Every row here is written by one partition's events only.

The per-stream tally is the exactly-once witness of the fault tests: after any number of
crashes and redeliveries, each stream's count must equal its version (nothing lost, nothing
applied twice). Players per room are a query over the room view.
"""

from __future__ import annotations

import functools
import time
from collections import Counter
from collections.abc import Iterable, Sequence
from itertools import repeat
from operator import attrgetter, floordiv, itemgetter

from adventure_quest.domain.events import Event
from adventure_quest.messaging.ports import partition_of
from adventure_quest.projections.model import Decoded, Memo, ReadModel, RowKey, Rows, Table
from adventure_quest.store.envelope import RecordedEvent

EVENTS_PER_MINUTE = Table(
    "events_per_partition_minute",
    "slot",
    {"minute": "text", "partition": "integer", "events": "integer"},
    indexes=(("minute",),),
    read_back=("events",),
)
STREAM_TALLY = Table(
    "stream_tally",
    "stream_id",
    {"stream_type": "text", "events": "integer", "version": "integer"},
    read_back=("events",),
)


@functools.lru_cache(maxsize=64)
def _minute(minute: int) -> str:
    return time.strftime("%Y-%m-%dT%H:%M", time.gmtime(minute * 60))


def minute_of(recorded: RecordedEvent) -> str:
    return _minute(int(recorded.metadata.recorded_at // 60))


def slot(minute: str, partition: int) -> str:
    """The key of a minute's row for one partition."""
    return f"{minute}/{partition}"


class WorldStats(ReadModel):
    """Counts, for operators and for the exactly-once checks."""

    name = "world_stats"
    tables = (EVENTS_PER_MINUTE, STREAM_TALLY)

    def __init__(self, partitions: int = 16) -> None:
        #: The queue's partition count (settings ``partitions``): the minutes' rows follow it.
        self.partitions = partitions

    def _slot(self, recorded: RecordedEvent) -> tuple[str, int, str]:
        minute = minute_of(recorded)
        partition = partition_of(recorded.stream_id, self.partitions)
        return minute, partition, slot(minute, partition)

    def prefetch(self, event: Event, recorded: RecordedEvent) -> Iterable[RowKey]:
        per_minute = (EVENTS_PER_MINUTE.name, self._slot(recorded)[2])
        return per_minute, (STREAM_TALLY.name, recorded.stream_id)

    async def apply(self, event: Event, recorded: RecordedEvent, rows: Rows) -> None:
        minute, partition, key = self._slot(recorded)
        per_minute = rows.prefetched(EVENTS_PER_MINUTE.name, key)
        count = per_minute["events"] if per_minute else 0
        row = {"minute": minute, "partition": partition, "events": count + 1}
        rows.put(EVENTS_PER_MINUTE.name, key, row)
        tally = rows.prefetched(STREAM_TALLY.name, recorded.stream_id)
        rows.put(
            STREAM_TALLY.name,
            recorded.stream_id,
            {
                "stream_type": recorded.stream_type,
                "events": (tally["events"] if tally else 0) + 1,
                "version": recorded.version,
            },
        )

    async def apply_all(self, todo: Sequence[Decoded], rows: Rows, memo: Memo) -> None:
        """The batch counted first, each minute's and stream's row written once."""
        events = list(map(itemgetter(1), todo))
        streams = map(attrgetter("stream_id"), events)
        parts = map(partition_of, streams, repeat(self.partitions))
        times = map(attrgetter("metadata.recorded_at"), events)
        minutes = Counter(zip(map(floordiv, times, repeat(60.0)), parts, strict=True))
        slots = {
            slot(name, partition): (name, partition, n)
            for (minute, partition), n in minutes.items()
            for name in (_minute(int(minute)),)
        }
        counts = Counter(map(attrgetter("stream_id"), events))
        last = {recorded.stream_id: recorded for recorded in events}
        await rows.prefetch(
            [(EVENTS_PER_MINUTE.name, key) for key in slots]
            + [(STREAM_TALLY.name, stream) for stream in counts]
        )
        for key, (name, partition, n) in slots.items():
            per_minute = rows.prefetched(EVENTS_PER_MINUTE.name, key)
            count = per_minute["events"] if per_minute else 0
            row = {"minute": name, "partition": partition, "events": count + n}
            rows.put(EVENTS_PER_MINUTE.name, key, row)
        for stream, n in counts.items():
            tally, recorded = rows.prefetched(STREAM_TALLY.name, stream), last[stream]
            rows.put(
                STREAM_TALLY.name,
                stream,
                {
                    "stream_type": recorded.stream_type,
                    "events": (tally["events"] if tally else 0) + n,
                    "version": recorded.version,
                },
            )
