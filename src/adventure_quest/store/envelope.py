"""The event envelope: what the write side hands the store and what the store gives back."""

from __future__ import annotations

from typing import Final

import msgspec

from adventure_quest.store.uuid7 import uuid7

#: Append only if the stream does not exist yet.
NO_STREAM: Final = 0
#: Append whatever the stream's current version is.
ANY: Final = -1

ExpectedVersion = int
"""``ANY``, ``NO_STREAM`` (0), or the exact version (>= 1) the stream must be at."""


class Metadata(msgspec.Struct, frozen=True, array_like=True, omit_defaults=True, gc=False):
    """Why and by whom an event was recorded, and when (seconds since the epoch)."""

    correlation_id: str = ""
    causation_id: str = ""
    actor: str = ""
    recorded_at: float = 0.0


class NewEvent(msgspec.Struct, frozen=True, gc=False):
    """An event about to be appended; its id is chosen by the writer so a retry is idempotent."""

    event_type: str
    payload: bytes
    schema_version: int = 1
    metadata: Metadata = Metadata()
    event_id: str = msgspec.field(default_factory=uuid7)


class RecordedEvent(msgspec.Struct, frozen=True, gc=False):
    """An event as stored: its place in its stream (version) and in the shard's log (position)."""

    event_id: str
    stream_id: str
    stream_type: str
    version: int
    position: int
    event_type: str
    schema_version: int
    payload: bytes
    metadata: Metadata
    #: Which shard's log ``position`` belongs to (0 when the store is not sharded).
    shard: int = 0


class AppendResult(msgspec.Struct, frozen=True):
    """Where an append landed: the stream's new version, the last event's position in the log
    of ``shard`` (the shard that stored it: a consistency token names it, computed from this,
    never by hashing the stream id again).

    ``repeat`` says the store wrote nothing: the append's first event id was already recorded on
    the stream (a retry, or a second attempt at a decision whose event ids are derived from what
    it decides, as a hand-over's finish is), and ``version`` and ``position`` are where the
    recorded ones of its ids landed (see store/appending.py).
    """

    stream_id: str
    version: int
    position: int
    repeat: bool = False
    shard: int = 0


def stream_type_of(stream_id: str) -> str:
    """The type of a stream is the part of its id before the first dash (``player-…``)."""
    head, _, _ = stream_id.partition("-")
    return head


def stream_key_of(stream_id: str) -> str:
    """The aggregate's key: the part of its stream id after the type and the first dash
    (``room-village_square`` → ``village_square``, ``player-<uuid>`` → ``<uuid>``)."""
    return stream_id.partition("-")[2]
