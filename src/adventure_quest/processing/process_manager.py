"""Process managers: consume events from the queue and answer some of them with commands.

Delivery is at least once. A manager's commands must therefore be idempotent in their effect:
each decides on the current state of the stream it writes to (and the hand-over ids or
achievements that state remembers), so handling an event again appends nothing.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence

from adventure_quest.app.game import Game
from adventure_quest.app.repository import ConflictError
from adventure_quest.domain.events import Event
from adventure_quest.messaging.ports import Consumer, MessageQueue, QueueUnavailableError
from adventure_quest.store.envelope import RecordedEvent
from adventure_quest.store.errors import StoreUnavailableError
from adventure_quest.store.retry import Backoff, until_done

log = logging.getLogger(__name__)

#: Failures worth waiting out: the store or broker is down, or writers kept colliding.
TRANSIENT = (ConflictError, StoreUnavailableError, QueueUnavailableError)


class ProcessManager:
    """Consumes ``partitions`` as consumer group ``group``; subclasses say how to ``handle``."""

    #: The consumer group when none is given.
    default_group = "process-manager"

    def __init__(
        self,
        game: Game,
        queue: MessageQueue,
        partitions: Sequence[int],
        group: str | None = None,
        *,
        batch: int = 500,
        fetch_timeout_s: float = 0.5,
    ) -> None:
        self.game = game
        self.queue = queue
        self.partitions = list(partitions)
        self.group = group or self.default_group
        self.batch = batch
        self.fetch_timeout_s = fetch_timeout_s
        self.checked = 0
        self.backoff = Backoff(self.group, logger=log)

    async def run(self, stop: asyncio.Event) -> None:
        """Consume every owned partition until ``stop`` is set."""
        consumers = [self.queue.consumer(self.group, p) for p in self.partitions]
        await asyncio.gather(*(self._consume(consumer, stop) for consumer in consumers))

    async def handle(self, recorded: RecordedEvent) -> list[Event]:
        """React to one event; return what was appended (nothing, when already done)."""
        raise NotImplementedError

    @property
    def failures(self) -> int:
        """Failed attempts (fetches, acks, commands) since the manager started."""
        return self.backoff.failures

    async def _consume(self, consumer: Consumer, stop: asyncio.Event) -> None:
        while not stop.is_set():
            try:
                events = await consumer.fetch(self.batch, self.fetch_timeout_s)
                for recorded in events:
                    await self._handle_until_done(recorded, stop)
                if events and not stop.is_set():
                    await consumer.ack()
                self.backoff.succeeded()
            except QueueUnavailableError as error:
                await self.backoff.wait(error, stop)

    async def _handle_until_done(self, recorded: RecordedEvent, stop: asyncio.Event) -> None:
        """Handle one event, waiting out transient failures; give up only when stopping.

        Stopping leaves the batch unacknowledged, so it is delivered again after a restart.
        """
        await until_done(lambda: self.handle(recorded), self.backoff, stop, TRANSIENT)
