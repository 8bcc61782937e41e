"""World statistics: events per minute, and how many events of each stream were applied.

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
from adventure_quest.projections.model import Decoded, Memo, ReadModel, RowKey, Rows, Table
from adventure_quest.store.envelope import RecordedEvent

EVENTS_PER_MINUTE = Table(
    "events_per_minute", "minute", {"events": "integer"}, indexes=(("events",),)
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


class WorldStats(ReadModel):
    """Counts, for operators and for the exactly-once checks."""

    name = "world_stats"
    tables = (EVENTS_PER_MINUTE, STREAM_TALLY)

    def prefetch(self, event: Event, recorded: RecordedEvent) -> Iterable[RowKey]:
        per_minute = (EVENTS_PER_MINUTE.name, minute_of(recorded))
        return per_minute, (STREAM_TALLY.name, recorded.stream_id)

    async def apply(self, event: Event, recorded: RecordedEvent, rows: Rows) -> None:
        minute = minute_of(recorded)
        per_minute = rows.prefetched(EVENTS_PER_MINUTE.name, minute)
        count = per_minute["events"] if per_minute else 0
        rows.put(EVENTS_PER_MINUTE.name, minute, {"events": count + 1})
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
        times = map(attrgetter("metadata.recorded_at"), events)
        minutes = Counter(map(floordiv, times, repeat(60.0)))
        names = {_minute(int(minute)): n for minute, n in minutes.items()}
        counts = Counter(map(attrgetter("stream_id"), events))
        last = {recorded.stream_id: recorded for recorded in events}
        await rows.prefetch(
            [(EVENTS_PER_MINUTE.name, name) for name in names]
            + [(STREAM_TALLY.name, stream) for stream in counts]
        )
        for name, n in names.items():
            per_minute = rows.prefetched(EVENTS_PER_MINUTE.name, name)
            count = per_minute["events"] if per_minute else 0
            rows.put(EVENTS_PER_MINUTE.name, name, {"events": count + n})
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
