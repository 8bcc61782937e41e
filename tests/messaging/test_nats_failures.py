"""The NATS queue when its server stops, restarts or crashes.

Each test runs its own nats-server on a free loopback port with its own store directory, so it
can stop and restart it; the shared server on port 4222 is never touched.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import TypeVar

import nats
import nats.js.errors
import pytest

from adventure_quest.messaging.nats import NatsQueue
from adventure_quest.messaging.nats_consumer import NatsStreamMismatchError
from adventure_quest.messaging.ports import QueueUnavailableError
from adventure_quest.store.envelope import Metadata, RecordedEvent
from tests.contract.test_queue_contract import fetch_unacknowledged
from tests.services import NatsServer, free_port

T = TypeVar("T")

#: Publishing to a stopped server must fail within this many seconds.
FAIL_FAST = 5.0


@pytest.fixture
def server(tmp_path: Path) -> Iterator[NatsServer]:
    server = NatsServer(tmp_path)
    server.start()
    try:
        yield server
    finally:
        server.stop(signal.SIGKILL)


def queue_on(server: NatsServer, partitions: int = 2) -> NatsQueue:
    return NatsQueue(server.url, stream="AQ_FAILURES", partitions=partitions, timeout=2.0)


def events_of(stream_id: str, count: int, start: int = 1) -> list[RecordedEvent]:
    return [
        RecordedEvent(
            event_id=str(uuid.uuid4()),
            stream_id=stream_id,
            stream_type="player",
            version=version,
            position=version,
            event_type="PlayerMoved",
            schema_version=1,
            payload=b"{}",
            metadata=Metadata(actor=stream_id),
        )
        for version in range(start, start + count)
    ]


@contextlib.asynccontextmanager
async def closing(*queues: NatsQueue) -> AsyncIterator[None]:
    """The body bounded to 30 s; then ``queues`` closed."""
    try:
        async with asyncio.timeout(30.0):
            yield
    finally:
        for queue in queues:
            await queue.close()


async def retried(attempt: Callable[[], Awaitable[T]], seconds: float = 10.0) -> T:
    """What a relay does: retry on QueueUnavailableError until the server is back."""
    deadline = time.monotonic() + seconds
    while True:
        try:
            return await attempt()
        except QueueUnavailableError:
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.1)


async def read_all(queue: NatsQueue, partition: int, count: int) -> list[RecordedEvent]:
    consumer = queue.consumer("g", partition)
    got: list[RecordedEvent] = []
    while len(got) < count:
        batch = await consumer.fetch(count, 2.0)
        assert batch, f"only {len(got)} of {count} events arrived"
        got.extend(batch)
        await consumer.ack()
    return got


async def test_publishing_to_a_stopped_server_fails_fast_naming_the_server(
    server: NatsServer,
) -> None:
    queue = queue_on(server)
    events = events_of("player-1", 3)
    async with closing(queue):
        await queue.publish(events)
        server.stop()
        started = time.monotonic()
        with pytest.raises(QueueUnavailableError) as raised:
            await queue.publish(events_of("player-1", 1, start=4))
        assert time.monotonic() - started < FAIL_FAST
        assert raised.value.code == "queue_unavailable"
        assert server.url in str(raised.value)


async def test_publishing_to_a_server_that_never_answered_fails_fast(server: NatsServer) -> None:
    server.stop()
    queue = queue_on(server)
    async with closing(queue):
        started = time.monotonic()
        with pytest.raises(QueueUnavailableError, match=str(server.port)):
            await queue.publish(events_of("player-1", 1))
        assert time.monotonic() - started < FAIL_FAST


async def test_publishing_after_the_stream_was_deleted_fails_with_no_responders(
    server: NatsServer,
) -> None:
    queue = queue_on(server)
    async with closing(queue):
        await queue.publish(events_of("player-1", 1))
        admin = await nats.connect(server.url)
        await admin.jetstream().delete_stream(queue.stream)
        await admin.close()
        started = time.monotonic()
        with pytest.raises(QueueUnavailableError, match="NoStreamResponse"):
            await queue.publish(events_of("player-1", 1, start=2))
        assert time.monotonic() - started < FAIL_FAST


async def test_acknowledged_events_survive_a_restart_and_publishing_resumes(
    server: NatsServer,
) -> None:
    queue = queue_on(server, partitions=1)
    before, after = events_of("player-1", 20), events_of("player-1", 5, start=21)
    async with closing(queue):
        await queue.publish(before)
        server.stop()
        server.start()
        await retried(lambda: queue.publish(after))  # the same queue reconnects by itself
        await queue.publish(before)  # republished: de-duplicated across the restart
        assert await read_all(queue, 0, 25) == before + after
        assert await queue.consumer("g", 0).pending() == 0


async def test_acknowledged_events_survive_a_crash_of_the_server_process(
    server: NatsServer,
) -> None:
    queue = queue_on(server, partitions=1)
    events = events_of("player-1", 500)
    async with closing(queue):
        await queue.publish(events)
        server.stop(signal.SIGKILL)
        server.start()
        restarted = queue_on(server, partitions=1)
        try:
            assert await retried(lambda: read_all(restarted, 0, 500)) == events
        finally:
            await restarted.close()


async def test_a_consumers_acknowledged_position_survives_a_restart(server: NatsServer) -> None:
    queue = queue_on(server, partitions=1)
    events = events_of("player-1", 10)
    async with closing(queue):
        await queue.publish(events)
        consumer = queue.consumer("g", 0)
        # A fetch brings what arrived within a few ms of the first event: fetch until all came.
        assert await fetch_unacknowledged(consumer, 6) == events[:6]
        await consumer.ack()
        await queue.close()
        server.stop()
        server.start()
        restarted = queue_on(server, partitions=1)
        try:
            successor = restarted.consumer("g", 0)
            assert await retried(successor.pending) == 4
            assert await fetch_unacknowledged(successor, 4) == events[6:]
            assert await successor.fetch(10, 0.2) == []  # and nothing before them again
        finally:
            await restarted.close()


async def test_a_stream_made_for_another_partition_count_is_refused(server: NatsServer) -> None:
    queue = queue_on(server, partitions=2)
    other = queue_on(server, partitions=3)
    async with closing(queue, other):
        await queue.publish(events_of("player-1", 1))
        with pytest.raises(NatsStreamMismatchError, match="3 partitions") as raised:
            await other.publish(events_of("player-1", 1))
        assert raised.value.code == "queue_stream_mismatch"


async def test_queues_start_while_another_deployment_deletes_its_last_stream(
    server: NatsServer,
) -> None:
    """nats-server 2.9 removes the account's store directory with its last stream, and a stream
    created meanwhile fails ("error creating store for stream", 10049). Another deployment on
    the same server creates and deletes its stream in a loop, and each queue's stream is
    deleted after it published, so the account keeps running out of streams. Queues start until
    the race was run into three times: every one of them must get its stream."""
    other = await nats.connect(server.url)
    js = other.jetstream()
    stop = asyncio.Event()

    async def churn() -> None:
        while not stop.is_set():
            with contextlib.suppress(nats.js.errors.APIError):  # it loses races too
                await js.add_stream(name="OTHER", subjects=["other.x"])
                await js.delete_stream("OTHER")

    churning = asyncio.create_task(churn())
    started = races = 0
    try:
        async with asyncio.timeout(60):
            while races < 3 and started < 2_000:
                queue = NatsQueue(
                    server.url,
                    stream=f"AQ_RACE_{started}",
                    subject_prefix=f"race{started}",
                    partitions=1,
                    timeout=5.0,
                )
                try:
                    await queue.publish(events_of("player-race", 1))
                finally:
                    await queue.close()
                await js.delete_stream(queue.stream)
                started, races = started + 1, races + queue.store_races
    finally:
        stop.set()
        await churning
        await other.close()
    left = len(list((server.store / "jetstream").rglob("AQ_RACE_*")))
    assert races >= 3, f"{started} queues started without running into the race"
    assert left == 0  # every stream made was deleted again: none was half made


async def test_a_queue_connects_to_the_one_listed_server_that_answers(server: NatsServer) -> None:
    # The client tries the servers in a random order: with nine refusing ports beside the one
    # that answers, stopping at the first refusal would fail nearly every connection.
    dead = [f"nats://127.0.0.1:{free_port()}" for _ in range(9)]
    for attempt in range(3):
        queue = NatsQueue(
            ",".join([*dead, server.url]), stream="AQ_FAILURES", partitions=2, timeout=2.0
        )
        async with closing(queue):
            await queue.publish(events_of("player-1", 1, start=attempt + 1))
    queue = NatsQueue(",".join(dead), stream="AQ_FAILURES", partitions=2, timeout=2.0)
    async with closing(queue):
        with pytest.raises(QueueUnavailableError, match="cannot connect"):
            await queue.ready()


async def test_three_replicas_on_a_server_outside_a_cluster_are_refused_for_any_stream(
    server: NatsServer,
) -> None:
    def replicated(stream: str) -> NatsQueue:
        return NatsQueue(server.url, stream=stream, partitions=2, timeout=2.0, replicas=3)

    new, plain = replicated("AQ_NEW"), NatsQueue(server.url, stream="AQ_OLD", partitions=2)
    existing = replicated("AQ_OLD")
    async with closing(new, plain, existing):
        with pytest.raises(NatsStreamMismatchError, match="not supported in non-clustered mode"):
            await new.ready()
        await plain.ready()
        with pytest.raises(NatsStreamMismatchError, match="not part of a cluster"):
            await existing.ready()
        admin = await nats.connect(server.url)
        try:
            info = await admin.jetstream().stream_info("AQ_OLD")
        finally:
            await admin.close()
        assert info.config.num_replicas == 1
