"""What each kind of process runs: relays, projection workers and process managers, the API.

``aq process`` runs relays and workers; ``aq serve`` adds the HTTP API (and runs everything in
one process by default); ``--role`` picks one part, so each part scales as its own process.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from adventure_quest.auto_assign import AutoWorker
from adventure_quest.processing import Processing
from adventure_quest.projections.runner import parse_partitions

Job = Callable[[asyncio.Event], Awaitable[None]]
ROLES = ("all", "api", "relay", "worker")


def processing_jobs(
    processing: Processing, partitions: str, *, relays: bool, workers: bool
) -> tuple[list[Job], str]:
    """The jobs of relays and/or workers (``partitions``: 0-7, all or auto) and a description."""
    automatic = partitions == "auto"
    chosen = [] if automatic else parse_partitions(partitions, processing.settings.partitions)
    jobs: list[Job] = []
    if relays:
        jobs += [relay.run for relay in processing.relays]
    if workers and automatic:
        jobs.append(AutoWorker(processing).run)
    elif workers:
        jobs.append(processing.worker(chosen).run)
        jobs.append(processing.achievements(chosen).run)
        jobs.append(processing.handovers(chosen).run)
        jobs.append(processing.respawns(chosen).run)
    if workers:
        jobs.append(processing.clock().run)
    shown = "auto" if automatic else chosen if workers else []
    return jobs, f"{len(processing.relays) if relays else 0} relay(s), partitions {shown}"
