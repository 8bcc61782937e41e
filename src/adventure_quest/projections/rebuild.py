"""Rebuilding a read model from the full log while the live one keeps serving.

1. A shadow copy of the projection writes to shadow tables (``<table>__rebuild``) under a name
   of its own, so its applied versions never mix with the live ones.
2. It replays every shard's log from the start, then catches up with what arrived meanwhile.
3. The swap is one read-database transaction: the live tables take the shadow's rows and the
   live projection takes the shadow's versions. Readers see the old rows until it commits and
   the new ones after: no downtime.
4. Events that arrived between the last catch-up and the swap are applied to the live
   projection right after (idempotently: anything already there is skipped).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence

import msgspec

from adventure_quest.domain.events import Event
from adventure_quest.projections.conflicts import retried
from adventure_quest.projections.model import (
    Decoded,
    Memo,
    Projection,
    ReadModel,
    RowKey,
    Rows,
    Table,
    apply_in_bulk,
    table_names,
)
from adventure_quest.projections.runner import ProjectionRunner
from adventure_quest.store.envelope import RecordedEvent
from adventure_quest.store.uuid7 import uuid7

SUFFIX = "__rebuild"
PAGE = 2000


class Shadow(ReadModel):
    """The live projection's code, writing to shadow tables under its own name."""

    def __init__(self, live: Projection) -> None:
        self.live = live
        self.name = f"{live.name}{SUFFIX}_{uuid7()[:8]}"
        #: Name the live code uses -> shadow table written (always set, unlike ``renamed``).
        self.shadows = {
            name: msgspec.structs.replace(table, name=f"{table.name}{SUFFIX}")
            for name, table in table_names(live).items()
        }
        self.renamed = self.shadows
        self.tables: Sequence[Table] = list(self.shadows.values())
        self.handles = live.handles

    def prefetch(self, event: Event, recorded: RecordedEvent) -> Iterable[RowKey]:
        return self.live.prefetch(event, recorded)

    async def apply(self, event: Event, recorded: RecordedEvent, rows: Rows) -> None:
        await self.live.apply(event, recorded, rows)

    async def apply_all(self, todo: Sequence[Decoded], rows: Rows, memo: Memo) -> None:
        await apply_in_bulk(self.live, todo, rows, memo)


class Rebuilt(msgspec.Struct):
    """What a rebuild did."""

    projection: str
    events: int
    rows: int
    caught_up_after_swap: int


async def rebuild(
    runner: ProjectionRunner, name: str, progress: Callable[[int, int], None] | None = None
) -> Rebuilt:
    """Rebuild projection ``name`` of ``runner`` from the log and swap it in atomically."""
    live = runner.projection(name)
    shadow = Shadow(live)
    db, store = runner.db, runner.store
    replay = ProjectionRunner(db, [shadow], store, runner.codec)
    await db.create(shadow.tables)

    async def clear() -> None:
        async with db.unit() as unit:
            for table in shadow.tables:
                stale = [row[table.key] for row in await db.select(table)]
                await unit.write(table, {}, stale)

    await retried(clear)
    logs = store.logs()
    positions = [0] * len(logs)
    versions: dict[str, int] = {}
    replayed = 0
    total = sum([await log.head() for log in logs])
    while True:
        moved = 0
        for n, log in enumerate(logs):
            while page := await log.read_all(positions[n], PAGE):
                await replay.apply(page)
                for event in page:
                    versions[event.stream_id] = event.version
                positions[n] = page[-1].position
                moved += len(page)
                replayed += len(page)
                if progress is not None:
                    progress(replayed, max(total, replayed))
        if not moved:
            break
    rows = await retried(lambda: _swap(runner, live, shadow, versions))
    after = 0
    for n, log in enumerate(logs):
        while page := await log.read_all(positions[n], PAGE):
            counts = await runner.apply_to(live, page)
            after += counts.applied
            positions[n] = page[-1].position
    return Rebuilt(name, replayed, rows, after)


async def _swap(
    runner: ProjectionRunner, live: Projection, shadow: Shadow, versions: dict[str, int]
) -> int:
    db = runner.db
    copied = 0
    pairs = [(table_names(live)[n], shadow.shadows[n]) for n in shadow.shadows]
    contents = {
        live_table.name: (
            {row[live_table.key] for row in await db.select(live_table)},
            {row.pop(shadow_table.key): row for row in await db.select(shadow_table)},
        )
        for live_table, shadow_table in pairs
    }
    async with db.unit() as unit:
        for live_table, shadow_table in pairs:
            old_keys, new_rows = contents[live_table.name]
            await unit.write(live_table, new_rows, sorted(old_keys - new_rows.keys()))
            await unit.write(shadow_table, {}, list(new_rows))
            copied += len(new_rows)
        await unit.set_versions(live.name, versions)
        await unit.drop_versions(shadow.name)
    return copied
