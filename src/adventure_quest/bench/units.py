"""``aq bench units``: events/s that H worker processes apply to one PostgreSQL read database.

Each process stands for a projection worker: its own handle, runner and caches, and the streams
of its partitions (the characters of ``aq bench project``, created, then walking between two
rooms and talking). Rooms and the minute's count are rows every process changes. The events
are made and stored in memory in each process first; once all are ready they apply them in
batches, and the run lasts from the first process starting to the last one finishing. A fresh
database is created on the server for the run and dropped after it.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import os
import time
from queue import Empty
from typing import Any

import asyncpg
import msgspec

from adventure_quest.app.aggregates import event_codec
from adventure_quest.app.world_loader import load_world
from adventure_quest.bench.project import PLAYERS, events_for
from adventure_quest.bootstrap.runtime import quieter_garbage_collection
from adventure_quest.projections.catalog import projections
from adventure_quest.projections.runner import ProjectionRunner
from adventure_quest.projections.urls import open_read_database
from adventure_quest.store.envelope import ANY, NewEvent, RecordedEvent
from adventure_quest.store.memory import MemoryEventStore


class Job(msgspec.Struct, frozen=True):
    """What one process applies: its share of the run's events."""

    url: str
    events: int
    handles: int
    me: int
    batch: int


async def _share(job: Job) -> tuple[MemoryEventStore, list[RecordedEvent]]:
    """This process's events (the characters numbered ``me`` modulo ``handles``), in memory."""
    store = MemoryEventStore()
    streams: dict[str, list[NewEvent]] = {}
    for n, (stream, event) in enumerate(events_for(job.events)):
        if n % PLAYERS % job.handles == job.me:
            streams.setdefault(stream, []).append(event)
    for stream, chunk in streams.items():
        await store.append(stream, ANY, chunk)
    return store, await store.read_all(0, job.events + 1)


async def _work(job: Job, ready: Any, go: Any) -> tuple[int, float, float]:
    store, log = await _share(job)
    db = open_read_database(job.url)
    runner = ProjectionRunner(db, projections(load_world()), store, event_codec())
    try:
        async with db.unit():
            pass  # connected before the clock starts
        quieter_garbage_collection()  # as `aq worker` runs, once started
        ready.put(True)
        await asyncio.to_thread(go.wait)
        started = time.time()
        for start in range(0, len(log), job.batch):
            await runner.apply(log[start : start + job.batch])
        return len(log), started, time.time()
    finally:
        await db.close()


def _process(job: Job, ready: Any, go: Any, done: Any) -> None:
    done.put(asyncio.run(_work(job, ready, go)))


async def _next(queue: Any, workers: list[Any]) -> Any:
    """The next thing a worker process puts on ``queue``; an error if one died instead."""
    while True:
        try:
            return await asyncio.to_thread(queue.get, True, 0.5)
        except Empty:
            dead = [w.exitcode for w in workers if w.exitcode not in (None, 0)]
            if dead:
                raise RuntimeError(f"a worker process failed (exit codes {dead})") from None


async def _fresh_database(server: str, name: str, *, drop: bool) -> str:
    admin = await asyncpg.connect(f"{server}/postgres", timeout=10)
    try:
        await admin.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        if not drop:
            await admin.execute(f"CREATE DATABASE {name}")
    finally:
        await admin.close()
    return f"{server}/{name}"


async def run(server: str, handles: int, events: int, batch: int) -> dict[str, Any]:
    """``server``: ``postgresql://USER@HOST:PORT`` (a database is made on it for the run)."""
    name = f"aq_bench_units_{os.getpid()}"
    url = await _fresh_database(server, name, drop=False)
    context = multiprocessing.get_context("spawn")
    ready, go, done = context.Queue(), context.Event(), context.Queue()
    workers = []
    try:
        db = open_read_database(url)
        try:
            await ProjectionRunner(
                db, projections(load_world()), MemoryEventStore(), event_codec()
            ).setup()
        finally:
            await db.close()
        workers = [
            context.Process(
                target=_process, args=(Job(url, events, handles, me, batch), ready, go, done)
            )
            for me in range(handles)
        ]
        for worker in workers:
            worker.start()
        for _ in workers:
            await _next(ready, workers)
        go.set()
        results = [await _next(done, workers) for _ in workers]
        applied = sum(result[0] for result in results)
        elapsed = max(result[2] for result in results) - min(result[1] for result in results)
        return {
            "benchmark": "units",
            "handles": handles,
            "events": applied,
            "batch": batch,
            "seconds": round(elapsed, 3),
            "events_per_s": round(applied / elapsed),
        }
    finally:
        for worker in (w for w in workers if w.pid is not None):
            worker.join(60)
            if worker.is_alive():
                worker.kill()
                worker.join(5)
        await _fresh_database(server, name, drop=True)
