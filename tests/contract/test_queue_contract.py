"""The message-queue contract, run against every adapter.

The memory queue's ``publish`` returns only once every consumer group acknowledged the events,
so these tests start their consumers before they publish. NATS tests use the real server at
127.0.0.1:4222 with a fresh stream each, and fail (never skip) when it cannot be reached.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import uuid
from collections.abc import AsyncIterator, Callable, Coroutine, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

import nats
import nats.js.errors
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from adventure_quest.messaging.memory import MemoryQueue
from adventure_quest.messaging.nats import NatsQueue
from adventure_quest.messaging.ports import Consumer, MessageQueue, partition_of
from adventure_quest.store.envelope import Metadata, RecordedEvent
from tests.conftest import run

T = TypeVar("T")

ADAPTERS = ["memory", "nats"]
NATS_URL = "nats://127.0.0.1:4222"
PARTITIONS = 4
#: How long a fetch waits when events are expected, and when none are.
FETCH_TIMEOUT = 2.0
QUIET_TIMEOUT = 0.2
#: How long a scenario may take before it counts as stuck.
DEADLINE = 10.0


class Queues:
    """Opens queues of one adapter for one test; closes them and deletes NATS streams after."""

    def __init__(self, adapter: str) -> None:
        self.adapter = adapter
        self._opened: list[MessageQueue] = []
        self._streams: list[str] = []

    def open(self, groups: Sequence[str], partitions: int = PARTITIONS) -> MessageQueue:
        queue: MessageQueue
        if self.adapter == "memory":
            queue = MemoryQueue(groups, partitions)
        else:
            token = uuid.uuid4().hex[:12]
            queue = NatsQueue(
                NATS_URL,
                stream=f"AQ_TEST_{token}",
                partitions=partitions,
                subject_prefix=f"aqtest.{token}",
            )
            self._streams.append(queue.stream)
        self._opened.append(queue)
        return queue

    def restarted(self, queue: MessageQueue) -> MessageQueue:
        """The same queue as a restarted process sees it (the memory queue lives in-process)."""
        if isinstance(queue, NatsQueue):
            queue = NatsQueue(
                queue.url,
                stream=queue.stream,
                partitions=queue.partitions,
                subject_prefix=queue.subject_prefix,
            )
            self._opened.append(queue)
        return queue

    @contextlib.asynccontextmanager
    async def closing(self) -> AsyncIterator[None]:
        """The body within DEADLINE, then every queue closed and its stream deleted."""
        try:
            async with asyncio.timeout(DEADLINE):
                yield
        finally:
            for queue in self._opened:
                await queue.close()
            await self._delete_streams()

    async def _delete_streams(self) -> None:
        if not self._streams:
            return
        client = await nats.connect(NATS_URL, max_reconnect_attempts=1)
        try:
            js = client.jetstream()
            for stream in self._streams:
                # NotFound: the test failed before it made the stream
                with contextlib.suppress(nats.js.errors.NotFoundError):
                    await js.delete_stream(stream)
        finally:
            await client.close()


@pytest.fixture(params=ADAPTERS)
def queues(request: pytest.FixtureRequest) -> Queues:
    return Queues(request.param)


def play(queues: Queues, scenario: Callable[[], Coroutine[Any, Any, T]]) -> T:
    """``scenario`` on an event loop of its own, then the queues closed (for the examples of a
    Hypothesis test inside a test that is not async itself)."""

    async def closing() -> T:
        async with queues.closing():
            return await scenario()

    return run(closing())


def recorded(stream_ids: Sequence[str]) -> list[RecordedEvent]:
    """One event per entry, each stream's versions counting from 1, positions from 1."""
    versions: dict[str, int] = {}
    events = []
    for position, stream_id in enumerate(stream_ids, start=1):
        versions[stream_id] = versions.get(stream_id, 0) + 1
        events.append(
            RecordedEvent(
                event_id=str(uuid.uuid4()),
                stream_id=stream_id,
                stream_type=stream_id.partition("-")[0],
                version=versions[stream_id],
                position=position,
                event_type="PlayerMoved",
                schema_version=1,
                payload=b'{"to":"hall-%d"}' % position,
                metadata=Metadata(correlation_id=f"c{position}", actor="player-1"),
            )
        )
    return events


def by_partition(
    events: Sequence[RecordedEvent], partitions: int
) -> dict[int, list[RecordedEvent]]:
    """The events each partition must carry, in publish order, without repeats."""
    seen: set[str] = set()
    parts: dict[int, list[RecordedEvent]] = {}
    for event in events:
        if event.event_id not in seen:
            seen.add(event.event_id)
            parts.setdefault(partition_of(event.stream_id, partitions), []).append(event)
    return parts


def streams_on_every_partition(partitions: int) -> list[str]:
    """Stream ids such that every partition carries at least one of them."""
    found: dict[int, str] = {}
    for n in itertools.count():
        stream_id = f"player-{n}"
        found.setdefault(partition_of(stream_id, partitions), stream_id)
        if len(found) == partitions:
            return [found[p] for p in range(partitions)]
    raise AssertionError("unreachable")


async def collect(
    consumer: Consumer, count: int, fetch_sizes: Sequence[int] = (7,)
) -> list[RecordedEvent]:
    """Fetch and acknowledge until ``count`` events arrived; extra ones show up as a mismatch."""
    got: list[RecordedEvent] = []
    for size in itertools.cycle(fetch_sizes):
        if len(got) >= count:
            return got
        batch = await consumer.fetch(size, FETCH_TIMEOUT)
        assert batch, f"partition {consumer.partition}: only {len(got)} of {count} events arrived"
        got.extend(batch)
        await consumer.ack()
    raise AssertionError("unreachable")


async def fetch_unacknowledged(consumer: Consumer, count: int) -> list[RecordedEvent]:
    """Fetch, without acknowledging, until ``count`` events came (a fetch may bring fewer than
    it asks for: NATS returns what arrived within a few milliseconds of the first event)."""
    got: list[RecordedEvent] = []
    while len(got) < count:
        batch = await consumer.fetch(count - len(got), FETCH_TIMEOUT)
        assert batch, f"only {len(got)} of {count} events arrived"
        got.extend(batch)
    return got


async def deliver(
    queue: MessageQueue,
    batches: Sequence[Sequence[RecordedEvent]],
    groups: Sequence[str] = ("g",),
    fetch_sizes: Sequence[int] = (7,),
    *,
    concurrently: bool = False,
) -> dict[tuple[str, int], list[RecordedEvent]]:
    """Publish ``batches`` (in order, or all at once) while every group reads every partition."""
    expected = by_partition([e for batch in batches for e in batch], queue.partitions)
    readers = {
        (group, p): asyncio.create_task(collect(queue.consumer(group, p), len(events), fetch_sizes))
        for group in groups
        for p, events in expected.items()
    }

    async def publish() -> None:
        if concurrently:
            await asyncio.gather(*(queue.publish(batch) for batch in batches))
            return
        for batch in batches:
            await queue.publish(batch)

    await asyncio.gather(publish(), *readers.values())
    return {key: reader.result() for key, reader in readers.items()}


async def nothing_more(queue: MessageQueue, group: str = "g") -> None:
    for p in range(queue.partitions):
        consumer = queue.consumer(group, p)
        assert await consumer.fetch(100, QUIET_TIMEOUT) == []
        assert await consumer.pending() == 0


async def held(consumer: Consumer, count: int) -> None:
    """Wait until the queue holds ``count`` events for ``consumer`` (a publish may be running)."""
    for _ in range(250):
        if await consumer.pending() == count:
            return
        await asyncio.sleep(0.02)
    raise AssertionError(f"the queue never held {count} events for partition {consumer.partition}")


async def test_each_partition_delivers_its_events_in_publish_order(queues: Queues) -> None:
    async with queues.closing():
        queue = queues.open(["g"])
        streams = streams_on_every_partition(PARTITIONS)
        events = recorded([streams[n % len(streams)] for n in range(3 * PARTITIONS)] * 4)
        batches = [events[:5], events[5:6], events[6:30], events[30:]]

        got = await deliver(queue, batches, fetch_sizes=(3, 1, 10))

        for p, expected in by_partition(events, PARTITIONS).items():
            assert got["g", p] == expected


async def test_every_event_reaches_the_partition_partition_of_picks(queues: Queues) -> None:
    async with queues.closing():
        queue = queues.open(["g"])
        events = recorded([f"room-{n}" for n in range(40)])

        got = await deliver(queue, [events])

        assert sorted(e.event_id for events in got.values() for e in events) == sorted(
            e.event_id for e in events
        )
        for (_, p), events_of_p in got.items():
            assert {partition_of(e.stream_id, PARTITIONS) for e in events_of_p} == {p}
        await nothing_more(queue)


async def test_events_come_back_exactly_as_published(queues: Queues) -> None:
    async with queues.closing():
        queue = queues.open(["g"], partitions=1)
        events = recorded(["player-1", "player-1"])
        events.append(
            RecordedEvent(
                event_id=str(uuid.uuid4()),
                stream_id="player-1",
                stream_type="player",
                version=3,
                position=3,
                event_type="ItemTaken",
                schema_version=2,
                payload=bytes(range(256)),
                metadata=Metadata("corr", "cause", "player-1", 1_700_000_000.25),
                shard=3,
            )
        )

        got = await deliver(queue, [events])

        assert got["g", 0] == events


async def test_publishing_the_same_events_concurrently_delivers_each_once(queues: Queues) -> None:
    async with queues.closing():
        queue = queues.open(["g"])
        events = recorded([f"player-{n % 6}" for n in range(24)])

        got = await deliver(queue, [events, events], concurrently=True)

        for p, expected in by_partition(events, PARTITIONS).items():
            assert got["g", p] == expected
        await nothing_more(queue)


@pytest.mark.parametrize(
    "adapter",
    [
        "memory",
        "nats",
    ],
)
async def test_publishing_again_after_publish_returned_delivers_nothing_new(adapter: str) -> None:
    queues = Queues(adapter)

    async with queues.closing():
        queue = queues.open(["g"])
        events = recorded([f"player-{n % 5}" for n in range(15)])
        await deliver(queue, [events])

        retry = asyncio.create_task(queue.publish(events))  # the relay retrying after a crash
        await asyncio.wait({retry}, timeout=1.0)
        try:
            await nothing_more(queue)
        finally:
            retry.cancel()


async def test_fetched_but_unacknowledged_events_go_to_the_next_consumer_after_a_crash(
    queues: Queues,
) -> None:
    async with queues.closing():
        queue = queues.open(["g"], partitions=1)
        events = recorded(["player-1"] * 5 + ["player-2"] * 3)
        crashed = queue.consumer("g", 0)
        publisher = asyncio.create_task(queue.publish(events))
        try:
            await held(crashed, len(events))
            # A fetch brings what arrived within a few ms of the first: fetch until five came.
            assert await fetch_unacknowledged(crashed, 5) == events[:5]

            successor = queues.restarted(queue).consumer("g", 0)
            assert await collect(successor, len(events)) == events
            await publisher
            assert await successor.fetch(10, QUIET_TIMEOUT) == []
        finally:
            publisher.cancel()  # a failure above must not leave it publishing after clean-up


async def test_acknowledged_events_are_not_delivered_to_the_next_consumer(queues: Queues) -> None:
    async with queues.closing():
        queue = queues.open(["g"], partitions=1)
        events = recorded(["player-1"] * 6)
        first = queue.consumer("g", 0)
        publisher = asyncio.create_task(queue.publish(events))
        await held(first, len(events))
        assert await collect(first, 4, fetch_sizes=(4,)) == events[:4]
        assert await first.fetch(1, FETCH_TIMEOUT) == events[4:5]  # not acknowledged

        successor = queues.restarted(queue).consumer("g", 0)
        assert await collect(successor, 2) == events[4:]
        await publisher


async def test_each_consumer_group_gets_every_event(queues: Queues) -> None:
    async with queues.closing():
        queue = queues.open(["projections", "achievements"])
        events = recorded([f"player-{n % 7}" for n in range(30)])

        got = await deliver(queue, [events[:10], events[10:]], ("projections", "achievements"))

        for p, expected in by_partition(events, PARTITIONS).items():
            assert got["projections", p] == expected
            assert got["achievements", p] == expected


async def test_pending_counts_the_events_a_group_has_not_acknowledged(queues: Queues) -> None:
    async with queues.closing():
        queue = queues.open(["g"], partitions=1)
        events = recorded(["player-1"] * 5)
        consumer = queue.consumer("g", 0)
        assert await consumer.pending() == 0
        publisher = asyncio.create_task(queue.publish(events))

        await held(consumer, 5)
        assert await consumer.oldest_pending() == events[0]
        assert await fetch_unacknowledged(consumer, 3) == events[:3]
        assert await consumer.pending() == 5  # fetched is not acknowledged
        assert await consumer.oldest_pending() == events[0]
        await consumer.ack()
        assert await consumer.pending() == 2
        assert await consumer.oldest_pending() == events[3]
        assert await collect(consumer, 2) == events[3:]
        assert await consumer.pending() == 0
        assert await consumer.oldest_pending() is None
        await publisher


async def test_asking_another_consumer_object_for_pending_leaves_the_reader_alone(
    queues: Queues,
) -> None:
    async with queues.closing():
        queue = queues.open(["g"], partitions=1)
        events = recorded(["player-1"] * 5)
        reader = queue.consumer("g", 0)
        publisher = asyncio.create_task(queue.publish(events))
        await held(reader, 5)
        assert await fetch_unacknowledged(reader, 3) == events[:3]

        monitor = queues.restarted(queue).consumer("g", 0)  # e.g. a lag metric
        assert await monitor.pending() == 5
        await reader.ack()
        assert await monitor.pending() == 2
        assert await collect(reader, 2) == events[3:]
        await publisher


@dataclass(frozen=True)
class Plan:
    """Events over some streams, cut into publish batches, read with varying fetch sizes."""

    partitions: int
    streams: list[str]
    batch_sizes: list[int]
    fetch_sizes: list[int]


@st.composite
def plans(draw: st.DrawFn) -> Plan:
    names = st.sampled_from(["player-ann", "player-bo", "room-hall", "room-cave", "npc-orc"])
    return Plan(
        partitions=draw(st.integers(1, 4)),
        streams=draw(
            st.lists(
                names | st.from_regex(r"player-[a-z]{1,6}", fullmatch=True), min_size=1, max_size=40
            )
        ),
        batch_sizes=draw(st.lists(st.integers(1, 12), min_size=1, max_size=5)),
        fetch_sizes=draw(st.lists(st.integers(1, 9), min_size=1, max_size=4)),
    )


def batched(events: list[RecordedEvent], sizes: Sequence[int]) -> list[list[RecordedEvent]]:
    batches: list[list[RecordedEvent]] = []
    start = 0
    for size in itertools.cycle(sizes):
        if start >= len(events):
            return batches
        batches.append(events[start : start + size])
        start += size
    raise AssertionError("unreachable")


EXAMPLES = {"memory": 60, "nats": 12}


@pytest.mark.parametrize("adapter", ADAPTERS)
def test_random_batches_arrive_once_each_in_publish_order_per_partition(adapter: str) -> None:
    @settings(max_examples=EXAMPLES[adapter], deadline=None, database=None)
    @given(plan=plans())
    def check(plan: Plan) -> None:
        queues = Queues(adapter)

        async def scenario() -> None:
            queue = queues.open(["g"], plan.partitions)
            events = recorded(plan.streams)

            got = await deliver(queue, batched(events, plan.batch_sizes), ("g",), plan.fetch_sizes)

            expected = by_partition(events, plan.partitions)
            assert {p: got["g", p] for p in expected} == expected
            for p in expected:
                assert await queue.consumer("g", p).pending() == 0

        play(queues, scenario)

    check()
