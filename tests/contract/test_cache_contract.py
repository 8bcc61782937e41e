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
        await cache.put("world", entry(b"w"), await cache.generation("world"))
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
            await cache.put(key, entry(key.encode()), await cache.generation(key))
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


@pytest.mark.parametrize("kind", BACKENDS)
async def test_a_generation_never_read_is_no_generation(kind: str) -> None:
    cache = backend_for(kind)
    try:
        await cache.put("room:y", entry(b"guessed"), 0)  # 0 was never handed out
        await cache.put("room:y", entry(b"guessed"), 1)
        assert await cache.get("room:y") is None
    finally:
        await cache.close()


async def test_a_generation_forgotten_during_a_load_refuses_its_put_in_memory() -> None:
    cache = MemoryCache(30.0, capacity=2)  # keeps 4 generations
    generation = await cache.generation("room:x")
    await cache.invalidate(["room:x"])  # a commit lands while the load reads old rows...
    for n in range(10):  # ...and so many other keys are used that room:x's is evicted
        await cache.generation(f"other:{n}")
    assert len(cache._generations) == cache.generations_capacity == 4
    await cache.put("room:x", entry(b"old"), generation)
    assert await cache.get("room:x") is None
    await cache.put("room:x", entry(b"new"), await cache.generation("room:x"))
    assert await cache.get("room:x") == entry(b"new")


async def test_a_generation_expired_during_a_load_refuses_its_put_in_redis() -> None:
    prefix = f"aq:test:{uuid.uuid4().hex}:"
    cache = RedisCache(REDIS_URL, 0.001, prefix=prefix, generation_ttl_s=0.05)
    try:
        generation = await cache.generation("room:x")
        await cache.invalidate(["room:x"])
        await asyncio.sleep(0.12)  # the invalidated generation expires: the key is unused
        assert await cache._redis.exists(f"{prefix}g:room:x") == 0
        await cache.put("room:x", entry(b"old"), generation)
        assert await cache._redis.exists(f"{prefix}e:room:x") == 0
        fresh = await cache.generation("room:x")
        assert fresh > generation  # made anew from the counter: never a number seen before
    finally:
        await cache.close()


async def test_every_generation_key_in_redis_has_a_ttl() -> None:
    prefix = f"aq:test:{uuid.uuid4().hex}:"
    cache = RedisCache(REDIS_URL, 30.0, prefix=prefix)
    try:
        await cache.generation("a")
        await cache.invalidate(["b", "c"])
        for key in ("a", "b", "c"):
            ttl_ms = await cache._redis.pttl(f"{prefix}g:{key}")
            assert 0 < ttl_ms <= 600_000, key
    finally:
        await cache.close()
