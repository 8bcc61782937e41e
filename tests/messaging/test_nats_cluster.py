"""The NATS queue on a three-node JetStream cluster: what R3 keeps when a node dies, what R1 loses.

Each test runs its own cluster (tests/services.py ``private_nats_cluster``) on spare loopback
ports and kills its nodes with SIGKILL, as the loss of a host would; every node is killed when
the test ends, whatever happened.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Sequence
from pathlib import Path
from typing import TypeVar

import nats
import pytest

from adventure_quest.messaging.nats import NatsQueue
from adventure_quest.messaging.ports import QueueUnavailableError, partition_of
from adventure_quest.processing.leases import PartitionLeases
from adventure_quest.store.envelope import RecordedEvent
from tests.messaging.test_nats_failures import events_of
from tests.services import NatsCluster, NatsNode, private_nats_cluster

T = TypeVar("T")

PARTITIONS = 4
PLAYERS = 8
#: Events per publish (the relay publishes up to 2,000).
CHUNK = 25
#: How long a queue keeps retrying through a node's death (a new leader takes a few seconds).
RIDE_OUT = 30.0


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[NatsCluster]:
    with private_nats_cluster(tmp_path) as cluster:
        yield cluster


def queue_on(cluster: NatsCluster, stream: str, replicas: int | None) -> NatsQueue:
    return NatsQueue(
        cluster.url,
        stream=stream,
        partitions=PARTITIONS,
        subject_prefix=stream.lower(),
        timeout=2.0,
        replicas=replicas,
    )


@contextlib.asynccontextmanager
async def closing(*queues: NatsQueue, seconds: float = 180.0) -> AsyncIterator[None]:
    try:
        async with asyncio.timeout(seconds):
            yield
    finally:
        for queue in queues:
            await queue.close()


async def retried(attempt: Callable[[], Awaitable[T]], seconds: float = RIDE_OUT) -> T:
    """What the relay and the workers do: retry on QueueUnavailableError, here for a while."""
    deadline = time.monotonic() + seconds
    while True:
        try:
            return await attempt()
        except QueueUnavailableError:
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.1)


def events(count: int, start: int) -> list[RecordedEvent]:
    """``count`` events of each of ``PLAYERS`` players, versions from ``start``, interleaved."""
    per_player = [events_of(f"player-{p}", count, start) for p in range(PLAYERS)]
    return [event for version in zip(*per_player, strict=True) for event in version]


async def publish(
    queue: NatsQueue, batch: Sequence[RecordedEvent], seconds: float = RIDE_OUT
) -> set[str]:
    """Publish in chunks, retrying each as the relay does; the ids of the chunks that failed at
    least once (a chunk that straddled a leader's election can be stored out of order)."""
    failed: set[str] = set()
    for at in range(0, len(batch), CHUNK):
        chunk = batch[at : at + CHUNK]
        if await publish_chunk(queue, chunk, seconds):
            failed.update(event.event_id for event in chunk)
    return failed


async def publish_chunk(queue: NatsQueue, chunk: Sequence[RecordedEvent], seconds: float) -> bool:
    """Whether publishing ``chunk`` needed more than one attempt."""
    attempts = 0

    async def attempt() -> None:
        nonlocal attempts
        attempts += 1
        await queue.publish(chunk)

    await retried(attempt, seconds)
    return attempts > 1


def by_partition(batch: Sequence[RecordedEvent]) -> dict[int, list[str]]:
    found: dict[int, list[str]] = {p: [] for p in range(PARTITIONS)}
    for event in batch:
        found[partition_of(event.stream_id, PARTITIONS)].append(event.event_id)
    return found


async def consume(
    queue: NatsQueue, group: str, expected: dict[int, list[str]]
) -> dict[int, list[str]]:
    """What ``group`` reads of each partition: until the expected count (or ``RIDE_OUT``; a
    worker fetches again after an empty fetch, so does this), then whatever else is there."""
    got: dict[int, list[str]] = {}
    for partition, wanted in expected.items():
        consumer = queue.consumer(group, partition)
        ids: list[str] = []
        deadline = time.monotonic() + RIDE_OUT
        while True:
            short = len(ids) < len(wanted) and time.monotonic() < deadline
            batch = await retried(functools.partial(consumer.fetch, 100, 1.0 if short else 0.5))
            if batch:
                ids += [event.event_id for event in batch]
                await retried(consumer.ack)
            elif not short:
                break
        got[partition] = ids
    return got


def misread(got: dict[int, list[str]], wanted: dict[int, list[str]], failed: set[str]) -> str:
    """What is wrong with what a group read, per partition ("" if nothing): events missing or
    read twice, or out of order but for those of chunks whose publish failed and was retried."""
    found = []
    for partition, ids in wanted.items():
        read = got.get(partition, [])
        missing = [ids.index(i) for i in set(ids) - set(read)]
        if missing or len(read) != len(ids):
            found.append(
                f"partition {partition}: read {len(read)} of {len(ids)}, missing {missing}"
            )
        elif [i for i in read if i not in failed] != [i for i in ids if i not in failed]:
            found.append(f"partition {partition}: out of order")
    return "; ".join(found)


async def victim(cluster: NatsCluster, stream: str, which: str) -> NatsNode:
    """The stream's leader, the node the queue's client is on, or a node that is neither."""
    info = await cluster.wait_until_current(stream)
    assert info.cluster is not None
    leader = cluster.node(info.cluster.leader or "")
    if which == "leader":
        return leader
    (client_node,) = [node for node in cluster.nodes if node.clients()]
    if which == "connected":
        return client_node
    return next(node for node in cluster.nodes if node not in (leader, client_node))


async def test_an_r3_stream_keeps_every_acknowledged_event_whichever_node_dies(
    cluster: NatsCluster,
) -> None:
    queue = queue_on(cluster, "AQ_R3", replicas=3)
    published: list[RecordedEvent] = []
    failed: set[str] = set()
    async with closing(queue):
        # The durables exist before any node dies, as a running deployment's do (one created
        # while a node is down takes seconds more to deliver: its leader is being elected).
        assert await consume(queue, "live", by_partition([])) == by_partition([])
        for round_, which in enumerate(("leader", "connected", "follower")):
            before = events(10, start=20 * round_ + 1)
            failed |= await publish(queue, before)
            published += before
            node = await victim(cluster, "AQ_R3", which)
            node.stop()
            during = events(10, start=20 * round_ + 11)
            failed |= await publish(queue, during)
            published += during
            await publish(queue, before)  # a relay's republishing after a crash: dropped

            info = await cluster.wait_until_current("AQ_R3")
            assert info.cluster is not None
            assert info.cluster.leader != node.name
            assert info.state.messages == len(published)
            wanted = by_partition(before + during)
            got = await consume(queue, "live", wanted)
            assert not misread(got, wanted, failed), f"round {round_}, {which} {node.name} killed"

            node.start()
            await cluster.wait_until_current("AQ_R3")
        everything = by_partition(published)
        got = await consume(queue, "fresh", everything)
        assert not misread(got, everything, failed)


async def test_an_r1_stream_on_the_same_cluster_is_gone_while_its_node_is_down(
    cluster: NatsCluster,
) -> None:
    queue = queue_on(cluster, "AQ_R1", replicas=1)
    async with closing(queue):
        before = events(5, start=1)
        await publish(queue, before)
        info = await cluster.stream_info("AQ_R1")
        assert info.cluster is not None
        assert not info.cluster.replicas
        holder = cluster.node(info.cluster.leader or "")
        holder.stop()
        with pytest.raises(QueueUnavailableError):
            await publish(queue, events(1, start=6), seconds=10.0)
        with pytest.raises(QueueUnavailableError):
            await retried(queue.consumer("g", 0).pending, seconds=5.0)
        holder.start()
        await cluster.wait_until_current("AQ_R1")
        expected = by_partition(before)
        assert await consume(queue, "g", expected) == expected


async def test_a_queue_asking_for_three_replicas_scales_an_r1_stream_up_keeping_its_events(
    cluster: NatsCluster,
) -> None:
    first, scaled, unsaid = (queue_on(cluster, "AQ_SCALE", r) for r in (None, 3, None))
    async with closing(first, scaled, unsaid):
        before = events(5, start=1)
        await publish(first, before)
        assert first.stream_replicas == 1
        await scaled.ready()
        assert scaled.stream_replicas == 3
        info = await cluster.wait_until_current("AQ_SCALE")
        assert info.config.num_replicas == 3
        assert info.state.messages == len(before)
        await unsaid.ready()
        assert unsaid.stream_replicas == 3
        assert (await cluster.stream_info("AQ_SCALE")).config.num_replicas == 3
        expected = by_partition(before)
        assert await consume(unsaid, "g", expected) == expected


async def test_a_queue_asking_for_one_replica_scales_an_r3_stream_down(
    cluster: NatsCluster,
) -> None:
    replicated, single = queue_on(cluster, "AQ_DOWN", 3), queue_on(cluster, "AQ_DOWN", 1)
    async with closing(replicated, single):
        await publish(replicated, events(2, start=1))
        await single.ready()
        info = await cluster.wait_until_current("AQ_DOWN")
        assert single.stream_replicas == 1
        assert info.config.num_replicas == 1
        assert info.cluster is not None
        assert not info.cluster.replicas
        assert info.state.messages == 2 * PLAYERS


async def test_the_consumers_and_the_lease_bucket_get_the_streams_replicas(
    cluster: NatsCluster,
) -> None:
    queue = queue_on(cluster, "AQ_LEASED", replicas=3)
    leases = PartitionLeases(queue, "g", "worker-1")
    async with closing(queue):
        assert await leases.refresh() == set(range(PARTITIONS))
        await queue.consumer("g", 0).pending()
        client = await nats.connect(cluster.nodes[0].url)
        try:
            js = client.jetstream()
            bucket = await js.stream_info(f"KV_{leases.bucket}")
            consumer = await js.consumer_info("AQ_LEASED", "g-p0")
        finally:
            await client.close()
        assert bucket.config.num_replicas == 3
        assert consumer.cluster is not None
        assert len(consumer.cluster.replicas or ()) == 2
