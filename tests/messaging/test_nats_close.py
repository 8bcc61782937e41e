"""A NATS queue closed while it is still connecting keeps no connection behind.

Seen under load at the end of a whole run: an unclosed socket to 127.0.0.1:4222 and "loop is
closed" (ResourceWarning) from a connection made after its queue was closed.
"""

from __future__ import annotations

import asyncio
import gc
import uuid

import pytest

from adventure_quest.messaging.nats import NatsQueue
from adventure_quest.messaging.ports import QueueUnavailableError
from tests.nats_streams import NATS_URL, delete_stream


async def test_a_queue_closed_while_connecting_leaves_no_connection_open() -> None:
    stream = f"AQCLOSE{uuid.uuid4().hex[:8].upper()}"
    queue = NatsQueue(NATS_URL, stream=stream, partitions=1, subject_prefix=stream.lower())
    connecting = asyncio.create_task(queue.jetstream())
    await asyncio.sleep(0)  # the connection is under way
    await queue.close()
    with pytest.raises(QueueUnavailableError, match="closed while connecting"):
        await connecting
    assert queue._client is None
    gc.collect()  # an unclosed socket would warn here (warnings are errors)
    await delete_stream(stream)


async def test_a_publish_still_running_after_close_connects_no_more() -> None:
    """A test that failed left its publisher task running; the queue was closed in its clean-up,
    and the task connected again: a socket nobody closed, found by the collector in a later test
    ("loop is closed", a loaded run of the whole suite)."""
    stream = f"AQCLOSE{uuid.uuid4().hex[:8].upper()}"
    queue = NatsQueue(NATS_URL, stream=stream, partitions=1, subject_prefix=stream.lower())
    await queue.jetstream()  # connected, the stream made
    await queue.close()
    with pytest.raises(QueueUnavailableError) as refused:
        await queue.jetstream()
    gc.collect()  # an unclosed socket would warn here (warnings are errors)
    await delete_stream(stream)
    message, no_client = str(refused.value), queue._client is None
    assert "the queue is closed" in message
    assert no_client
