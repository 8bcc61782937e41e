"""``aq bench read``: reading the global log page by page, each event decoded to its type."""

from __future__ import annotations

import time
from typing import Any

from msgspec.structs import replace

from adventure_quest.app.aggregates import event_codec
from adventure_quest.bench.harness import Progress
from adventure_quest.domain.events import PlayerMoved
from adventure_quest.store.envelope import ANY
from adventure_quest.store.urls import open_event_store
from adventure_quest.store.uuid7 import uuid7

PAGE = 1000
WRITE_BATCH = 1000


async def run(url: str, events: int, quiet: bool) -> dict[str, Any]:
    store = open_event_store(url)
    codec = event_codec()
    try:
        logs = store.logs()
        start_at = [await log.head() for log in logs]
        progress = Progress("writing log", events, quiet)
        event = codec.encode(PlayerMoved("village_square", "market_street", "north"))
        written = 0
        while written < events:
            count = min(WRITE_BATCH, events - written)
            batch = [replace(event, event_id=uuid7()) for _ in range(count)]
            await store.append(f"bench-{uuid7()}", ANY, batch)
            written += count
            progress.update(written)
        progress.done()
        decode = codec.decode
        seen = 0
        started = time.perf_counter()
        for log, start in zip(logs, start_at, strict=True):
            after = start
            while page := await log.read_all(after, PAGE):
                for recorded in page:
                    decode(recorded)
                seen += len(page)
                after = page[-1].position
        elapsed = time.perf_counter() - started
    finally:
        await store.close()
    if seen != events:
        raise RuntimeError(f"read {seen} events, wrote {events}")
    return {
        "benchmark": "read",
        "store": url.split(":", 1)[0],
        "shards": len(logs),
        "events": seen,
        "seconds": round(elapsed, 3),
        "events_per_s": round(seen / elapsed),
    }
