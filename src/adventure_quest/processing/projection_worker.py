"""The projection worker: consumes partitions of the queue and feeds the projection runner.

Each partition has a feeder (fetch, hand over, wait until applied, acknowledge); one applier
takes every batch handed over meanwhile and applies them in one read-database transaction
(projections/runner.py). A broker or store that is down costs time, never an event.

A worker given leased partitions (``tokens``, from processing/leases.py) applies them under
their fencing tokens (projections/fencing.py). It raises each partition's fence in the read
database before consuming it, so a previous owner that is still running is refused from then
on; and once refused itself, it drops that partition: its feeder stops without acknowledging,
and ``run`` ends with ``Fenced`` once its other partitions stop.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Mapping, Sequence

from adventure_quest import tracing
from adventure_quest.messaging.ports import Consumer, MessageQueue, QueueUnavailableError
from adventure_quest.projections.fencing import Fence, Fenced
from adventure_quest.projections.runner import ProjectionRunner
from adventure_quest.store.envelope import RecordedEvent
from adventure_quest.store.errors import StoreUnavailableError
from adventure_quest.store.retry import Backoff

log = logging.getLogger(__name__)

#: A partition's batch handed to the applier, and what it sets once the batch is applied.
Handed = asyncio.Queue[tuple[int, list[RecordedEvent], asyncio.Future[None]]]


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
        tokens: Mapping[int, int] | None = None,
        leased: Callable[[], bool] | None = None,
    ) -> None:
        self.runner = runner
        self.queue = queue
        self.partitions = list(partitions)
        self.group = group
        self.batch = batch
        self.fetch_timeout_s = fetch_timeout_s
        #: Partition -> fencing token, for leased partitions (fixed ones have none).
        self.tokens = dict(tokens or {})
        #: Whether the leases may still be held (None: not leased): a worker that cannot tell
        #: (frozen, or the lease rounds fail) fetches nothing, so it takes no events from the
        #: partitions' next owners.
        self.leased = leased
        #: Partitions refused by a newer owner's fence, and the refusal.
        self.fenced: dict[int, Fenced] = {}
        #: One for all its partitions: an outage of the queue is said once, not per partition.
        self.backoff = Backoff(f"projection worker ({group})", logger=log)

    async def run(self, stop: asyncio.Event) -> None:
        """Consume every owned partition until ``stop`` is set (``Fenced`` if one was lost).

        Each partition has a feeder (fetch, hand over, wait until applied, acknowledge); one
        applier takes every batch handed over meanwhile, from any partition, and applies them
        in one read-database transaction. Partitions stay in order (a feeder fetches again only
        after its batch is acknowledged), and a busy worker commits once for many partitions.
        """
        handed: Handed = asyncio.Queue()
        applier = asyncio.create_task(self._apply_loop(handed))
        try:
            if self.tokens and not await self._raise_fences(stop):
                return
            consumers = [self.queue.consumer(self.group, p) for p in self.partitions]
            await asyncio.gather(*(self._feed(consumer, handed, stop) for consumer in consumers))
        finally:
            applier.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await applier
        if self.fenced:
            raise next(iter(self.fenced.values()))

    def _fences(self, partitions: Sequence[int]) -> list[Fence]:
        """The fences of ``partitions`` still held (fixed partitions have none)."""
        tokens, lost = self.tokens, self.fenced
        return [
            Fence(self.group, p, tokens[p])
            for p in dict.fromkeys(partitions)
            if p in tokens and p not in lost
        ]

    async def _raise_fences(self, stop: asyncio.Event) -> bool:
        """Record this worker's tokens before it consumes (False: stopped before it could).

        A partition a newer owner holds already is dropped, and the others' fences raised again.
        """
        while not stop.is_set():
            fences = self._fences(self.partitions)
            if not fences:
                return True
            try:
                await self.runner.apply([], fences)
            except Fenced as fenced:
                self._lost(fenced)
                continue
            except StoreUnavailableError as error:
                await self.backoff.wait(error, stop)
                continue
            return True
        return False

    def _lost(self, fenced: Fenced) -> None:
        for partition in fenced.partitions(self.group) & set(self.tokens) - set(self.fenced):
            self.fenced[partition] = fenced
            log.warning("%s: dropping partition %d (%s)", self.group, partition, fenced)

    async def _feed(self, consumer: Consumer, handed: Handed, stop: asyncio.Event) -> None:
        backoff = self.backoff
        while not stop.is_set() and consumer.partition not in self.fenced:
            if self.leased is not None and not self.leased():
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(min(self.fetch_timeout_s, 0.1)):
                        await stop.wait()
                continue
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

    async def _deliver(
        self, consumer: Consumer, events: list[RecordedEvent], handed: Handed
    ) -> None:
        """Hand the batch to the applier, wait until it is applied, then acknowledge it.

        A unit refused for another partition's fence applied nothing: the batch goes again. One
        refused for this partition's leaves the batch unacknowledged, for the next owner.
        """
        partition = consumer.partition
        while True:
            applied: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            await handed.put((partition, events, applied))
            try:
                await applied
            except Fenced as fenced:
                self._lost(fenced)
                if partition in self.fenced:
                    return
                continue
            await consumer.ack()
            return

    async def _apply_loop(self, handed: Handed) -> None:
        while True:
            taken = [await handed.get()]
            while not handed.empty() and sum(len(e) for _, e, _ in taken) < self.batch * 4:
                taken.append(handed.get_nowait())
            fences = self._fences([partition for partition, _, _ in taken])
            try:
                events = [event for _, events, _ in taken for event in events]
                await self.runner.apply(events, fences)
            except Exception as error:
                for _, _, applied in taken:
                    if not applied.done():
                        applied.set_exception(error)
                continue
            for _, _, applied in taken:
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
