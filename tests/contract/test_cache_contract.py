"""The query-cache contract, run against every backend: the in-process one and Redis.

Redis is the real server at 127.0.0.1:6379 (each test under its own key prefix); it is never
mocked, and an unreachable server fails the tests. Single flight (QueryCache) runs over both.
"""

from __future__ import annotations

import asyncio
import uuid

import pytest

from adventure_quest.queries.cache import CacheBackend, Entry, MemoryCache, QueryCache
from adventure_quest.queries.redis_cache import RedisCache

REDIS_URL = "redis://127.0.0.1:6379/0"
BACKENDS = ["memory", "redis"]


def backend_for(kind: str, ttl_s: float = 30.0) -> CacheBackend:
    if kind == "memory":
        return MemoryCache(ttl_s)
    # A fresh prefix per test: tests never see each other's keys.
    return RedisCache(REDIS_URL, ttl_s, prefix=f"aq:test:{uuid.uuid4().hex}:")


def entry(body: bytes) -> Entry:
    return Entry(body, "0.0:1")


@pytest.mark.parametrize("kind", BACKENDS)
async def test_a_stored_entry_is_found_until_invalidated(kind: str) -> None:
    cache = backend_for(kind)
    try:
        await cache.put("player:a", entry(b"one"), await cache.generation("player:a"))
        assert await cache.get("player:a") == entry(b"one")
        await cache.invalidate(["player:a"])
        assert await cache.get("player:a") is None
    finally:
        await cache.close()


@pytest.mark.parametrize("kind", BACKENDS)
async def test_a_load_that_began_before_an_invalidation_is_not_stored(kind: str) -> None:
    cache = backend_for(kind)
    try:
        generation = await cache.generation("room:x")
        await cache.invalidate(["room:x"])  # a commit lands while the load reads old rows
        await cache.put("room:x", entry(b"old"), generation)
        assert await cache.get("room:x") is None
        await cache.put("room:x", entry(b"new"), await cache.generation("room:x"))
        assert await cache.get("room:x") == entry(b"new")
    finally:
        await cache.close()


@pytest.mark.parametrize("kind", BACKENDS)
async def test_entries_expire_after_the_ttl(kind: str) -> None:
    cache = backend_for(kind, ttl_s=0.05)
    try:
        await cache.put("world", entry(b"w"), 0)
        assert await cache.get("world") is not None
        await asyncio.sleep(0.12)
        assert await cache.get("world") is None
    finally:
        await cache.close()


@pytest.mark.parametrize("kind", BACKENDS)
async def test_clear_drops_everything(kind: str) -> None:
    cache = backend_for(kind)
    try:
        for key in ("a", "b", "c"):
            await cache.put(key, entry(key.encode()), 0)
        await cache.clear()
        assert [await cache.get(k) for k in ("a", "b", "c")] == [None, None, None]
    finally:
        await cache.close()


@pytest.mark.parametrize("kind", BACKENDS)
async def test_concurrent_misses_of_one_key_share_one_load(kind: str) -> None:
    cache = QueryCache(backend_for(kind))
    loads = 0

    async def load() -> Entry:
        nonlocal loads
        loads += 1
        await asyncio.sleep(0.05)
        return entry(b"loaded")

    try:
        answers = await asyncio.gather(*(cache.fetch("k", load) for _ in range(50)))
        assert loads == 1
        assert {a.body for a in answers} == {b"loaded"}
        again = await cache.fetch("k", load)
        assert (again.body, loads, cache.stats.hits) == (b"loaded", 1, 1)
    finally:
        await cache.backend.close()
