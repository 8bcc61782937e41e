"""``aq worker --partitions auto``: run whatever partitions the leases give this process."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
from collections.abc import Callable, Coroutine
from typing import Any

from adventure_quest.messaging.leases import PartitionLeases
from adventure_quest.messaging.nats import NatsQueue
from adventure_quest.messaging.ports import QueueUnavailableError
from adventure_quest.processing import GROUP, Processing

log = logging.getLogger(__name__)

Job = Callable[[asyncio.Event], Coroutine[Any, Any, None]]


def worker_id() -> str:
    return f"{socket.gethostname()}-{os.getpid()}"


class AutoWorker:
    """Starts and stops each partition's worker and managers as ownership changes."""

    def __init__(self, processing: Processing, *, ttl_s: float = 10.0, name: str = "") -> None:
        if not isinstance(processing.queue, NatsQueue):
            raise ValueError("automatic partitions need a shared queue: --queue nats://HOST:PORT")
        self.processing = processing
        self.leases = PartitionLeases(processing.queue, GROUP, name or worker_id(), ttl_s=ttl_s)
        self.running: dict[int, tuple[asyncio.Event, list[asyncio.Task[None]]]] = {}

    def _jobs(self, partition: int) -> list[Job]:
        p = self.processing
        return [
            p.worker([partition]).run,
            p.achievements([partition]).run,
            p.handovers([partition]).run,
            p.respawns([partition]).run,
        ]

    async def _start(self, partition: int) -> None:
        stop = asyncio.Event()
        tasks = [asyncio.create_task(job(stop)) for job in self._jobs(partition)]
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
                except QueueUnavailableError as error:
                    log.warning("%s; keeping the current partitions for now", error)
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
