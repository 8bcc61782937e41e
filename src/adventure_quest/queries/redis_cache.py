"""The shared query cache in Redis: every API process sees one cache, workers invalidate it.

Keys are ``<prefix>e:<key>`` (the entry, with a TTL), ``<prefix>g:<key>`` (its generation, with
a TTL too, renewed while the key is used) and ``<prefix>generations`` (the one counter every
generation comes from). A put is one Lua script that stores the entry only if the generation is
still the one read before the load, so a load racing an invalidation never stores the replaced
answer. A generation that expired is made anew from the counter, never repeating a number, and
a put whose generation is gone is refused: generations are bounded without a stale answer.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import msgspec
import redis.asyncio as aioredis
from redis.exceptions import RedisError

from adventure_quest.queries.cache import Entry
from adventure_quest.store.errors import StoreUnavailableError

_GENERATION = """
local generation = redis.call('GET', KEYS[1])
if generation then
  redis.call('PEXPIRE', KEYS[1], ARGV[1])
  return generation
end
generation = redis.call('INCR', KEYS[2])
redis.call('SET', KEYS[1], generation, 'PX', ARGV[1])
return generation
"""

_PUT = """
local generation = redis.call('GET', KEYS[2])
if generation and generation == ARGV[1] then
  redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3])
  return 1
end
return 0
"""

_INVALIDATE = """
for i = 2, #KEYS, 2 do
  redis.call('SET', KEYS[i], redis.call('INCR', KEYS[1]), 'PX', ARGV[1])
  redis.call('DEL', KEYS[i + 1])
end
return 0
"""

#: How long an unused key's generation is kept (any time is safe: see the module docstring).
GENERATION_TTL_S = 600.0

_codec_encoder = msgspec.msgpack.Encoder()
_codec_decoder = msgspec.msgpack.Decoder(Entry)


class RedisCache:
    """A CacheBackend over one Redis server (``redis://HOST:PORT[/DB]``)."""

    def __init__(
        self,
        url: str,
        ttl_s: float,
        prefix: str = "aq:cache:",
        *,
        generation_ttl_s: float = GENERATION_TTL_S,
    ) -> None:
        self.ttl_ms = max(1, int(ttl_s * 1000))
        self.generation_ttl_ms = max(self.ttl_ms, int(generation_ttl_s * 1000))
        self.prefix = prefix
        self._redis: Any = aioredis.Redis.from_url(url, socket_timeout=2.0)
        self._generation_of = self._redis.register_script(_GENERATION)
        self._put = self._redis.register_script(_PUT)
        self._invalidate = self._redis.register_script(_INVALIDATE)

    def _entry(self, key: str) -> str:
        return f"{self.prefix}e:{key}"

    def _generation(self, key: str) -> str:
        return f"{self.prefix}g:{key}"

    async def get(self, key: str) -> Entry | None:
        try:
            raw = await self._redis.get(self._entry(key))
        except RedisError as error:
            raise StoreUnavailableError(f"redis: {error}") from error
        return None if raw is None else _codec_decoder.decode(raw)

    async def generation(self, key: str) -> int:
        try:
            raw = await self._generation_of(
                keys=[self._generation(key), f"{self.prefix}generations"],
                args=[self.generation_ttl_ms],
            )
        except RedisError as error:
            raise StoreUnavailableError(f"redis: {error}") from error
        return int(raw)

    async def put(self, key: str, entry: Entry, generation: int) -> None:
        try:
            await self._put(
                keys=[self._entry(key), self._generation(key)],
                args=[str(generation), _codec_encoder.encode(entry), self.ttl_ms],
            )
        except RedisError as error:
            raise StoreUnavailableError(f"redis: {error}") from error

    async def invalidate(self, keys: Iterable[str]) -> None:
        keys = list(keys)
        if not keys:
            return
        named = [f"{self.prefix}generations"]
        for key in keys:
            named += [self._generation(key), self._entry(key)]
        try:
            await self._invalidate(keys=named, args=[self.generation_ttl_ms])
        except RedisError as error:
            raise StoreUnavailableError(f"redis: {error}") from error

    async def clear(self) -> None:
        try:
            async for found in self._redis.scan_iter(match=f"{self.prefix}e:*", count=1000):
                key = found.decode().removeprefix(f"{self.prefix}e:")
                await self.invalidate([key])
        except RedisError as error:
            raise StoreUnavailableError(f"redis: {error}") from error

    async def close(self) -> None:
        await self._redis.aclose()
