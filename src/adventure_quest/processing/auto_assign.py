"""``aq worker --partitions auto``: run whatever partitions the leases give this process."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
from collections.abc import Callable, Coroutine, Sequence
from typing import Any

from adventure_quest.messaging.nats import NatsQueue
from adventure_quest.messaging.ports import MessageQueue, QueueUnavailableError
from adventure_quest.processing.groups import GROUP
from adventure_quest.processing.leases import PartitionLeases
from adventure_quest.store.retry import Backoff

log = logging.getLogger(__name__)

Job = Callable[[asyncio.Event], Coroutine[Any, Any, None]]


def worker_id() -> str:
    return f"{socket.gethostname()}-{os.getpid()}"


class AutoWorker:
    """Starts and stops each partition's jobs (``jobs_for(partition)``) as ownership changes."""

    def __init__(
        self,
        queue: MessageQueue,
        jobs_for: Callable[[int], Sequence[Job]],
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

    async def _start(self, partition: int) -> None:
        stop = asyncio.Event()
        tasks = [asyncio.create_task(job(stop)) for job in self.jobs_for(partition)]
        self.running[partition] = (stop, tasks)

    async def _stop(self, partition: int) -> None:
        stop, tasks = self.running.pop(partition)
        stop.set()
        await asyncio.gather(*tasks, return_exceptions=True)

    async def run(self, stop: asyncio.Event) -> None:
        """Rebalance every third of the lease time until ``stop``; then give everything back."""
        try:
            while not stop.is_set():
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
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(self.leases.ttl_s / 3):
                        await stop.wait()
        finally:
            for partition in list(self.running):
                await self._stop(partition)
            # Best effort: leases that are not given back expire after their time anyway.
            with contextlib.suppress(Exception):
                await self.leases.release()
