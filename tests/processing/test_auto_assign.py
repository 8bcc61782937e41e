"""Workers share the partitions automatically, and take over those of a worker that died."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from pathlib import Path

import nats

from adventure_quest.app.world_loader import load_world
from adventure_quest.bootstrap.pipeline import Processing
from adventure_quest.config import load_settings
from adventure_quest.messaging.nats import NatsQueue
from adventure_quest.processing.auto_assign import AutoWorker
from adventure_quest.processing.leases import PartitionLeases
from adventure_quest.projections.world_stats import STREAM_TALLY
from adventure_quest.store.envelope import ANY, NewEvent

WORLD = load_world()
TTL = 1.2


async def until(condition: object, seconds: float = 15.0) -> None:
    deadline = asyncio.get_running_loop().time() + seconds
    while not condition():  # type: ignore[operator]
        assert asyncio.get_running_loop().time() < deadline, "did not happen in time"
        await asyncio.sleep(0.05)


async def kill(task: asyncio.Task[None]) -> None:
    """Cancel ``task`` until it is done.

    On Python 3.11 a cancellation can be lost inside the NATS client (``asyncio.wait_for``
    returning a result that raced with it), and the task goes on; so cancel again.
    """
    while not task.done():
        task.cancel()
        await asyncio.wait({task}, timeout=0.5)


async def delete_stream_and_bucket(stream: str) -> None:
    client = await nats.connect("nats://127.0.0.1:4222")
    try:
        js = client.jetstream()
        for name in (stream, f"KV_AQ_LEASES_{stream}"):
            with contextlib.suppress(Exception):
                await js.delete_stream(name)
    finally:
        await client.close()


async def test_two_workers_split_the_partitions_and_one_takes_over_when_the_other_dies(
    tmp_path: Path,
) -> None:
    stream = f"AQAUTO{uuid.uuid4().hex[:8].upper()}"
    config = load_settings(
        {},
        store_url=f"sqlite:///{tmp_path / 'events.sqlite'}",
        read_db_url=f"sqlite:///{tmp_path / 'read.sqlite'}",
        queue_url=f"nats://127.0.0.1:4222/{stream}",
        partitions=8,
    )

    # A hang here once stalled a CI run; a bound turns it into a failure naming the step.
    async with asyncio.timeout(90):
        async with (
            Processing.open(config, WORLD) as first,
            Processing.open(config, WORLD) as second,
        ):
            a = AutoWorker(first.queue, first.partition_jobs, ttl_s=TTL, name="a")
            b = AutoWorker(second.queue, second.partition_jobs, ttl_s=TTL, name="b")
            stop_a, stop_b = asyncio.Event(), asyncio.Event()
            stop_relay = asyncio.Event()
            relay = asyncio.create_task(first.relays[0].run(stop_relay))
            task_a = asyncio.create_task(a.run(stop_a))
            await until(lambda: len(a.running) == 8)
            task_b = asyncio.create_task(b.run(stop_b))
            await until(lambda: len(a.running) == 4 and len(b.running) == 4)
            assert set(a.running).isdisjoint(b.running)
            for n in range(40):
                event = NewEvent("PlayerSaid", b'{"room":"village_square","text":"hi"}')
                await first.store.append(f"player-auto{n % 10}", ANY, [event])
            # b dies without giving anything back: its leases expire, a takes them over.
            await kill(task_b)
            await until(lambda: len(a.running) == 8, seconds=TTL * 6)
            tallies: dict[str, int] = {}

            async def applied() -> bool:
                rows = await first.db.select(STREAM_TALLY)
                tallies.update({r["stream_id"]: r["events"] for r in rows})
                return sum(tallies.values()) >= 40

            deadline = asyncio.get_running_loop().time() + 20
            while not await applied():
                assert asyncio.get_running_loop().time() < deadline
                await asyncio.sleep(0.1)
            assert tallies == {f"player-auto{n}": 4 for n in range(10)}
            stop_a.set()
            stop_relay.set()
            await asyncio.gather(task_a, relay)
    await delete_stream_and_bucket(stream)


async def test_leases_are_fresh_for_the_buckets_lease_time_after_a_round_began_and_tokens_grow(
    tmp_path: Path,
) -> None:
    stream = f"AQAUTO{uuid.uuid4().hex[:8].upper()}"
    config = load_settings(
        {},
        store_url=f"sqlite:///{tmp_path / 'events.sqlite'}",
        read_db_url=f"sqlite:///{tmp_path / 'read.sqlite'}",
        queue_url=f"nats://127.0.0.1:4222/{stream}",
        partitions=2,
    )
    try:
        async with asyncio.timeout(30), Processing.open(config, WORLD) as processing:
            queue = processing.queue
            assert isinstance(queue, NatsQueue)
            a = PartitionLeases(queue, "g", "a", ttl_s=TTL)
            b = PartitionLeases(queue, "g", "b", ttl_s=TTL * 10)  # told otherwise than a
            assert not a.fresh()  # no round yet
            assert await a.refresh() == {0, 1}
            assert a.fresh()
            first = dict(a.tokens)
            await asyncio.sleep(TTL * 2.5)  # a is frozen: its keys expire
            assert not a.fresh()
            assert await b.refresh() == {0, 1}
            assert b.ttl_s == TTL  # the bucket's lifetime, which its keys expire after
            assert all(b.tokens[p] > first[p] for p in first)  # a later owner, a larger token
            assert await a.refresh() == set()  # a wakes: b holds everything
            assert a.tokens == {}
            await b.release()
    finally:
        await delete_stream_and_bucket(stream)
