"""``aq bench load``: loading a character of H events by full replay and from a snapshot."""

from __future__ import annotations

import statistics
import time
from typing import Any

from adventure_quest.app.aggregates import event_codec, player_type
from adventure_quest.app.repository import Repository
from adventure_quest.bench.harness import Progress
from adventure_quest.domain.events import Event, PlayerCreated, PlayerMoved, PlayerSaid
from adventure_quest.store.envelope import ANY
from adventure_quest.store.urls import open_event_store, open_snapshot_store
from adventure_quest.store.uuid7 import uuid7

BATCH = 1000


def history(player_id: str, size: int) -> list[Event]:
    """A plausible life: created, then walking back and forth and talking."""
    events: list[Event] = [PlayerCreated(player_id, "Bench", "village_square", 100, 100)]
    for n in range(1, size):
        if n % 3:
            there = ("village_square", "market_street")[n % 2]
            back = ("market_street", "village_square")[n % 2]
            events.append(PlayerMoved(back, there, ("north", "south")[n % 2]))
        else:
            events.append(PlayerSaid("village_square", f"step {n}"))
    return events


async def run(url: str, size: int, repeats: int, quiet: bool) -> dict[str, Any]:
    store, snapshots = open_event_store(url), open_snapshot_store(url)
    codec = event_codec()
    kind = player_type()
    stream_id = kind.stream_id(f"bench-{uuid7()}")
    try:
        progress = Progress("writing history", size, quiet)
        all_events = history(stream_id, size)
        for start in range(0, size, BATCH):
            chunk = [codec.encode(e) for e in all_events[start : start + BATCH]]
            await store.append(stream_id, ANY, chunk)
            progress.update(start + len(chunk))
        progress.done()
        replaying = Repository(store, snapshots, codec, snapshot_every=0, cache_size=0)
        full = []
        for _ in range(repeats):
            started = time.perf_counter()
            loaded = await replaying.load(kind, stream_id)
            full.append(time.perf_counter() - started)
        if loaded.version != size:
            raise RuntimeError(f"replayed {loaded.version} events, wrote {size}")
        # A repository that snapshots: its first load writes the snapshot, later ones use it.
        snapshotting = Repository(store, snapshots, codec, snapshot_every=1, cache_size=0)
        await snapshotting.load(kind, stream_id)
        from_snapshot = []
        for _ in range(max(repeats, 20)):
            started = time.perf_counter()
            again = await snapshotting.load(kind, stream_id)
            from_snapshot.append(time.perf_counter() - started)
        if again != loaded:
            raise RuntimeError("snapshot load differs from full replay")
    finally:
        await store.close()
        await snapshots.close()
    full_s = statistics.median(full)
    return {
        "benchmark": "load",
        "store": url.split(":", 1)[0],
        "shards": url.count(",") + 1,
        "history": size,
        "load_ms_full": round(full_s * 1000, 3),
        "load_ms_snapshot": round(statistics.median(from_snapshot) * 1000, 4),
        "rehydrate_events_per_s": round(size / full_s),
    }
