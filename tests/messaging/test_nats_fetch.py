"""A NATS consumer's fetch returns at most what it was asked for, whatever nats.py had waiting.

Seen in CI: a consumer asked for the rest of five events got six. nats.py's fetch first hands
over everything in its subscription's pending queue: messages the server delivered for an
earlier pull that had already timed out on the client. The queue contract says a fetch brings at
most ``max_events``; the surplus is kept, in order, for the next fetch.
"""

from __future__ import annotations

import asyncio
import json
import uuid

from adventure_quest.messaging.nats import NatsQueue
from adventure_quest.messaging.nats_consumer import NatsConsumer
from adventure_quest.store.envelope import Metadata, RecordedEvent
from tests.nats_streams import NATS_URL, delete_stream


def events(count: int) -> list[RecordedEvent]:
    return [
        RecordedEvent(
            event_id=str(uuid.uuid4()),
            stream_id="player-1",
            stream_type="player",
            version=n,
            position=n,
            event_type="PlayerMoved",
            schema_version=1,
            payload=b'{"to":"hall-%d"}' % n,
            metadata=Metadata(correlation_id=f"c{n}", actor="player-1", recorded_at=0.0),
        )
        for n in range(1, count + 1)
    ]


async def delivered_unasked(consumer: NatsConsumer, count: int) -> None:
    """Make the server deliver ``count`` messages that no fetch of ours asked for: a pull request
    sent on the subscription's own inbox, as one left behind by a timed-out fetch would be."""
    sub = await consumer._subscription()
    js = await consumer._queue.jetstream()
    client = js._nc
    request = json.dumps({"batch": count, "no_wait": True}).encode()
    await client.publish(sub._nms, request, reply=sub._deliver)
    for _ in range(500):
        if sub._sub._pending_queue.qsize() >= count:
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"the server delivered {sub._sub._pending_queue.qsize()} of {count}")


async def test_a_fetch_returns_no_more_than_asked_and_keeps_the_rest_in_order() -> None:
    stream = f"AQFETCH{uuid.uuid4().hex[:8].upper()}"
    sent = events(8)
    queue = NatsQueue(NATS_URL, stream=stream, partitions=1, subject_prefix=stream.lower())
    try:
        await queue.publish(sent)
        consumer = queue.consumer("g", 0)
        assert await consumer.fetch(1, 5.0) == sent[:1]
        await delivered_unasked(consumer, 6)  # events 2..7 wait in nats.py's queue
        assert await consumer.fetch(3, 5.0) == sent[1:4]
        await consumer.ack()  # acknowledges up to event 4, not the surplus
        rest = await consumer.fetch(10, 5.0)  # the surplus (the last may have come too)
        assert len(rest) >= 3
        assert rest == sent[4 : 4 + len(rest)]
        # Whoever takes the partition over next gets everything after the acknowledged.
        await queue.close()
        queue = NatsQueue(NATS_URL, stream=stream, partitions=1, subject_prefix=stream.lower())
        successor = queue.consumer("g", 0)
        got: list[RecordedEvent] = []
        while len(got) < 4:
            batch = await successor.fetch(4 - len(got), 5.0)
            assert batch, f"only {len(got)} of 4 came"
            got.extend(batch)
        assert got == sent[4:]
    finally:
        await queue.close()
        await delete_stream(stream)
