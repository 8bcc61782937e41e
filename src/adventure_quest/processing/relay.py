"""The relay: carries one shard's global log to the message queue.

It tails the log from its checkpoint, publishes in batches (the queue waits for every
acknowledgement of a batch together), and saves the checkpoint only past published events. A
restart resumes from the checkpoint: events published but not yet checkpointed are published
again, and the queue (deduplicating by event id) and the consumers (idempotent) absorb them. A
broker or store that is down means back-off and retry, never a skipped event.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Final

from adventure_quest import tracing
from adventure_quest.messaging.ports import MessageQueue, QueueUnavailableError
from adventure_quest.store.errors import StoreUnavailableError
from adventure_quest.store.ports import CheckpointStore, GlobalLog
from adventure_quest.store.retry import Backoff, until_done

log = logging.getLogger(__name__)

BATCH: Final = 2000
#: What the relay waits out: the broker or the store is down.
TRANSIENT = (QueueUnavailableError, StoreUnavailableError)


def relay_name(shard: int) -> str:
    """The checkpoint name of the relay of shard ``shard``'s log."""
    return f"relay-shard-{shard}"


class Relay:
    """Publishes ``source`` to ``queue``; ``name`` keys its checkpoint."""

    def __init__(
        self,
        source: GlobalLog,
        queue: MessageQueue,
        checkpoints: CheckpointStore,
        *,
        name: str = "",
        batch: int = BATCH,
        idle_wait_s: float = 1.0,
    ) -> None:
        self.source = source
        self.queue = queue
        self.checkpoints = checkpoints
        self.name = name or relay_name(source.shard)
        self.batch = batch
        self.idle_wait_s = idle_wait_s
        self.position = 0
        self.published = 0
        self.backoff = Backoff(self.name, logger=log)
        self.last_progress = time.monotonic()

    async def start(self) -> None:
        """Resume from the saved checkpoint."""
        self.position = await self.checkpoints.load(self.name)

    async def step(self) -> int:
        """Publish the next batch after the checkpoint; the number of events published."""
        events = await self.source.read_all(self.position, self.batch)
        if not events:
            return 0
        publish = self.queue.publish(events)
        await (publish if tracing.TRACER is None else tracing.relaying(publish, events, self.name))
        self.position = events[-1].position
        await self.checkpoints.save(self.name, self.position)
        self.published += len(events)
        self.last_progress = time.monotonic()
        return len(events)

    @property
    def failures(self) -> int:
        """Failed attempts (the store or the broker was down) since the relay started."""
        return self.backoff.failures

    async def run(self, stop: asyncio.Event) -> None:
        """Relay until ``stop`` is set, backing off while the broker or the store is down (at
        start too: the checkpoint is read from the store)."""
        await until_done(self.start, self.backoff, stop, TRANSIENT)
        while not stop.is_set():
            try:
                if not await self.step():
                    await self.source.wait_for(self.position, self.idle_wait_s)
                self.backoff.succeeded()
            except TRANSIENT as error:
                await self.backoff.wait(error, stop)

    async def lag(self) -> int:
        """Events in the log not yet published."""
        return max(await self.source.head() - self.position, 0)
