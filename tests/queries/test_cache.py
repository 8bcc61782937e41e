"""The query cache beyond its backends' contract (tests/contract/test_cache_contract.py).

Freshness checks and failed loads, over the in-process backend.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from adventure_quest.queries.cache import Entry, MemoryCache, QueryCache


async def test_an_entry_older_than_asked_is_loaded_again() -> None:
    cache = QueryCache(MemoryCache(30))
    bodies = iter([b"first", b"second"])

    async def load() -> Entry:
        return Entry(next(bodies), "0.0:5")

    first = await cache.fetch("k", load)
    newer_only: Callable[[Entry], bool] = lambda e: e.body != b"first"  # noqa: E731
    second = await cache.fetch("k", load, newer_only)
    assert (first.body, second.body) == (b"first", b"second")


async def test_a_failed_load_is_not_cached_and_every_waiter_sees_the_error() -> None:
    cache = QueryCache(MemoryCache(30))

    async def load() -> Entry:
        await asyncio.sleep(0.01)
        raise RuntimeError("read database down")

    results = await asyncio.gather(
        *(cache.fetch("k", load) for _ in range(5)), return_exceptions=True
    )
    assert all(isinstance(r, RuntimeError) for r in results)
    assert await cache.backend.get("k") is None


async def test_the_none_cache_keeps_nothing() -> None:
    from adventure_quest.queries.cache import Entry, NoCache, open_cache

    cache = open_cache("none://", 30.0)
    assert isinstance(cache, NoCache)
    generation = await cache.generation("k")
    await cache.put("k", Entry(b"{}", "0.1:1"), generation)
    assert await cache.get("k") is None
    await cache.invalidate(["k"])
    await cache.clear()
    await cache.close()
