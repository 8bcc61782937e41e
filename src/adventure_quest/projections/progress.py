"""How far the read models have applied each shard's log, partition by partition.

A command's consistency token names, for each (shard, partition) its events went to, the log
position of its last event there. Events of one partition are applied in log order per shard,
so once a partition has applied position p of a shard, it has applied every earlier event of
that shard it carries: the token is reached when every entry is at or below what is recorded
here. The rows are written in the same read-database transaction as the batch they describe.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Sequence

from adventure_quest.messaging.ports import partition_of
from adventure_quest.projections.model import Row, Table, Unit
from adventure_quest.store.envelope import RecordedEvent

APPLIED = Table(
    "applied_positions",
    "mark",
    {"partition": "integer", "shard": "integer", "position": "integer"},
)
Mark = tuple[int, int]  # (shard, partition)


def mark_key(shard: int, partition: int) -> str:
    return f"{shard}.{partition}"


@functools.lru_cache(maxsize=1 << 14)
def _partition(stream_id: str, partitions: int) -> int:
    return partition_of(stream_id, partitions)  # a hash worth remembering: streams recur


def mark_of(shard: int, stream_id: str, partitions: int) -> Mark:
    """The (shard, partition) an event of ``stream_id`` stored on ``shard`` is counted under.

    The one place marks are computed: for what the read models applied (``marks``) and for
    what a command's answer covers (queries/consistency.py ``token_for``).
    """
    return shard, _partition(stream_id, partitions)


def marks(events: Iterable[RecordedEvent], partitions: int) -> dict[Mark, int]:
    """The highest position per (shard, partition) among ``events``."""
    highest: dict[Mark, int] = {}
    for event in events:
        mark = mark_of(event.shard, event.stream_id, partitions)
        if event.position > highest.get(mark, 0):
            highest[mark] = event.position
    return highest


async def record(unit: Unit, reached: dict[Mark, int]) -> None:
    """Move the recorded positions forward (never back: redeliveries carry older ones)."""
    keys = {mark_key(*mark): (mark, position) for mark, position in reached.items()}
    have = await unit.load(APPLIED, list(keys))
    puts: dict[str, Row] = {}
    for key, ((shard, partition), position) in keys.items():
        if position > have.get(key, {}).get("position", 0):
            puts[key] = {"partition": partition, "shard": shard, "position": position}
    if puts:
        await unit.write(APPLIED, puts, [])


def reached(rows: Sequence[Row]) -> dict[Mark, int]:
    """The recorded positions, from the table's rows."""
    return {(row["shard"], row["partition"]): row["position"] for row in rows}
