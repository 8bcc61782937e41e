"""Jobs run together stop together: a failure stops the others, and a job still busy a grace
period after stop is cancelled instead of holding the process up.

Seen in tests of ``aq serve`` in one process: it sometimes never returned. The relay's publish
to the in-process queue waits until every consumer group has taken the events; the projection
workers had stopped taking, so the relay waited for ever.
"""

from __future__ import annotations

import asyncio
import time

import pytest

from adventure_quest.bootstrap.roles import run_together
from adventure_quest.messaging.memory import MemoryQueue
from adventure_quest.processing.relay import Relay
from adventure_quest.store.envelope import NO_STREAM, NewEvent, RecordedEvent
from adventure_quest.store.memory import MemoryCheckpointStore, MemoryEventStore


async def test_a_job_still_busy_after_the_grace_is_cancelled_and_the_others_finish() -> None:
    stop = asyncio.Event()
    finished: list[str] = []
    cancelled: list[str] = []

    async def polite(stop: asyncio.Event) -> None:
        await stop.wait()
        finished.append("polite")

    async def deaf(stop: asyncio.Event) -> None:
        try:
            await asyncio.Event().wait()  # never set: ignores stop
        except asyncio.CancelledError:
            cancelled.append("deaf")
            raise

    async def stopper(stop: asyncio.Event) -> None:
        await asyncio.sleep(0.05)
        stop.set()

    started = time.monotonic()
    async with asyncio.timeout(10):
        await run_together([polite, deaf, stopper], stop, grace_s=0.2)
    assert (finished, cancelled) == (["polite"], ["deaf"])
    assert time.monotonic() - started < 5  # not held up by the deaf job


async def test_a_failing_job_stops_the_others_and_its_error_is_raised() -> None:
    stop = asyncio.Event()
    stopped: list[str] = []

    async def waiting(stop: asyncio.Event) -> None:
        await stop.wait()
        stopped.append("waiting")

    async def failing(stop: asyncio.Event) -> None:
        await asyncio.sleep(0.01)
        raise RuntimeError("the broker is gone")

    with pytest.raises(RuntimeError, match="the broker is gone"):
        await run_together([waiting, failing], stop, grace_s=5)
    assert stop.is_set()
    assert stopped == ["waiting"]


async def test_a_relay_waiting_on_stopped_consumers_is_cancelled_and_publishes_again_later() -> (
    None
):
    store = MemoryEventStore()
    events = [NewEvent("PlayerSaid", b'{"room":"village_square","text":"hi"}') for _ in range(3)]
    await store.append("player-1", NO_STREAM, events)
    queue = MemoryQueue(["projections"], partitions=1)  # nobody consumes: publish waits
    checkpoints = MemoryCheckpointStore()
    stop = asyncio.Event()
    relay = Relay(store, queue, checkpoints, idle_wait_s=0.01)

    async def stopper(stop: asyncio.Event) -> None:
        while not await queue.consumer("projections", 0).pending():
            await asyncio.sleep(0.001)  # the relay is publishing now
        stop.set()

    async with asyncio.timeout(10):  # before the grace, this waited for ever
        await run_together([relay.run, stopper], stop, grace_s=0.2)
    assert await checkpoints.load(relay.name) == 0  # the step did not finish: nothing checkpointed

    # After a restart the events go again, and the consumer takes each once.
    consumer = queue.consumer("projections", 0)
    again, stop = Relay(store, queue, checkpoints, idle_wait_s=0.01), asyncio.Event()

    async def consume(stop: asyncio.Event) -> None:
        got: list[RecordedEvent] = []
        while len(got) < 3:
            got += await consumer.fetch(10, 1.0)
            await consumer.ack()
        assert [e.version for e in got] == [1, 2, 3]
        assert await consumer.fetch(10, 0.05) == []
        stop.set()

    await run_together([again.run, consume], stop, grace_s=5)
    assert await checkpoints.load(again.name) == 3


async def test_the_consumers_stop_after_the_relays_so_a_publish_in_flight_completes(
    caplog: pytest.LogCaptureFixture,
) -> None:
    store = MemoryEventStore()
    events = [NewEvent("PlayerSaid", b'{"room":"village_square","text":"hi"}') for _ in range(3)]
    await store.append("player-1", NO_STREAM, events)
    queue = MemoryQueue(["projections"], partitions=1)
    checkpoints = MemoryCheckpointStore()
    relay = Relay(store, queue, checkpoints, idle_wait_s=0.01)
    consumer = queue.consumer("projections", 0)
    taken: list[RecordedEvent] = []

    async def consume(stop: asyncio.Event) -> None:
        while not stop.is_set():
            got = await consumer.fetch(10, 0.01)
            taken.extend(got)
            if got:
                await consumer.ack()

    async def stopper(stop: asyncio.Event) -> None:
        while not await consumer.pending():
            await asyncio.sleep(0.001)  # the relay is publishing now
        stop.set()

    stop = asyncio.Event()
    async with asyncio.timeout(2):  # well within the grace: nobody waited it out
        await run_together([relay.run, stopper], stop, grace_s=5, last=[consume])
    assert await checkpoints.load(relay.name) == 3  # the publish finished and was checkpointed
    assert [e.version for e in taken] == [1, 2, 3]
    assert "did not stop" not in caplog.text
