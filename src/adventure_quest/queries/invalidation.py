"""Keeping cached answers true: a commit of the projections drops the answers it changed.

A projection worker calls the listener after each committed batch with the rows it changed; the
cached answers built from those rows are dropped (the TTL is only the safety net) and the
waiters for a consistency token look again.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence, Set

from adventure_quest.projections.model import RowKey
from adventure_quest.queries.cache import CacheBackend
from adventure_quest.queries.consistency import Watch
from adventure_quest.queries.read_side import cache_keys
from adventure_quest.store.envelope import RecordedEvent

log = logging.getLogger(__name__)

Listener = Callable[[Sequence[RecordedEvent], Set[RowKey]], None]


def invalidator(cache: CacheBackend, watch: Watch | None) -> Listener:
    """A runner listener: drop the cached answers a commit changed, wake token waiters."""
    pending: set[asyncio.Task[None]] = set()

    def committed(events: Sequence[RecordedEvent], changed: Set[RowKey]) -> None:
        keys = cache_keys(changed)
        if keys:
            task = asyncio.ensure_future(_invalidate(cache, keys))
            pending.add(task)
            task.add_done_callback(pending.discard)
        if watch is not None:
            watch.notify()

    return committed


async def _invalidate(cache: CacheBackend, keys: set[str]) -> None:
    try:
        await cache.invalidate(keys)
    except Exception as error:  # the TTL is the safety net; say so
        log.warning("cache invalidation failed (answers may be old until the TTL): %s", error)
