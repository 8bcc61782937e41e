"""A projection worker of leased partitions: what it does when fenced, and when its lease is stale.

In process: the in-process queue, a memory event store, a real SQLite read database (and a
second handle on it, standing for another worker).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest

from adventure_quest.app.aggregates import event_codec
from adventure_quest.app.world_loader import load_world
from adventure_quest.messaging.memory import MemoryQueue
from adventure_quest.messaging.ports import partition_of
from adventure_quest.processing.groups import GROUP
from adventure_quest.processing.projection_worker import ProjectionWorker
from adventure_quest.projections import sql
from adventure_quest.projections.catalog import projections
from adventure_quest.projections.fencing import Fence, Fenced
from adventure_quest.projections.model import Table
from adventure_quest.projections.runner import ProjectionRunner
from adventure_quest.projections.sqlite import SQLiteReadDatabase
from adventure_quest.projections.world_stats import STREAM_TALLY
from adventure_quest.store.envelope import ANY, NewEvent, RecordedEvent
from adventure_quest.store.memory import MemoryEventStore

PARTITIONS = 2
FENCES = Table(sql.FENCES_TABLE, "consumer_group", {"partition": "integer", "token": "integer"})


def stream_in(partition: int) -> str:
    return next(
        f"player-{n}" for n in range(100) if partition_of(f"player-{n}", PARTITIONS) == partition
    )


async def said(store: MemoryEventStore, stream: str) -> list[RecordedEvent]:
    payload = b'{"room":"village_square","text":"hi"}'
    await store.append(stream, ANY, [NewEvent("PlayerSaid", payload) for _ in range(2)])
    return await store.read_stream(stream, 1, 2)


async def until(value: Callable[[], Awaitable[object]], expected: object) -> None:
    async with asyncio.timeout(5):
        while await value() != expected:
            await asyncio.sleep(0.02)


class Setting:
    """A runner over a read database, a queue of two partitions, and a worker's stop."""

    def __init__(self, tmp_path: Path) -> None:
        self.path = str(tmp_path / "read.sqlite")
        self.db = SQLiteReadDatabase(self.path)
        self.store = MemoryEventStore()
        self.runner = ProjectionRunner(
            self.db,
            projections(load_world(), PARTITIONS),
            self.store,
            event_codec(),
            partitions=PARTITIONS,
        )
        self.queue = MemoryQueue([GROUP], PARTITIONS)
        self.stop = asyncio.Event()

    async def tally(self) -> dict[str, int]:
        return {r["stream_id"]: r["events"] for r in await self.db.select(STREAM_TALLY)}

    async def fenced_rows(self) -> int:
        return await self.db.count(FENCES, where={"consumer_group": GROUP})

    async def close(self) -> None:
        await self.db.close()


async def test_a_unit_fenced_for_one_partition_applies_the_others_batch_again_without_it(
    tmp_path: Path,
) -> None:
    setting = Setting(tmp_path)
    await setting.runner.setup()
    worker = ProjectionWorker(
        setting.runner,
        setting.queue,
        range(PARTITIONS),
        group=GROUP,
        fetch_timeout_s=0.5,
        tokens={0: 1, 1: 1},
    )
    running = asyncio.create_task(worker.run(setting.stop))
    other = SQLiteReadDatabase(setting.path)  # another worker, which claimed partition 0 since
    try:
        await until(setting.fenced_rows, 2)  # the worker raised its fences
        await asyncio.sleep(0.1)  # and both feeders wait for events
        async with other.unit() as unit:
            await unit.fence([Fence(GROUP, 0, 2)])
        lost, kept = stream_in(0), stream_in(1)
        events = [*await said(setting.store, lost), *await said(setting.store, kept)]
        # Both partitions' batches arrive at once, so the applier takes them in one unit.
        publishing = asyncio.create_task(setting.queue.publish(events))
        await until(setting.tally, {kept: 2})
        assert worker.fenced.keys() == {0}
        assert setting.runner.fenced == 1
        assert await setting.queue.consumer(GROUP, 0).pending() == 2  # left to its new owner
        assert await setting.queue.consumer(GROUP, 1).pending() == 0
        setting.stop.set()
        with pytest.raises(Fenced):
            await running
        publishing.cancel()  # it waits for partition 0's acknowledgement, which never comes
        with contextlib.suppress(asyncio.CancelledError):
            await publishing
    finally:
        setting.stop.set()
        running.cancel()
        with contextlib.suppress(BaseException):
            await running
        await other.close()
        await setting.close()


async def test_a_worker_whose_lease_may_have_expired_fetches_nothing(tmp_path: Path) -> None:
    setting = Setting(tmp_path)
    await setting.runner.setup()
    fresh = [False]
    worker = ProjectionWorker(
        setting.runner,
        setting.queue,
        [0],
        group=GROUP,
        fetch_timeout_s=0.05,
        tokens={0: 1},
        leased=lambda: fresh[0],
    )
    running = asyncio.create_task(worker.run(setting.stop))
    stream = stream_in(0)
    publishing = asyncio.create_task(setting.queue.publish(await said(setting.store, stream)))
    try:
        await asyncio.sleep(0.5)
        assert await setting.queue.consumer(GROUP, 0).pending() == 2
        assert await setting.tally() == {}
        fresh[0] = True  # a lease round succeeded again
        await until(setting.tally, {stream: 2})
        await publishing
    finally:
        setting.stop.set()
        await running
        publishing.cancel()
        await setting.close()
