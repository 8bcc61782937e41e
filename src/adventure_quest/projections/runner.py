"""Applying events to read models exactly once in effect (the worker that feeds it is
processing/projection_worker.py).

Delivery is at least once and may skip ahead; applying is idempotent. For each projection and
stream the read database keeps the last applied version, in the same transaction as the rows:

- an event at or below it is a duplicate and is skipped;
- an event beyond the next version means the queue skipped some (a gap): the missing events are
  read from the event store and applied first, never out of order.

A batch is one read-database transaction: rows and versions commit together, so a crash at any
moment leaves either all of the batch or none of it. A live batch of a worker whose partitions
are leased carries their fencing tokens (projections/fencing.py): checked first, so a unit of a
worker that lost a partition is refused before it reads anything. A transaction that conflicted
with another writer's (projections/conflicts.py) is applied again from the start, from a fresh
plan.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence, Set

import msgspec

from adventure_quest import tracing
from adventure_quest.domain.events import Event
from adventure_quest.messaging.ports import partition_of
from adventure_quest.projections import dead_letters, progress
from adventure_quest.projections.batch import Batch
from adventure_quest.projections.conflicts import UnitConflictError, retried
from adventure_quest.projections.fencing import Fence, Fenced
from adventure_quest.projections.model import (
    Decoded,
    Memo,
    Projection,
    RowCache,
    RowKey,
    Rows,
    Table,
    Unit,
    apply_in_bulk,
    named,
    table_names,
)
from adventure_quest.projections.ports import ReadDatabase
from adventure_quest.store.codec import EventCodec
from adventure_quest.store.envelope import RecordedEvent
from adventure_quest.store.errors import StoreUnavailableError
from adventure_quest.store.ports import EventStore

log = logging.getLogger(__name__)
LETTERS, PARKED = dead_letters.DEAD_LETTERS, dead_letters.PARKED_STREAMS
PARKED_BEHIND = "parked behind an earlier failure of its stream"


class Applied(msgspec.Struct):
    """What a batch did, counted."""

    applied: int = 0
    duplicates: int = 0
    gap_events: int = 0
    parked: int = 0


def table_map(projection: Projection) -> dict[str, Table]:
    """The tables a projection's rows go to, by the names its code uses (dead letters too)."""
    return {**table_names(projection), **{t.name: t for t in dead_letters.TABLES}}


class ParkedStreams:
    """Which streams of a batch are parked, per projection, asked of the read database lazily.

    ``anything``: whether any stream is parked for any projection (None: not known yet); asked
    at most once per batch, and a runner's row cache keeps the answer between batches.
    """

    def __init__(self, db: ReadDatabase, anything: bool | None) -> None:
        self.db = db
        self.anything = anything

    async def streams(self, name: str, todo: Sequence[RecordedEvent], rows: Rows) -> set[str]:
        """The streams of ``todo`` parked for projection ``name`` (their events wait behind)."""
        if self.anything is None:  # asked once per batch: usually no projection has any
            self.anything = bool(await self.db.select(PARKED, limit=1))
        if not self.anything or not await self.db.select(
            PARKED, where={"projection": name}, limit=1
        ):
            return set()  # the common case: nothing parked, no lookup per stream
        parking = {
            dead_letters.parking_key(name, stream): stream
            for stream in dict.fromkeys(r.stream_id for r in todo)
        }
        await rows.prefetch([(PARKED.name, key) for key in parking])
        return {
            stream
            for key, stream in parking.items()
            if await rows.get(PARKED.name, key) is not None
        }


class ProjectionRunner:
    """Applies batches of recorded events to every projection."""

    def __init__(
        self,
        db: ReadDatabase,
        projections: Sequence[Projection],
        store: EventStore,
        codec: EventCodec[Event],
        *,
        partitions: int | None = None,
        cache_rows: int = 20_000,
    ) -> None:
        self.db = db
        self.projections = list(projections)
        self.store = store
        self.codec = codec
        #: The queue's partition count: when given, live batches record how far they reached
        #: (projections/progress.py), which is what consistency tokens are checked against.
        self.partitions = partitions
        self.totals = Applied()
        #: Units refused because a newer owner holds one of their partitions (nothing applied).
        self.fenced = 0
        #: Rows of earlier batches, for the next ones (``RowCache``; 0 rows: none kept).
        self.cache = RowCache(cache_rows) if cache_rows > 0 else None
        #: Called with each batch once it is committed, and the (table, key) of every row it
        #: changed (cache invalidation, notifications, metrics, benchmarks).
        self.committed: list[Callable[[Sequence[RecordedEvent], Set[RowKey]], None]] = []

    @property
    def tables(self) -> list[Table]:
        owned = [table for projection in self.projections for table in projection.tables]
        return [*owned, *dead_letters.TABLES, progress.APPLIED]

    async def setup(self) -> None:
        await self.db.create(self.tables)

    async def apply(self, events: Sequence[RecordedEvent], fences: Sequence[Fence] = ()) -> Applied:
        """Apply one batch to every projection, in one transaction, under ``fences``.

        ``Fenced`` (nothing applied) if a newer owner holds a partition of ``fences``; with no
        fences (fixed partitions, replays) nothing is checked.
        """
        return await self._apply(self.projections, events, live=True, fences=fences)

    async def apply_to(self, projection: Projection, events: Sequence[RecordedEvent]) -> Applied:
        """Apply one batch to one projection (a rebuild catching up)."""
        return await self._apply([projection], events, live=False)

    async def _apply(
        self,
        projections: Sequence[Projection],
        events: Sequence[RecordedEvent],
        *,
        live: bool,
        fences: Sequence[Fence] = (),
    ) -> Applied:
        counts, changed = await retried(
            lambda: self._attempt(projections, events, live=live, fences=fences)
        )
        self.totals.applied += counts.applied
        self.totals.duplicates += counts.duplicates
        self.totals.gap_events += counts.gap_events
        self.totals.parked += counts.parked
        for listener in self.committed:
            listener(events, changed)
        return counts

    async def _attempt(
        self,
        projections: Sequence[Projection],
        events: Sequence[RecordedEvent],
        *,
        live: bool,
        fences: Sequence[Fence],
    ) -> tuple[Applied, set[RowKey]]:
        """One try at the batch's unit; a conflict leaves nothing of it, here or in memory."""
        counts = Applied()
        changed: set[RowKey] = set()
        batch = Batch(events, self.codec)
        cache = self.cache
        scope = None
        if self.partitions is not None and events:
            scope = sorted({partition_of(e.stream_id, self.partitions) for e in events})
        try:
            async with self.db.unit(scope) as unit:
                await unit.fence(fences)
                generation = await unit.generation()
                if cache is not None:
                    cache.check(generation)
                parked = ParkedStreams(self.db, cache.anything_parked if cache else None)
                for projection in projections:
                    one = self._apply_one(
                        unit, projection, batch, parked, counts=counts, changed=changed
                    )
                    if live and tracing.TRACER is not None:
                        one = tracing.projecting(one, projection.name, events)
                    await one
                if live and self.partitions is not None:
                    await progress.record(unit, progress.marks(events, self.partitions))
        except BaseException as error:
            if cache is not None:
                cache.clear()  # its rows may hold changes that were not committed
            if isinstance(error, Fenced):
                self.fenced += 1
            raise
        if cache is not None:
            cache.committed(generation)
            cache.anything_parked = True if counts.parked else parked.anything
        return counts, changed

    async def _apply_one(
        self,
        unit: Unit,
        projection: Projection,
        batch: Batch,
        parking: ParkedStreams,
        *,
        counts: Applied,
        changed: set[RowKey],
    ) -> None:
        plan = await batch.plan(await unit.versions(projection.name, batch.streams), self.store)
        counts.duplicates += plan.duplicates
        counts.gap_events += plan.gap_events
        if not plan.todo:
            return
        tables, cache = table_map(projection), self.cache
        rows = Rows(unit, tables, cache)
        parked = await parking.streams(projection.name, plan.todo, rows)
        todo, clean = batch.decoded(plan), plan.clean
        fast = clean is not None and not parked
        if clean is not None and fast:
            fast = await self._fast(projection, clean, batch.memo, rows)
            if fast:
                counts.applied += len(clean)
            else:
                if cache is not None:
                    cache.clear()  # the failed fast path may have changed rows it holds in place
                rows = Rows(unit, tables, cache)  # and what it changed is forgotten
        if not fast:
            await self._apply_events(projection, todo, rows, parked, counts)
        changed |= rows.changed
        changed |= rows.touched
        await rows.flush()
        await unit.set_versions(projection.name, plan.versions)

    @staticmethod
    async def _fast(projection: Projection, todo: list[Decoded], memo: Memo, rows: Rows) -> bool:
        """Apply the whole batch without journaling each event; False if any event failed.

        A failure costs the batch's work on this projection: the runner then applies it again
        event by event, which parks the failing events (the common case, no failure, pays for
        no undo journal and no per-event bookkeeping).
        """
        rows.journaled = False
        try:
            await apply_in_bulk(projection, todo, rows, memo)
        except (StoreUnavailableError, UnitConflictError):
            raise  # an outage or a conflict, not a poison event: the batch is retried whole
        except Exception as error:
            log.info("%s: a batch failed (%r); applying it event by event", projection.name, error)
            return False
        return True

    async def _apply_events(
        self,
        projection: Projection,
        todo: Sequence[tuple[Event | str, RecordedEvent]],
        rows: Rows,
        parked: set[str],
        counts: Applied,
    ) -> None:
        """Apply decoded events in order; park those that fail, and their streams' next ones."""
        handles = projection.handles
        wanted: list[RowKey] = []
        for event, recorded in todo:
            if not isinstance(event, str) and (handles is None or isinstance(event, handles)):
                wanted += projection.prefetch(event, recorded)
        await rows.prefetch(wanted)
        applied = 0
        for event, recorded in todo:
            if isinstance(event, str):
                failure = event
            elif recorded.stream_id in parked:
                failure = PARKED_BEHIND
            elif handles is not None and not isinstance(event, handles):
                applied += 1  # nothing for this projection to change
                continue
            else:
                rows.begin()
                try:
                    await projection.apply(event, recorded, rows)
                except UnitConflictError:
                    raise
                except Exception as error:
                    failure = failed(projection, recorded, rows, error)
                else:
                    applied += 1
                    continue
            dead_letters.park(rows, projection.name, recorded, failure)
            parked.add(recorded.stream_id)
            counts.parked += 1
        counts.applied += applied

    def projection(self, name: str) -> Projection:
        """The projection called ``name``; ValueError naming the known ones otherwise."""
        return named(self.projections, name)


async def apply_event(
    projection: Projection, event: Event | None, recorded: RecordedEvent, rows: Rows
) -> str:
    """Apply one event; on failure undo its changes and say why ("" when applied)."""
    parking = dead_letters.parking_key(projection.name, recorded.stream_id)
    if await rows.get(PARKED.name, parking) is not None:
        return PARKED_BEHIND
    if event is None:
        return "cannot decode"
    rows.begin()
    try:
        await rows.prefetch(projection.prefetch(event, recorded))
        await projection.apply(event, recorded, rows)
    except UnitConflictError:
        raise
    except Exception as error:
        return failed(projection, recorded, rows, error)
    return ""


def failed(projection: Projection, recorded: RecordedEvent, rows: Rows, error: Exception) -> str:
    """Undo what the event changed before it failed; why it failed."""
    rows.undo()
    log.warning(
        "%s failed on %s v%d (%r); parking the stream",
        projection.name,
        recorded.stream_id,
        recorded.version,
        error,
    )
    return f"{type(error).__name__}: {error}"
