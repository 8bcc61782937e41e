"""History and time travel: a stream's events as recorded, and an aggregate as it once was.

One service for the command line (``aq events``, ``aq state``) and the HTTP API
(``GET /players/{id}/events``, ``GET /players/{id}/state``): pages of events, upcast to the
current schema when decoded, and states rebuilt at a version or at a moment from the snapshot
before it and the events after (``Repository.load_at``).
"""

from __future__ import annotations

from typing import TypeVar

import msgspec

from adventure_quest.app.aggregates import AggregateType
from adventure_quest.app.repository import Loaded, Repository
from adventure_quest.domain.events import Event
from adventure_quest.store.envelope import RecordedEvent

S = TypeVar("S", bound=msgspec.Struct)


class History:
    """Reads what the log holds of one stream, for people looking back at it."""

    def __init__(self, repository: Repository) -> None:
        self.repository = repository

    async def version(self, stream_id: str) -> int:
        """The stream's current version (0: no such stream)."""
        return await self.repository.store.stream_version(stream_id)

    async def events(
        self, stream_id: str, after: int = 0, limit: int | None = None
    ) -> list[RecordedEvent]:
        """The stream's events after version ``after``, oldest first, at most ``limit``."""
        last = None if limit is None else after + limit
        return await self.repository.store.read_stream(stream_id, after + 1, last)

    def decode(self, recorded: RecordedEvent) -> Event:
        """A recorded event in the current shape of its type (upcast if stored older)."""
        return self.repository.codec.decode(recorded)

    async def version_at(self, stream_id: str, moment: float, current: int) -> int:
        """The version the stream had at ``moment`` (Unix seconds): its last event by then."""
        reached = 0
        for event in await self.repository.store.read_stream(stream_id, 1, current):
            if event.metadata.recorded_at > moment:
                break
            reached = event.version
        return reached

    async def as_of(
        self,
        kind: AggregateType[S],
        stream_id: str,
        *,
        version: int | None = None,
        moment: float | None = None,
    ) -> Loaded[S]:
        """The aggregate at ``version`` (clamped to the current one) or at ``moment``; now when
        neither is given."""
        current = await self.version(stream_id)
        target = current if version is None else min(version, current)
        if moment is not None:
            target = await self.version_at(stream_id, moment, current)
        return await self.repository.load_at(kind, stream_id, target)
