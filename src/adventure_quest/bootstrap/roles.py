"""What each role runs, and so what it opens.

- ``api``: the HTTP API and the room feed. Opens the event and snapshot stores, the read
  database (no tables created), its replicas, the cache and the rate limits' buckets (in Redis
  when the cache is); the checkpoint stores and the queue only once lag status is asked for
  (``/admin/status``, ``/metrics``).
- ``relay``: one relay per shard. Opens the event store, the checkpoint stores and the queue.
- ``worker``: projection workers, process managers and the world clock. Opens the event and
  snapshot stores, the queue, the read database (creating its tables) and the cache (to drop
  the answers a commit changed).
- ``all`` (the embedded default): all of the above in one process.

``aq serve --role R`` runs role R; ``aq process`` is relay and worker, ``aq relay`` and
``aq worker`` one each. Parts are opened through ``Parts`` (bootstrap/parts.py), which records
them, so tests/bootstrap/test_what_each_role_opens.py checks each role against this table.
"""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, NamedTuple

from adventure_quest.bootstrap.parts import Parts
from adventure_quest.bootstrap.pipeline import Processing
from adventure_quest.processing.auto_assign import AutoWorker
from adventure_quest.processing.projection_worker import parse_partitions
from adventure_quest.store.errors import StoreUnavailableError
from adventure_quest.store.retry import Backoff, until_done

Job = Callable[[asyncio.Event], Awaitable[None]]

log = logging.getLogger(__name__)
ROLES = ("all", "api", "relay", "worker")


class Jobs(NamedTuple):
    """What a process runs: ``first`` stop first, then ``last`` (the queue's consumers)."""

    first: list[Job]
    last: list[Job]
    described: str


async def processing_jobs(
    parts: Parts, partitions: str, *, relays: bool, workers: bool, stop: asyncio.Event
) -> Jobs:
    """The jobs of relays and/or workers (``partitions``: 0-7, all or auto) and a description.

    Workers create the read-model tables first, waiting out a read database that does not
    answer yet (until ``stop``: then there are no jobs).
    """
    automatic = partitions == "auto"
    chosen = [] if automatic else parse_partitions(partitions, parts.settings.partitions)
    jobs: list[Job] = []
    consumers: list[Job] = []
    if relays:
        jobs += [relay.run for relay in parts.relays()]
    if workers:
        backoff = Backoff("read-model tables", logger=log)
        setup = functools.partial(parts.runner, create_tables=True)
        runner = await until_done(setup, backoff, stop, (StoreUnavailableError,))
        if runner is None:
            return Jobs([], [], "stopped before the read database answered")
        processing = Processing(parts, runner)
        if automatic:
            ttl_s = parts.settings.lease_ttl_s
            auto = AutoWorker(processing.queue, processing.partition_jobs, ttl_s=ttl_s)
            consumers.append(auto.run)
        else:
            consumers.append(processing.worker(chosen).run)
            consumers.append(processing.achievements(chosen).run)
            consumers.append(processing.handovers(chosen).run)
            consumers.append(processing.respawns(chosen).run)
        jobs.append(processing.clock().run)
    shown = "auto" if automatic else chosen if workers else []
    count = len(parts.relays()) if relays else 0
    return Jobs(jobs, consumers, f"{count} relay(s), partitions {shown}")


#: How long a job may take to finish its step once stop is set, before it is cancelled (seconds).
STOP_GRACE_S = 3.0


async def run_together(
    jobs: Sequence[Job],
    stop: asyncio.Event,
    grace_s: float = STOP_GRACE_S,
    *,
    last: Sequence[Job] = (),
) -> None:
    """Run every job until ``stop``; when one fails, stop the others, then raise its error.

    The ``last`` jobs (those that consume the queue: projection workers, process managers)
    stop after the others have: a relay's publish to the in-process queue waits until every
    consumer group has taken the events, so the consumers keep taking until the relays are done
    (before, ``aq serve`` in one process waited out the grace for its relays on every stop).

    Once its stop is set each job has ``grace_s`` to finish its step; one still running then is
    cancelled. Cancelling it is a crash of that step and no more: what it had not checkpointed
    is published again after a restart, and every consumer drops what it already has
    (invariant 4).
    """
    later = asyncio.Event() if last else stop
    first = [asyncio.ensure_future(job(stop)) for job in jobs]
    after = [asyncio.ensure_future(job(later)) for job in last]
    tasks = [*first, *after]
    stopping = asyncio.ensure_future(stop.wait())
    late: set[asyncio.Future[None]] = set()
    try:
        pending: set[asyncio.Future[Any]] = set(tasks)
        while pending and not stop.is_set():
            done, pending = await asyncio.wait(
                pending | {stopping}, return_when=asyncio.FIRST_COMPLETED
            )
            pending.discard(stopping)
            if any(not t.cancelled() and t.exception() for t in done if t is not stopping):
                break
        stop.set()
        late = await _finish(first, jobs, grace_s)
        later.set()
        late |= await _finish(after, last, grace_s)
        results = await asyncio.gather(*tasks, return_exceptions=True)
    finally:
        stopping.cancel()
        later.set()
    for task, result in zip(tasks, results, strict=True):
        if isinstance(result, BaseException) and task not in late:
            raise result


async def _finish(
    tasks: Sequence[asyncio.Future[None]], jobs: Sequence[Job], grace_s: float
) -> set[asyncio.Future[None]]:
    """Give stopped ``tasks`` ``grace_s`` to end; cancel (and name) the ones that did not."""
    if not tasks:
        return set()
    _, unfinished = await asyncio.wait(tasks, timeout=grace_s)
    for job, task in zip(jobs, tasks, strict=True):
        if task in unfinished:
            name = getattr(job, "__qualname__", repr(job))
            log.warning("%s did not stop within %.1f s: cancelled", name, grace_s)
            task.cancel()
    return unfinished
