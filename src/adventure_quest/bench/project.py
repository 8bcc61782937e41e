"""``aq bench project``: projection throughput, and end-to-end lag from append to read model.

Throughput: N events of a few hundred characters (created, walking, talking) are written first;
then relays and W in-process workers run until every event is applied to every read model.
``events_per_s`` counts each event once (it is applied to all five projections).

End to end (``--rate R``): events are appended one at a time at R per second while the relay and
the workers run; the lag of an event is from its append being acknowledged to the commit of
the read-model batch that applied it.
"""

from __future__ import annotations

import asyncio
import shutil
import tempfile
import time
from array import array
from collections.abc import Iterator, Sequence
from typing import Any

import msgspec

from adventure_quest.app.aggregates import event_codec
from adventure_quest.app.world_loader import load_world
from adventure_quest.bench.harness import Progress, percentile
from adventure_quest.bootstrap.runtime import quieter_garbage_collection
from adventure_quest.domain.events import Event, PlayerCreated, PlayerMoved, PlayerSaid
from adventure_quest.messaging.urls import open_queue
from adventure_quest.processing.groups import GROUP
from adventure_quest.processing.projection_worker import ProjectionWorker
from adventure_quest.processing.relay import Relay
from adventure_quest.projections.catalog import projections
from adventure_quest.projections.runner import ProjectionRunner
from adventure_quest.projections.urls import open_read_database
from adventure_quest.store.envelope import ANY, NewEvent, RecordedEvent
from adventure_quest.store.ports import EventStore
from adventure_quest.store.urls import open_checkpoint_stores, open_event_store
from adventure_quest.store.uuid7 import uuid7

PLAYERS = 500
PARTITIONS = 16


def life(player: str, step: int) -> Event:
    """The ``step``-th event of a character: created, then walking and talking."""
    if step == 0:
        return PlayerCreated(player, f"Bench {player[:8]}", "village_square", 100, 100)
    if step % 3:
        there, back = ("market_street", "village_square")[:: 1 if step % 2 else -1]
        return PlayerMoved(back, there, ("north", "south")[step % 2])
    return PlayerSaid("village_square", f"step {step}")


def events_for(total: int) -> Iterator[tuple[str, NewEvent]]:
    """The events, made as they are written (a million of them never sit in memory at once)."""
    codec = event_codec()
    ids = [uuid7() for _ in range(PLAYERS)]
    for n in range(total):
        player, step = ids[n % PLAYERS], n // PLAYERS
        yield f"player-{player}", codec.encode(life(player, step))


class Rig(msgspec.Struct):
    """What a run measures: the store, the relays and workers, the runner they feed."""

    store: EventStore
    relays: list[Relay]
    pool: list[ProjectionWorker]
    runner: ProjectionRunner

    async def start(self, stop: asyncio.Event) -> list[asyncio.Task[None]]:
        tasks = [asyncio.create_task(r.run(stop)) for r in self.relays]
        return tasks + [asyncio.create_task(w.run(stop)) for w in self.pool]


async def run(  # noqa: PLR0917 - the command's options, passed through
    store_url: str,
    queue_url: str,
    read_url: str | None,
    events: int,
    workers: int,
    rate: float,
    quiet: bool,
) -> dict[str, Any]:
    folder = tempfile.mkdtemp(prefix="aq-bench-read-")
    store = open_event_store(store_url)
    checkpoints = open_checkpoint_stores(store_url)
    queue = open_queue(queue_url, partitions=PARTITIONS, groups=[GROUP])
    db = open_read_database(read_url or f"sqlite:///{folder}/read.sqlite")
    runner = ProjectionRunner(db, projections(load_world()), store, event_codec())
    try:
        await runner.setup()
        relays = [
            Relay(log, queue, cp, name=f"bench-{uuid7()}")
            for log, cp in zip(store.logs(), checkpoints, strict=True)
        ]
        for relay in relays:  # start at the current head: only this run's events count
            await relay.checkpoints.save(relay.name, await relay.source.head())
        share = [list(range(PARTITIONS))[w::workers] for w in range(workers)]
        pool = [ProjectionWorker(runner, queue, parts, group=GROUP) for parts in share]
        rig = Rig(store, relays, pool, runner)
        if rate > 0:
            return await _end_to_end(rig, events, rate, quiet)
        return await _throughput(rig, events, workers, quiet)
    finally:
        await db.close()
        await queue.close()
        for cp in checkpoints:
            await cp.close()
        await store.close()
        shutil.rmtree(folder, ignore_errors=True)


async def _throughput(rig: Rig, events: int, workers: int, quiet: bool) -> dict[str, Any]:
    store, runner = rig.store, rig.runner
    progress = Progress("writing events", events, quiet)
    batch: dict[str, list[NewEvent]] = {}
    for written, (stream, event) in enumerate(events_for(events), start=1):
        batch.setdefault(stream, []).append(event)
        if written % 5000 == 0 or written == events:
            for stream_id, chunk in batch.items():
                await store.append(stream_id, ANY, chunk)
            batch.clear()
            progress.update(written)
    progress.done()
    quieter_garbage_collection()  # as `aq process` and `aq worker` run, once started
    before = runner.totals.applied
    stop = asyncio.Event()
    started = time.perf_counter()
    tasks = await rig.start(stop)
    per_event = len(runner.projections)
    watch = Progress("projecting", events, quiet)
    while (runner.totals.applied - before) < events * per_event:
        await asyncio.sleep(0.05)
        watch.update((runner.totals.applied - before) // per_event)
    elapsed = time.perf_counter() - started
    watch.done()
    stop.set()
    await asyncio.gather(*tasks)
    return {
        "benchmark": "project",
        "mode": "throughput",
        "events": events,
        "workers": workers,
        "projections": per_event,
        "seconds": round(elapsed, 3),
        "events_per_s": round(events / elapsed),
        "events_per_s_per_worker": round(events / elapsed / workers),
    }


async def _end_to_end(rig: Rig, events: int, rate: float, quiet: bool) -> dict[str, Any]:
    store = rig.store
    acknowledged: dict[str, float] = {}
    seen: dict[str, float] = {}

    def visible(batch: Sequence[RecordedEvent], _changed: object) -> None:
        now = time.perf_counter()
        for event in batch:
            seen.setdefault(event.event_id, now)

    rig.runner.committed.append(visible)
    quieter_garbage_collection()  # as `aq process` and `aq worker` run, once started
    stop = asyncio.Event()
    tasks = await rig.start(stop)
    progress = Progress("appending at rate", events, quiet)
    started = time.perf_counter()
    for n, (stream, event) in enumerate(events_for(events)):
        due = started + n / rate
        delay = due - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        await store.append(stream, ANY, [event])
        acknowledged[event.event_id] = time.perf_counter()
        progress.update(n + 1)
    progress.done()
    deadline = time.perf_counter() + 30
    while len(seen.keys() & acknowledged.keys()) < len(acknowledged):
        if time.perf_counter() > deadline:
            break
        await asyncio.sleep(0.01)
    stop.set()
    await asyncio.gather(*tasks)
    # An event can be applied before its appender resumes to note the acknowledgement: lag 0.
    lags = array("d", (max(seen[i] - t, 0.0) for i, t in acknowledged.items() if i in seen))
    ordered = sorted(lags)
    return {
        "benchmark": "project",
        "mode": "end_to_end",
        "events": events,
        "rate_per_s": rate,
        "measured": len(ordered),
        "lost": len(acknowledged.keys() - seen.keys()),
        "lag_p50_ms": round(percentile(ordered, 0.50) * 1000, 2),
        "lag_p99_ms": round(percentile(ordered, 0.99) * 1000, 2),
    }
