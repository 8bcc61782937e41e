"""aq status: lag in events and seconds, ok / lagging / stalled, and the Prometheus text."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any

from adventure_quest.app.world_loader import load_world
from adventure_quest.bootstrap.pipeline import Processing
from adventure_quest.config import load_settings
from adventure_quest.messaging.ports import partition_of
from adventure_quest.processing.status import prometheus
from adventure_quest.store.envelope import ANY, Metadata, NewEvent
from tests.prometheus_text import sample

WORLD = load_world()


def said(at: float) -> NewEvent:
    payload = b'{"room":"village_square","text":"hi"}'
    return NewEvent("PlayerSaid", payload, 1, Metadata(recorded_at=at))


async def test_a_caught_up_pipeline_is_ok_and_a_neglected_one_is_stalled(tmp_path: Path) -> None:
    config = load_settings(
        {},
        store_url="memory://",
        queue_url="memory://",
        partitions=2,
        read_db_url=f"sqlite:///{tmp_path / 'read.sqlite'}",
    )
    async with Processing.open(config, WORLD) as processing:
        quiet = await processing.status(interval_s=0.01)
        assert quiet["relays"][0]["state"] == "ok"
        assert quiet["projections"]["state"] == "ok"
        # Events recorded two minutes ago that nobody relays: behind, old, not moving.
        old = time.time() - 120
        await processing.store.append("player-x", ANY, [said(old), said(old + 1)])
        neglected = await processing.status(interval_s=0.01)
        relay = neglected["relays"][0]
        assert (relay["lag_events"], relay["state"]) == (2, "stalled")
        assert relay["lag_seconds"] >= 119
        # Nothing is published yet: the projections have nothing waiting.
        assert (neglected["projections"]["lag_events"], neglected["projections"]["state"]) == (
            0,
            "ok",
        )
        # The relay publishes; no worker applies: the projections are the ones stalled.
        publishing = asyncio.create_task(processing.relays[0].step())
        deadline = time.monotonic() + 5
        while not (await processing.status(interval_s=0))["projections"]["lag_events"]:
            assert time.monotonic() < deadline, "the relay published nothing"
        stuck = await processing.status(interval_s=0.01)  # now looked at twice, unmoved
        # What changed: the two events wait, 2 minutes old, on the partition of player-x.
        assert stuck["projections"]["lag_events"] == 2
        assert stuck["projections"]["state"] == "stalled"
        assert stuck["projections"]["lag_seconds"] >= 119
        waiting = partition_of("player-x", 2)
        partitions = stuck["projections"]["partitions"]
        assert [(p["partition"], p["lag_events"], p["state"]) for p in partitions] == [
            (n, 2, "stalled") if n == waiting else (n, 0, "ok") for n in range(2)
        ]
        # In-process, a relay's checkpoint moves only once every group has applied: its
        # publish is still in flight, so its lag is unchanged.
        assert not publishing.done()
        assert (stuck["relays"][0]["position"], stuck["relays"][0]["lag_events"]) == (0, 2)
        text = prometheus(stuck)
        for n in range(2):
            assert sample(text, "aq_projection_lag_events", partition=str(n)) == (
                2 if n == waiting else 0
            )
        assert sample(text, "aq_projection_lag_seconds", partition=str(waiting)) >= 119
        assert sample(text, "aq_relay_lag_events", shard="0") == 2
        assert sample(text, "aq_relay_lag_seconds", shard="0") == stuck["relays"][0]["lag_seconds"]
        assert sample(text, "aq_dead_letters") == 0
        stop = asyncio.Event()
        everyone: list[Callable[[asyncio.Event], Coroutine[Any, Any, None]]] = [
            processing.worker([0, 1]).run,
            processing.achievements([0, 1]).run,
            processing.handovers([0, 1]).run,
            processing.respawns([0, 1]).run,
        ]
        running = [asyncio.create_task(part(stop)) for part in everyone]
        await publishing
        caught_up = await processing.status(interval_s=0.01)
        stop.set()
        await asyncio.gather(*running)
        assert caught_up["relays"][0]["state"] == "ok"
        assert (caught_up["relays"][0]["position"], caught_up["relays"][0]["lag_events"]) == (
            2,
            0,
        )
        assert caught_up["projections"]["state"] == "ok"
        assert caught_up["projections"]["lag_events"] == 0
