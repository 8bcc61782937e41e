"""Dead-letter administration: listing, retrying and skipping a read model's parked events.

A projection that fails on an event parks it (projections/dead_letters.py), and every later
event of that stream waits behind it, in order. ``aq dlq list|retry|skip`` and the API's
``/admin/dead-letters`` work through this class: a retry applies the parked events again in
order (a new failure parks them again), a skip drops them and the read model goes on.
"""

from __future__ import annotations

from collections.abc import Sequence

from adventure_quest.domain.events import Event
from adventure_quest.projections import dead_letters
from adventure_quest.projections.conflicts import retried
from adventure_quest.projections.model import Projection, Row, Rows, named
from adventure_quest.projections.ports import ReadDatabase
from adventure_quest.projections.runner import ProjectionRunner, apply_event, table_map
from adventure_quest.store.codec import EventCodec
from adventure_quest.store.ports import EventStore


class DeadLetterAdmin:
    """The parked events of ``projections`` in ``db``, and what an operator can do with them."""

    def __init__(
        self,
        db: ReadDatabase,
        projections: Sequence[Projection],
        store: EventStore,
        codec: EventCodec[Event],
    ) -> None:
        self.db = db
        self.projections = list(projections)
        self.store = store
        self.codec = codec

    @classmethod
    def of(cls, runner: ProjectionRunner) -> DeadLetterAdmin:
        """The administration of the dead letters ``runner`` parks."""
        return cls(runner.db, runner.projections, runner.store, runner.codec)

    def projection(self, name: str) -> Projection:
        """The projection called ``name``; ValueError naming the known ones otherwise."""
        return named(self.projections, name)

    async def dead_letters(self, projection: str | None = None) -> list[Row]:
        """Parked events, by projection, stream and version."""
        where = {} if projection is None else {"projection": projection}
        letters = await self.db.select(dead_letters.DEAD_LETTERS, where=where)
        return sorted(letters, key=lambda r: (r["projection"], r["stream_id"], r["version"]))

    async def count(self, projection: str | None = None) -> int:
        """How many events are parked, counted by the read database without reading them."""
        where = {} if projection is None else {"projection": projection}
        return await self.db.count(dead_letters.DEAD_LETTERS, where=where)

    async def retry(self, name: str, stream_id: str | None = None) -> tuple[int, int]:
        """Apply a projection's parked events again, in order; (applied, still parked)."""
        projection = self.projection(name)
        letters = [r for r in await self.dead_letters(name) if stream_id in (None, r["stream_id"])]
        return await retried(lambda: self._retry(projection, letters))

    async def _retry(self, projection: Projection, letters: list[Row]) -> tuple[int, int]:
        name = projection.name
        applied = 0
        async with self.db.unit() as unit:
            rows = Rows(unit, table_map(projection))
            for stream in dict.fromkeys(r["stream_id"] for r in letters):
                rows.delete(
                    dead_letters.PARKED_STREAMS.name, dead_letters.parking_key(name, stream)
                )
                for letter in (r for r in letters if r["stream_id"] == stream):
                    version = letter["version"]
                    (recorded,) = await self.store.read_stream(stream, version, version)
                    try:
                        event: Event | None = self.codec.decode(recorded)
                    except Exception:
                        event = None
                    failure = await apply_event(projection, event, recorded, rows)
                    if failure:
                        dead_letters.park(rows, name, recorded, failure)
                        break
                    rows.delete(
                        dead_letters.DEAD_LETTERS.name, letter[dead_letters.DEAD_LETTERS.key]
                    )
                    applied += 1
            await rows.flush()
        return applied, len(letters) - applied

    async def skip(self, name: str, stream_id: str | None = None) -> int:
        """Drop a projection's parked events (the read model goes on without them)."""
        self.projection(name)
        letters = [r for r in await self.dead_letters(name) if stream_id in (None, r["stream_id"])]

        async def drop() -> None:
            async with self.db.unit() as unit:
                await unit.write(
                    dead_letters.DEAD_LETTERS,
                    {},
                    [r[dead_letters.DEAD_LETTERS.key] for r in letters],
                )
                streams = dict.fromkeys(r["stream_id"] for r in letters)
                await unit.write(
                    dead_letters.PARKED_STREAMS,
                    {},
                    [dead_letters.parking_key(name, stream) for stream in streams],
                )

        await retried(drop)
        return len(letters)
