"""What each role runs, and so what it opens.

- ``api``: the HTTP API and the room feed. Opens the event and snapshot stores, the read
  database (no tables created), its replicas and the cache; the checkpoint stores and the
  queue only once lag status is asked for (``/admin/status``, ``/metrics``).
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
from collections.abc import Awaitable, Callable

from adventure_quest.bootstrap.parts import Parts
from adventure_quest.bootstrap.pipeline import Processing
from adventure_quest.processing.auto_assign import AutoWorker
from adventure_quest.processing.projection_worker import parse_partitions

Job = Callable[[asyncio.Event], Awaitable[None]]
ROLES = ("all", "api", "relay", "worker")


async def processing_jobs(
    parts: Parts, partitions: str, *, relays: bool, workers: bool
) -> tuple[list[Job], str]:
    """The jobs of relays and/or workers (``partitions``: 0-7, all or auto) and a description."""
    automatic = partitions == "auto"
    chosen = [] if automatic else parse_partitions(partitions, parts.settings.partitions)
    jobs: list[Job] = []
    if relays:
        jobs += [relay.run for relay in parts.relays()]
    if workers:
        processing = Processing(parts, await parts.runner(create_tables=True))
        if automatic:
            jobs.append(AutoWorker(processing.queue, processing.partition_jobs).run)
        else:
            jobs.append(processing.worker(chosen).run)
            jobs.append(processing.achievements(chosen).run)
            jobs.append(processing.handovers(chosen).run)
            jobs.append(processing.respawns(chosen).run)
        jobs.append(processing.clock().run)
    shown = "auto" if automatic else chosen if workers else []
    return jobs, f"{len(parts.relays()) if relays else 0} relay(s), partitions {shown}"
