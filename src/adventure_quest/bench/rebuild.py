"""``aq bench rebuild``: rebuilding one read model from a log of N events (shadow, swap)."""

from __future__ import annotations

import asyncio
import shutil
import tempfile
import time
from typing import Any

from adventure_quest.app.aggregates import event_codec
from adventure_quest.app.world_loader import load_world
from adventure_quest.bench.harness import Progress
from adventure_quest.bench.project import events_for
from adventure_quest.bootstrap.runtime import quieter_garbage_collection
from adventure_quest.projections.catalog import projections
from adventure_quest.projections.rebuild import rebuild
from adventure_quest.projections.runner import ProjectionRunner
from adventure_quest.projections.urls import open_read_database
from adventure_quest.store.envelope import ANY, NewEvent
from adventure_quest.store.urls import open_event_store


async def run(
    store_url: str, read_url: str | None, events: int, projection: str, quiet: bool
) -> dict[str, Any]:
    folder = tempfile.mkdtemp(prefix="aq-bench-rebuild-")
    store = open_event_store(store_url)
    db = open_read_database(read_url or f"sqlite:///{folder}/read.sqlite")
    try:
        runner = ProjectionRunner(db, projections(load_world()), store, event_codec())
        await runner.setup()
        writing = Progress("writing events", events, quiet)
        batch: dict[str, list[NewEvent]] = {}
        for written, (stream, event) in enumerate(events_for(events), start=1):
            batch.setdefault(stream, []).append(event)
            if written % 5000 == 0 or written == events:
                await asyncio.gather(*(store.append(s, ANY, chunk) for s, chunk in batch.items()))
                batch.clear()
                writing.update(written)
        writing.done()
        quieter_garbage_collection()  # as `aq projections rebuild` runs, once started
        replay = Progress(f"rebuilding {projection}", events, quiet)
        started = time.perf_counter()
        result = await rebuild(runner, projection, lambda done, _total: replay.update(done))
        elapsed = time.perf_counter() - started
        replay.done()
    finally:
        await db.close()
        await store.close()
        shutil.rmtree(folder, ignore_errors=True)
    return {
        "benchmark": "rebuild",
        "projection": projection,
        "events": result.events,
        "rows": result.rows,
        "seconds": round(elapsed, 3),
        "events_per_s": round(result.events / elapsed),
    }
