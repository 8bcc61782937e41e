"""Poison events: parked in order per projection and stream, while everything else goes on.

When a projection fails on an event, that event and every later event of the same stream for
the same projection are parked (an ordered dead letter) instead of being applied out of order
or skipped. Other streams and other projections are not held up. ``aq dlq`` lists the letters,
retries a stream (its letters are applied in order; a new failure parks again from there) or
skips them (the read model goes on without them).
"""

from __future__ import annotations

import time

from adventure_quest.projections.model import Row, Rows, Table
from adventure_quest.store.envelope import RecordedEvent

DEAD_LETTERS = Table(
    "dead_letters",
    "letter",
    {
        "projection": "text",
        "stream_id": "text",
        "version": "integer",
        "shard": "integer",
        "position": "integer",
        "event_id": "text",
        "event_type": "text",
        "error": "text",
        "parked_at": "integer",
    },
    indexes=(("projection", "stream_id"),),
)
PARKED_STREAMS = Table(
    "parked_streams",
    "parking",
    {"projection": "text", "stream_id": "text", "since_version": "integer", "error": "text"},
    indexes=(("projection",),),
)
TABLES = (DEAD_LETTERS, PARKED_STREAMS)


def parking_key(projection: str, stream_id: str) -> str:
    return f"{projection}|{stream_id}"


def letter_key(projection: str, stream_id: str, version: int) -> str:
    return f"{projection}|{stream_id}|{version:012d}"


def letter(projection: str, recorded: RecordedEvent, error: str) -> Row:
    return {
        "projection": projection,
        "stream_id": recorded.stream_id,
        "version": recorded.version,
        "shard": recorded.shard,
        "position": recorded.position,
        "event_id": recorded.event_id,
        "event_type": recorded.event_type,
        "error": error[:2000],
        "parked_at": int(time.time()),
    }


def park(rows: Rows, projection: str, recorded: RecordedEvent, error: str) -> None:
    """Park ``recorded`` (and, from now on, its stream) for ``projection``."""
    key = parking_key(projection, recorded.stream_id)
    rows.put(
        DEAD_LETTERS.name,
        letter_key(projection, recorded.stream_id, recorded.version),
        letter(projection, recorded, error),
    )
    rows.put(
        PARKED_STREAMS.name,
        key,
        {
            "projection": projection,
            "stream_id": recorded.stream_id,
            "since_version": recorded.version,
            "error": error[:2000],
        },
    )
