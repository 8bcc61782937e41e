"""A consumer group's reader of one partition of the NATS JetStream queue.

``NatsConsumer`` is the durable pull consumer ``{group}-p{partition}`` of one (group, partition)
of the stream that ``NatsQueue`` (nats.py, whose docstring states what JetStream guarantees)
publishes to. Its ack policy is ALL: acknowledging a message acknowledges every earlier message
of the consumer, so ``ack()`` sends one ack for a whole batch. Unacked messages come back only
after ``ACK_WAIT``, and a consumer that meanwhile fetches and acks later messages silently
acknowledges the earlier ones too. So a consumer that finds deliveries from a previous owner
still awaiting acknowledgement (that owner crashed) recreates the durable at its ack floor, and
the unacked messages are delivered again at once and in order. That is why one (group,
partition) must have one live consumer at a time.
"""

from __future__ import annotations

import contextlib
from typing import TYPE_CHECKING, cast

import msgspec
import nats.errors
import nats.js.errors
from nats.aio.msg import Msg
from nats.js import JetStreamContext, api

from adventure_quest.store.envelope import RecordedEvent
from adventure_quest.store.errors import StoreError

if TYPE_CHECKING:
    from adventure_quest.messaging.nats import NatsQueue

#: A fetched message not acknowledged within this time is delivered again (seconds).
ACK_WAIT = 30.0
#: How many delivered but unacknowledged messages a consumer may have (bounds one fetch).
MAX_ACK_PENDING = 10_000
#: After the first message of a fetch, how long to wait for more before returning the batch.
MORE_WITHIN_S = 0.002

_decoder = msgspec.msgpack.Decoder(RecordedEvent)
#: The failures of talking to the server, which the queue and its consumers report as
#: QueueUnavailableError.
_TRANSPORT_ERRORS = (nats.errors.Error, TimeoutError, OSError)


class NatsStreamMismatchError(StoreError):
    """The stream or consumer exists with a shape this queue was not configured for."""

    code = "queue_stream_mismatch"


class NatsConsumer:
    """One consumer group's durable pull consumer (ack policy ALL) on one partition."""

    def __init__(self, queue: NatsQueue, group: str, partition: int) -> None:
        self.partition = partition
        self.name = f"{group}-p{partition}"
        self._queue = queue
        self._subject = queue.subject(partition)
        self._js: JetStreamContext | None = None
        self._sub: JetStreamContext.PullSubscription | None = None
        self._last: Msg | None = None  # the last message fetched and not yet acknowledged
        #: Messages delivered to this consumer beyond what a fetch asked for: nats.py's fetch
        #: hands over its whole pending queue (deliveries for an earlier pull that had timed
        #: out on the client), so they wait here, in order, for the next fetch.
        self._surplus: list[Msg] = []

    async def fetch(self, max_events: int, timeout: float) -> list[RecordedEvent]:
        if max_events < 1:
            return []
        sub = await self._subscription()
        if self._surplus:
            messages, self._surplus = self._surplus[:max_events], self._surplus[max_events:]
            self._last = messages[-1]
            return [_decoder.decode(message.data) for message in messages]
        try:
            # A pull for N messages waits until N arrived or the time is up, which at low traffic
            # turns every batch into a full timeout of latency. So: wait for the first message,
            # then take whatever else is already there.
            messages = await sub.fetch(1, timeout=max(timeout, 0.01))
            if max_events > 1:
                with contextlib.suppress(TimeoutError):
                    messages += await sub.fetch(max_events - 1, timeout=MORE_WITHIN_S)
        except TimeoutError:
            return []  # nats.errors.TimeoutError is one, and also means "nothing arrived"
        except _TRANSPORT_ERRORS as error:
            raise self._queue.unavailable(f"fetching from {self.name} failed", error) from error
        if not messages:  # a fetch can end with status messages only
            return []
        if len(messages) > max_events:  # rare: no copies on the usual path
            messages, self._surplus = messages[:max_events], messages[max_events:]
        self._last = messages[-1]
        return [_decoder.decode(message.data) for message in messages]

    async def ack(self) -> None:
        last = self._last
        if last is None:
            return
        try:
            await last.ack_sync(timeout=self._queue.timeout)  # confirmed, so pending() agrees
        except _TRANSPORT_ERRORS as error:
            raise self._queue.unavailable(f"acknowledging on {self.name} failed", error) from error
        self._last = None

    async def pending(self) -> int:
        # Only reads (or creates) the durable: a monitor asking for lag must not take it over.
        js = await self._queue.jetstream()
        try:
            info = await self._info(js) or await js.add_consumer(
                self._queue.stream, self._config(after=0)
            )
        except _TRANSPORT_ERRORS as error:
            raise self._queue.unavailable(f"reading {self.name} failed", error) from error
        return (info.num_pending or 0) + (info.num_ack_pending or 0)

    async def oldest_pending(self) -> RecordedEvent | None:
        # The first message of this partition's subject after the durable's ack floor.
        js = await self._queue.jetstream()
        try:
            info = await self._info(js)
            floor = info.ack_floor.stream_seq if info and info.ack_floor else 0
            message = await js.get_msg(
                self._queue.stream, seq=(floor or 0) + 1, subject=self._subject, next=True
            )
        except nats.js.errors.NotFoundError:
            return None
        except _TRANSPORT_ERRORS as error:
            raise self._queue.unavailable(f"reading {self.name} failed", error) from error
        return _decoder.decode(message.data) if message.data else None

    async def _subscription(self) -> JetStreamContext.PullSubscription:
        js = await self._queue.jetstream()
        if self._sub is None or self._js is not js:
            try:
                await self._take_over(js)
                self._sub = await js.pull_subscribe_bind(
                    durable=self.name, stream=self._queue.stream
                )
            except _TRANSPORT_ERRORS as error:
                raise self._queue.unavailable(f"binding {self.name} failed", error) from error
            # Deliveries to an earlier binding come again from the durable's ack floor.
            self._js, self._last, self._surplus = js, None, []
        return self._sub

    async def _take_over(self, js: JetStreamContext) -> None:
        """Create the durable, or restart it at its ack floor if an owner crashed mid-batch."""
        stream = self._queue.stream
        info = await self._info(js)
        if info is None:
            await js.add_consumer(stream, self._config(after=0))
        elif info.num_ack_pending:
            floor = info.ack_floor.stream_seq if info.ack_floor is not None else 0
            await js.delete_consumer(stream, self.name)
            await js.add_consumer(stream, self._config(after=floor))

    async def _info(self, js: JetStreamContext) -> api.ConsumerInfo | None:
        """The durable's state, None if it does not exist yet."""
        stream = self._queue.stream
        try:
            info = cast(api.ConsumerInfo, await js.consumer_info(stream, self.name))
        except nats.js.errors.NotFoundError:
            return None
        if (
            info.config.filter_subject != self._subject
            or info.config.ack_policy != api.AckPolicy.ALL
        ):
            raise NatsStreamMismatchError(
                f"consumer {self.name!r} of stream {stream!r} reads "
                f"{info.config.filter_subject!r} with ack policy {info.config.ack_policy}, "
                f"not {self._subject!r} with ack policy all"
            )
        return info

    def _config(self, *, after: int) -> api.ConsumerConfig:
        return api.ConsumerConfig(
            name=self.name,
            durable_name=self.name,
            filter_subject=self._subject,
            ack_policy=api.AckPolicy.ALL,
            deliver_policy=api.DeliverPolicy.BY_START_SEQUENCE if after else api.DeliverPolicy.ALL,
            opt_start_seq=after + 1 if after else None,
            ack_wait=ACK_WAIT,
            max_ack_pending=MAX_ACK_PENDING,
        )
