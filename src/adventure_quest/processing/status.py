"""How far behind the processing path is: relay and projection lag, and dead letters.

The figures ``aq status``, ``/admin/status`` and ``/metrics`` show, read twice an interval
apart so that "behind but moving" (lagging) can be told from "behind and stuck" (stalled).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Iterator, Sequence
from typing import Any, NamedTuple, Protocol

import msgspec
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from adventure_quest.messaging.ports import MessageQueue
from adventure_quest.processing.relay import relay_name
from adventure_quest.store.ports import CheckpointStore, GlobalLog

#: Behind for longer than this with no progress between two looks: "stalled".
STALL_AFTER_S = 30.0


class Relayed(Protocol):
    """A shard's log and the checkpoint its relay keeps (a running Relay is one)."""

    @property
    def name(self) -> str: ...
    @property
    def source(self) -> GlobalLog: ...
    @property
    def checkpoints(self) -> CheckpointStore: ...


class RelayedLog(NamedTuple):
    """What status reads of a shard's relay without running one: its checkpoint and the log."""

    name: str
    source: GlobalLog
    checkpoints: CheckpointStore


def relayed_logs(
    logs: Sequence[GlobalLog], checkpoints: Sequence[CheckpointStore]
) -> list[RelayedLog]:
    """Each shard's log with its relay's checkpoint, under the name a relay of it saves as."""
    pairs = zip(logs, checkpoints, strict=True)
    return [RelayedLog(relay_name(log.shard), log, store) for log, store in pairs]


async def read_status(
    relays: Sequence[Relayed],
    queue: MessageQueue,
    dead_letters: Callable[[], Awaitable[int]],
    *,
    group: str,
    interval_s: float = 1.0,
) -> dict[str, Any]:
    """Relay and projection lag (events, seconds, state) and dead letters, looked at twice.

    ``dead_letters``: how many events are parked (a count, so that a status never reads them).
    """
    first = [await relay.checkpoints.load(relay.name) for relay in relays]
    consumers = [queue.consumer(group, p) for p in range(queue.partitions)]
    waiting_before = [await c.oldest_pending() for c in consumers]
    await asyncio.sleep(interval_s)
    relay_lag = []
    for relay, before in zip(relays, first, strict=True):
        position = await relay.checkpoints.load(relay.name)
        head = await relay.source.head()
        oldest = await relay.source.read_all(position, 1)
        seconds = time.time() - oldest[0].metadata.recorded_at if oldest else 0.0
        relay_lag.append(
            {
                "relay": relay.name,
                "shard": relay.source.shard,
                "position": position,
                "head": head,
                "lag_events": head - position,
                "lag_seconds": round(seconds, 3),
                "state": lag_state(head - position, position > before, seconds),
            }
        )
    partitions: list[dict[str, Any]] = []
    for consumer, before_event in zip(consumers, waiting_before, strict=True):
        pending = await consumer.pending()
        waiting = await consumer.oldest_pending() if pending else None
        age = time.time() - waiting.metadata.recorded_at if waiting else 0.0
        moved = waiting is None or before_event is None or waiting != before_event
        partitions.append(
            {
                "partition": consumer.partition,
                "lag_events": pending,
                "lag_seconds": round(age, 3),
                "state": lag_state(pending, moved, age),
            }
        )
    states = {p["state"] for p in partitions}
    return {
        "relays": relay_lag,
        "projections": {
            "lag_events": sum(p["lag_events"] for p in partitions),
            "lag_seconds": max((p["lag_seconds"] for p in partitions), default=0.0),
            "state": next((s for s in ("stalled", "lagging") if s in states), "ok"),
            "partitions": partitions,
        },
        "dead_letters": await dead_letters(),
    }


def lag_state(behind: int, progressed: bool, seconds: float) -> str:
    """``ok`` when caught up, ``lagging`` when behind but moving, ``stalled`` otherwise."""
    if behind <= 0:
        return "ok"
    if progressed or seconds < STALL_AFTER_S:
        return "lagging"
    return "stalled"


class StatusCollector(Collector):
    """A status's figures (``read_status``) as Prometheus gauges, for a registry to collect.

    Reading a status is asynchronous and collecting is not: whoever serves the metrics reads
    the status, sets ``status``, and renders the registry. Until then the gauges have no samples.
    """

    def __init__(self, status: dict[str, Any] | None = None) -> None:
        self.status = status

    def collect(self) -> Iterator[Metric]:
        return _gauges(self.status)

    def describe(self) -> Iterator[Metric]:
        """The gauges' names, so that a registry refuses another collector of the same."""
        return _gauges(None)


def _gauges(status: dict[str, Any] | None) -> Iterator[Metric]:
    relays = status["relays"] if status else []
    partitions = status["projections"]["partitions"] if status else []
    yield _each(
        "aq_relay_lag_events", "Events in a shard's log not yet published to the queue.", relays
    )
    yield _each("aq_relay_lag_seconds", "Age of the oldest event not yet published.", relays)
    yield _each(
        "aq_projection_lag_events",
        "Events of a partition not yet applied to the read models.",
        partitions,
    )
    yield _each(
        "aq_projection_lag_seconds",
        "Age of a partition's oldest event not yet applied.",
        partitions,
    )
    letters = GaugeMetricFamily(
        "aq_dead_letters", "Events parked because a projection failed on them."
    )
    if status:
        letters.add_metric([], status["dead_letters"])
    yield letters
    up = GaugeMetricFamily(
        "aq_status_up", "1 when the lag status could be read at this scrape, 0 when it failed."
    )
    up.add_metric([], 1 if status else 0)
    yield up


def _each(name: str, help_text: str, rows: list[dict[str, Any]]) -> GaugeMetricFamily:
    """One sample per relay (labelled ``shard``) or partition (``partition``).

    The figure is the one the name ends with: ``lag_events`` or ``lag_seconds``.
    """
    label = "shard" if name.startswith("aq_relay_") else "partition"
    figure = name.removeprefix("aq_relay_").removeprefix("aq_projection_")
    gauge = GaugeMetricFamily(name, help_text, labels=[label])
    for row in rows:
        gauge.add_metric([str(row[label])], row[figure])
    return gauge


def prometheus(status: dict[str, Any]) -> str:
    """The status as Prometheus text exposition (``aq status --prometheus``)."""
    registry = CollectorRegistry()
    registry.register(StatusCollector(status))
    return generate_latest(registry).decode()


def as_json(status: dict[str, Any]) -> str:
    return msgspec.json.encode(status).decode()
