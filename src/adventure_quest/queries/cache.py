"""The query cache: in process (TTL, bounded) by default, Redis when shared between processes.

Entries are invalidated when a projection commits a change to the rows behind them; the TTL is
only a safety net. Each key has a generation, bumped by every invalidation: a load that began
before a change is not stored after it (it would put back what the change replaced). Concurrent
misses of one key share one load (single flight).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Iterable
from typing import Protocol

import msgspec

from adventure_quest.store.errors import StoreUnavailableError, StoreUrlError

log = logging.getLogger(__name__)


class Entry(msgspec.Struct, frozen=True):
    """A cached answer: the encoded body and the read model's progress when it was read."""

    body: bytes
    reached: str


class CacheBackend(Protocol):
    """Where entries live; every method is safe to call concurrently."""

    async def get(self, key: str) -> Entry | None:
        """The live entry, or None."""
        ...

    async def generation(self, key: str) -> int:
        """A number naming ``key``'s current version, read before a load: no two versions of
        a key ever get the same one, even after its generation was forgotten (see put)."""
        ...

    async def put(self, key: str, entry: Entry, generation: int) -> None:
        """Store ``entry`` unless ``key`` was invalidated since ``generation`` was read, or its
        generation was forgotten meanwhile (generations are bounded: evicted or expired, a
        generation is made anew, from a counter that never repeats one)."""
        ...

    async def invalidate(self, keys: Iterable[str]) -> None:
        """Drop these keys and bump their generations."""
        ...

    async def clear(self) -> None:
        """Drop everything (after a rebuild swapped a read model)."""
        ...

    async def close(self) -> None: ...


class MemoryCache:
    """A bounded LRU map with a TTL, for one process; its generations are a bounded LRU too.

    A generation is a number from one counter of the cache, given to a key when it is first
    asked for and again at each invalidation; a key whose generation was evicted gets a new
    one, so a load that began before the eviction cannot be stored (its number is gone).
    """

    def __init__(self, ttl_s: float, capacity: int = 100_000) -> None:
        self.ttl_s = ttl_s
        self.capacity = capacity
        #: Generations kept (the least recently used beyond it are forgotten).
        self.generations_capacity = max(2 * capacity, 1)
        self._entries: OrderedDict[str, tuple[float, Entry]] = OrderedDict()
        self._generations: OrderedDict[str, int] = OrderedDict()
        self._counter = itertools.count(1)

    async def get(self, key: str) -> Entry | None:
        found = self._entries.get(key)
        if found is None:
            return None
        expires, entry = found
        if expires < time.monotonic():
            del self._entries[key]
            return None
        return entry

    async def generation(self, key: str) -> int:
        found = self._generations.get(key)
        if found is None:
            return self._renew(key)
        self._generations.move_to_end(key)
        return found

    def _renew(self, key: str) -> int:
        generation = self._generations[key] = next(self._counter)
        self._generations.move_to_end(key)
        while len(self._generations) > self.generations_capacity:
            self._generations.popitem(last=False)
        return generation

    async def put(self, key: str, entry: Entry, generation: int) -> None:
        if self._generations.get(key) != generation or self.capacity <= 0:
            return
        self._entries[key] = (time.monotonic() + self.ttl_s, entry)
        self._entries.move_to_end(key)
        while len(self._entries) > self.capacity:
            self._entries.popitem(last=False)

    def drop(self, keys: Iterable[str]) -> None:
        for key in keys:
            self._entries.pop(key, None)
            self._renew(key)

    async def invalidate(self, keys: Iterable[str]) -> None:
        self.drop(keys)

    async def clear(self) -> None:
        self.drop(list(self._entries))

    async def close(self) -> None:
        self._entries.clear()


class Stats(msgspec.Struct):
    hits: int = 0
    misses: int = 0
    loads: int = 0
    #: Answers read past a cache that could not be reached (not stored either).
    bypassed: int = 0

    @property
    def hit_ratio(self) -> float:
        asked = self.hits + self.misses
        return self.hits / asked if asked else 0.0


class QueryCache:
    """Looks up, loads once per missing key, and counts hits and misses.

    A backend that cannot be reached (Redis down) is read past: the answer is loaded from the
    read database and not stored, so queries go on, fresh, while the cache is away (logged once
    per outage, counted in ``stats.bypassed``).
    """

    def __init__(self, backend: CacheBackend) -> None:
        self.backend = backend
        self.stats = Stats()
        self._flights: dict[str, asyncio.Future[Entry]] = {}
        self._outage = False

    def _bypass_said(self, error: Exception) -> None:
        if not self._outage:
            self._outage = True
            log.warning("query cache: %s; answering from the read database meanwhile", error)

    async def _bypass(self, load: Callable[[], Awaitable[Entry]], error: Exception) -> Entry:
        self._bypass_said(error)
        self.stats.bypassed += 1
        return await load()

    async def fetch(
        self,
        key: str,
        load: Callable[[], Awaitable[Entry]],
        fresh: Callable[[Entry], bool] = lambda _: True,
    ) -> Entry:
        """The cached entry when ``fresh`` accepts it; otherwise one shared load."""
        try:
            entry = await self.backend.get(key)
        except StoreUnavailableError as error:
            return await self._bypass(load, error)
        if self._outage:
            self._outage = False
            log.info("query cache: reachable again")
        if entry is not None and fresh(entry):
            self.stats.hits += 1
            return entry
        self.stats.misses += 1
        flight = self._flights.get(key)
        if flight is not None:
            entry = await asyncio.shield(flight)
            if fresh(entry):
                return entry
        return await self._load(key, load)

    async def _load(self, key: str, load: Callable[[], Awaitable[Entry]]) -> Entry:
        flight: asyncio.Future[Entry] = asyncio.get_running_loop().create_future()
        self._flights[key] = flight
        try:
            try:
                generation: int | None = await self.backend.generation(key)
            except StoreUnavailableError as error:
                generation = None  # not stored: it could not be checked against invalidations
                self._bypass_said(error)
            entry = await load()
            self.stats.loads += 1
            if generation is not None:
                with contextlib.suppress(StoreUnavailableError):
                    await self.backend.put(key, entry, generation)
                    self._outage = False
        except asyncio.CancelledError:
            flight.cancel()
            raise
        except BaseException as error:
            flight.set_exception(error)
            flight.exception()  # retrieved: waiters re-raise it, nobody else must
            raise
        finally:
            if self._flights.get(key) is flight:
                del self._flights[key]
        flight.set_result(entry)
        return entry


def check_cache_url(url: str) -> None:
    """Refuse a cache URL ``open_cache`` would refuse (without connecting)."""
    if url not in ("", "memory://", "none://") and not url.startswith(("redis://", "rediss://")):
        raise StoreUrlError(
            f"unsupported cache URL {url!r}; supported: memory://, none://, redis://HOST:PORT[/DB]"
        )


class NoCache:
    """``none://``: nothing is kept, every query reads the read database (to measure it)."""

    async def get(self, key: str) -> Entry | None:
        return None

    async def generation(self, key: str) -> int:
        return 0

    async def put(self, key: str, entry: Entry, generation: int) -> None:
        return None

    async def invalidate(self, keys: Iterable[str]) -> None:
        return None

    async def clear(self) -> None:
        return None

    async def close(self) -> None:
        return None


def open_cache(url: str, ttl_s: float, prefix: str = "aq:cache:") -> CacheBackend:
    """``memory://`` (in process), ``none://`` (no cache) or ``redis://HOST:PORT[/DB]`` (shared;
    keys under ``prefix``)."""
    check_cache_url(url)
    if url in ("", "memory://"):
        return MemoryCache(ttl_s)
    if url == "none://":
        return NoCache()
    from adventure_quest.queries.redis_cache import RedisCache

    return RedisCache(url, ttl_s, prefix)
