"""Rows as the SQL adapters store and select them: one shape, shared by SQLite and PostgreSQL.

Both select ``STREAM_COLUMNS`` for a stream and ``LOG_COLUMNS`` for the global log, in this
order, and keep metadata as msgpack ``[correlation_id, causation_id, actor, recorded_at]``.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, Protocol

import msgspec

from adventure_quest.store.envelope import Metadata, RecordedEvent, stream_type_of

STREAM_COLUMNS = "version, position, event_type, schema_version, payload, metadata"
LOG_COLUMNS = "stream_id, " + STREAM_COLUMNS


class Row(Protocol):
    """A selected row: sqlite3 gives tuples, asyncpg gives Records; both index by position."""

    def __getitem__(self, index: int, /) -> Any: ...


_encode = msgspec.msgpack.Encoder().encode
_decode = msgspec.msgpack.Decoder(Metadata).decode


def encode_metadata(metadata: Metadata, now: float) -> bytes:
    """Metadata as stored, stamped with ``now`` unless it carries its own time."""
    m = metadata
    return _encode((m.correlation_id, m.causation_id, m.actor, m.recorded_at or now))


def stream_events(stream_id: str, rows: Iterable[Row], shard: int) -> list[RecordedEvent]:
    """Events from rows of ``event_id, STREAM_COLUMNS`` of one stream (its id is known)."""
    stream_type, decode = stream_type_of(stream_id), _decode
    return [
        RecordedEvent(
            r[0], stream_id, stream_type, r[1], r[2], r[3], r[4], r[5], decode(r[6]), shard
        )
        for r in rows
    ]


def log_events(rows: Iterable[Row], shard: int) -> list[RecordedEvent]:
    """Events from rows of ``event_id, LOG_COLUMNS`` of a global log."""
    types: dict[str, str] = {}
    decode = _decode
    return [
        RecordedEvent(
            r[0],
            r[1],
            types.get(r[1]) or types.setdefault(r[1], stream_type_of(r[1])),
            r[2],
            r[3],
            r[4],
            r[5],
            r[6],
            decode(r[7]),
            shard,
        )
        for r in rows
    ]
