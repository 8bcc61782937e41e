"""``aq worker --partitions auto``: run whatever partitions the leases give this process.

A partition whose projection worker is refused by a newer owner's fence (processing/
projection_worker.py) is dropped at once, all its jobs stopped, and forgotten by the leases: it
runs here again only once a lease round claims it again, under a new token.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import os
import socket
from collections.abc import Callable, Coroutine, Sequence
from typing import Any

from adventure_quest.messaging.nats import NatsQueue
from adventure_quest.messaging.ports import MessageQueue, QueueUnavailableError
from adventure_quest.processing.groups import GROUP
from adventure_quest.processing.leases import Lease, PartitionLeases
from adventure_quest.projections.fencing import Fenced
from adventure_quest.store.retry import Backoff

log = logging.getLogger(__name__)

Job = Callable[[asyncio.Event], Coroutine[Any, Any, None]]


def worker_id() -> str:
    return f"{socket.gethostname()}-{os.getpid()}"


class AutoWorker:
    """Starts and stops each partition's jobs (``jobs_for(lease)``) as ownership changes."""

    def __init__(
        self,
        queue: MessageQueue,
        jobs_for: Callable[[Lease], Sequence[Job]],
        *,
        ttl_s: float = 10.0,
        name: str = "",
    ) -> None:
        if not isinstance(queue, NatsQueue):
            raise ValueError("automatic partitions need a shared queue: --queue nats://HOST:PORT")
        self.jobs_for = jobs_for
        self.leases = PartitionLeases(queue, GROUP, name or worker_id(), ttl_s=ttl_s)
        self.running: dict[int, tuple[asyncio.Event, list[asyncio.Task[None]]]] = {}
        self.backoff = Backoff("partition leases (keeping the current partitions)", logger=log)
        #: Partitions whose jobs were fenced off since the last round; set wakes the loop.
        self.fenced: set[int] = set()
        self._wake = asyncio.Event()
        #: How many times a partition was dropped because a newer owner's fence refused it.
        self.dropped = 0

    async def _start(self, partition: int) -> None:
        stop = asyncio.Event()
        tasks = [
            asyncio.create_task(job(stop)) for job in self.jobs_for(self.leases.lease(partition))
        ]
        for task in tasks:
            task.add_done_callback(functools.partial(self._ended, partition))
        self.running[partition] = (stop, tasks)

    def _ended(self, partition: int, task: asyncio.Task[None]) -> None:
        running = self.running.get(partition)
        if running is None or task not in running[1]:
            return  # stopped already: the lease round let the partition go
        if not task.cancelled() and isinstance(task.exception(), Fenced):
            self.fenced.add(partition)
            self._wake.set()

    async def _drop_fenced(self) -> None:
        """Stop the jobs of the partitions fenced off and let go of their leases."""
        fenced, self.fenced = self.fenced, set()
        self._wake.clear()
        for partition in sorted(fenced):
            self.leases.forget(partition)
            if partition in self.running:
                await self._stop(partition)
                self.dropped += 1

    async def _stop(self, partition: int) -> None:
        stop, tasks = self.running.pop(partition)
        stop.set()
        await asyncio.gather(*tasks, return_exceptions=True)

    async def run(self, stop: asyncio.Event) -> None:
        """Rebalance every third of the lease time until ``stop``; then give everything back."""
        try:
            while not stop.is_set():
                await self._drop_fenced()
                try:
                    owned = await self.leases.refresh()
                    self.backoff.succeeded()
                except QueueUnavailableError as error:
                    # Leases are renewed on their own schedule; the back-off only says so.
                    self.backoff.failed(error)
                    owned = set(self.running)
                for partition in sorted(set(self.running) - owned):
                    await self._stop(partition)
                for partition in sorted(owned - set(self.running)):
                    await self._start(partition)
                await self._pause(stop)
        finally:
            for partition in list(self.running):
                await self._stop(partition)
            # Best effort: leases that are not given back expire after their time anyway.
            with contextlib.suppress(Exception):
                await self.leases.release()

    async def _pause(self, stop: asyncio.Event) -> None:
        """A third of the lease time, or less if ``stop`` is set or a partition is fenced."""
        waits = [asyncio.ensure_future(stop.wait()), asyncio.ensure_future(self._wake.wait())]
        try:
            await asyncio.wait(waits, timeout=self.leases.ttl_s / 3, return_when="FIRST_COMPLETED")
        finally:
            for waiting in waits:
                waiting.cancel()
