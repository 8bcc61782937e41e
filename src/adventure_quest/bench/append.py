"""``aq bench append``: N single-event appends by C concurrent clients (group commit at work)."""

from __future__ import annotations

import asyncio
import time
from array import array
from typing import Any

from adventure_quest.bench.harness import percentile
from adventure_quest.store.envelope import Metadata, NewEvent
from adventure_quest.store.urls import open_event_store
from adventure_quest.store.uuid7 import uuid7

PAYLOAD = b'{"from_room":"village_square","to_room":"market_street","direction":"north"}'


async def run(url: str, clients: int, events: int) -> dict[str, Any]:
    """Each client owns a stream and appends one event at a time at its exact version."""
    store = open_event_store(url)
    latencies = array("d")
    run_id = uuid7()[:8]
    per_client, extra = divmod(events, clients)

    async def client(number: int) -> None:
        stream_id = f"bench-{run_id}-{number}"
        metadata = Metadata(actor=stream_id)
        version = await store.stream_version(stream_id)
        clock = time.perf_counter
        for _ in range(per_client + (1 if number < extra else 0)):
            started = clock()
            result = await store.append(
                stream_id, version, [NewEvent("PlayerMoved", PAYLOAD, 1, metadata)]
            )
            latencies.append(clock() - started)
            version = result.version

    try:
        started = time.perf_counter()
        await asyncio.gather(*(client(n) for n in range(clients)))
        elapsed = time.perf_counter() - started
    finally:
        await store.close()
    ordered = sorted(latencies)
    return {
        "benchmark": "append",
        "store": url.split(":", 1)[0],
        "shards": url.count(",") + 1,
        "clients": clients,
        "events": len(latencies),
        "seconds": round(elapsed, 3),
        "events_per_s": round(len(latencies) / elapsed),
        "p50_ms": round(percentile(ordered, 0.50) * 1000, 3),
        "p99_ms": round(percentile(ordered, 0.99) * 1000, 3),
    }
