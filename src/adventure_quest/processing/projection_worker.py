"""The projection worker: consumes partitions of the queue and feeds the projection runner.

Each partition has a feeder (fetch, hand over, wait until applied, acknowledge); one applier
takes every batch handed over meanwhile and applies them in one read-database transaction
(projections/runner.py). A broker or store that is down costs time, never an event.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Sequence

from adventure_quest import tracing
from adventure_quest.messaging.ports import Consumer, MessageQueue, QueueUnavailableError
from adventure_quest.projections.runner import ProjectionRunner
from adventure_quest.store.envelope import RecordedEvent
from adventure_quest.store.errors import StoreUnavailableError
from adventure_quest.store.retry import Backoff

log = logging.getLogger(__name__)


class ProjectionWorker:
    """Consumes a set of partitions for one consumer group and feeds the runner."""

    def __init__(
        self,
        runner: ProjectionRunner,
        queue: MessageQueue,
        partitions: Sequence[int],
        *,
        group: str = "projections",
        batch: int = 500,
        fetch_timeout_s: float = 0.5,
    ) -> None:
        self.runner = runner
        self.queue = queue
        self.partitions = list(partitions)
        self.group = group
        self.batch = batch
        self.fetch_timeout_s = fetch_timeout_s
        #: One for all its partitions: an outage of the queue is said once, not per partition.
        self.backoff = Backoff(f"projection worker ({group})", logger=log)

    async def run(self, stop: asyncio.Event) -> None:
        """Consume every owned partition until ``stop`` is set.

        Each partition has a feeder (fetch, hand over, wait until applied, acknowledge); one
        applier takes every batch handed over meanwhile, from any partition, and applies them
        in one read-database transaction. Partitions stay in order (a feeder fetches again only
        after its batch is acknowledged), and a busy worker commits once for many partitions.
        """
        handed: asyncio.Queue[tuple[list[RecordedEvent], asyncio.Future[None]]] = asyncio.Queue()
        consumers = [self.queue.consumer(self.group, p) for p in self.partitions]
        applier = asyncio.create_task(self._apply_loop(handed))
        try:
            await asyncio.gather(*(self._feed(consumer, handed, stop) for consumer in consumers))
        finally:
            applier.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await applier

    async def _feed(
        self,
        consumer: Consumer,
        handed: asyncio.Queue[tuple[list[RecordedEvent], asyncio.Future[None]]],
        stop: asyncio.Event,
    ) -> None:
        backoff = self.backoff
        while not stop.is_set():
            try:
                events = await consumer.fetch(self.batch, self.fetch_timeout_s)
                if events:
                    delivery = self._deliver(consumer, events, handed)
                    if tracing.TRACER is not None:
                        delivery = tracing.delivering(delivery, events, self.group)
                    await delivery
                backoff.succeeded()
            except (QueueUnavailableError, StoreUnavailableError) as error:
                # Unacknowledged events come back, and events skipped by a later fetch are
                # re-read from the store as a gap: an outage costs time, never an event.
                await backoff.wait(error, stop)

    @staticmethod
    async def _deliver(
        consumer: Consumer,
        events: list[RecordedEvent],
        handed: asyncio.Queue[tuple[list[RecordedEvent], asyncio.Future[None]]],
    ) -> None:
        """Hand the batch to the applier, wait until it is applied, then acknowledge it."""
        applied: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        await handed.put((events, applied))
        await applied
        await consumer.ack()

    async def _apply_loop(
        self, handed: asyncio.Queue[tuple[list[RecordedEvent], asyncio.Future[None]]]
    ) -> None:
        while True:
            taken = [await handed.get()]
            while not handed.empty() and sum(len(e) for e, _ in taken) < self.batch * 4:
                taken.append(handed.get_nowait())
            try:
                await self.runner.apply([event for events, _ in taken for event in events])
            except Exception as error:
                for _, applied in taken:
                    if not applied.done():
                        applied.set_exception(error)
                continue
            for _, applied in taken:
                if not applied.done():
                    applied.set_result(None)


class PartitionsError(ValueError):
    """A ``--partitions`` value that names no partitions of this queue."""

    code = "invalid_partitions"


def parse_partitions(spec: str, partitions: int) -> list[int]:
    """``"0-7"``, ``"1,3,5"`` or ``"all"`` as partition numbers, checked against the count."""
    if spec == "all":
        return list(range(partitions))
    usage = "use a range (0-7), a list (1,3,5), all, or auto"
    if not spec.strip():
        raise PartitionsError(f"--partitions is empty: {usage}")
    chosen: list[int] = []
    for part in spec.split(","):
        low, _, high = part.strip().partition("-")
        try:
            first, last = int(low), int(high or low)
        except ValueError:
            raise PartitionsError(f"cannot read partitions {spec!r}: {usage}") from None
        if first > last:
            raise PartitionsError(f"partitions {part!r}: a range goes up ({last}-{first})")
        if not 0 <= first <= last < partitions:
            raise PartitionsError(
                f"partitions {part!r} outside 0-{partitions - 1}: the queue has {partitions}"
                " partitions (AQ_PARTITIONS), numbered from 0"
            )
        chosen += range(first, last + 1)
    return sorted(set(chosen))
