"""The rate limits' buckets in Redis, shared by every API process that uses the same Redis.

Chosen by the composition root (bootstrap/parts.py) when the cache is Redis; keys are
``<cache prefix>rl:<kind>:<who>``, a hash (tokens, stamp) per bucket. One Lua script refills,
spends and stores a bucket atomically, on Redis's clock (``TIME``), so that processes whose
clocks disagree still share one bucket; each key expires once its bucket would be full again
(a missing bucket is a full one), so idle clients leave nothing behind.

Redis unreachable: commands are not refused for it. The buckets of this process take over
(``fallback``) and a warning is logged, at most once a minute: the limits then hold per process
instead of across them, until Redis answers again (tried again a second after each failure, so
an outage costs a command no more than one failed attempt a second).
"""

from __future__ import annotations

import logging
import time
from typing import Any

import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import RedisError

from adventure_quest.api.limits import Buckets
from adventure_quest.config import Rate

log = logging.getLogger(__name__)

# Numbers go in and out as strings: a Lua number returned to Redis is cut to an integer.
_TAKE = """
local clock = redis.call('TIME')
local now = tonumber(clock[1]) + tonumber(clock[2]) / 1000000
local per_s, burst = tonumber(ARGV[1]), tonumber(ARGV[2])
local held = redis.call('HMGET', KEYS[1], 'tokens', 'stamp')
local tokens, stamp = tonumber(held[1]), tonumber(held[2])
if tokens == nil or stamp == nil then
  tokens, stamp = burst, now
end
tokens = math.min(burst, tokens + math.max(0, now - stamp) * per_s)
local wait = 0
if tokens >= 1 then
  tokens = tokens - 1
else
  wait = (1 - tokens) / per_s
end
redis.call('HSET', KEYS[1], 'tokens', string.format('%.17g', tokens),
           'stamp', string.format('%.17g', now))
redis.call('PEXPIRE', KEYS[1], math.ceil((burst - tokens) / per_s * 1000) + 1000)
return string.format('%.17g', wait)
"""

#: Seconds between two warnings that Redis is unreachable, and between two tries of it.
WARN_EVERY_S = 60.0
RETRY_AFTER_S = 1.0


class RedisBuckets:
    """Buckets over one Redis server (``redis://HOST:PORT[/DB]``); ``fallback`` while it fails."""

    def __init__(self, url: str, prefix: str, fallback: Buckets) -> None:
        self.prefix = f"{prefix}rl:"
        self.fallback = fallback
        # Short timeouts and no retries of its own: a command waits for its limit briefly, and
        # the fallback is the retry.
        self._redis: Any = aioredis.Redis.from_url(
            url, socket_timeout=0.5, socket_connect_timeout=0.5, retry=Retry(NoBackoff(), 0)
        )
        self._take = self._redis.register_script(_TAKE)
        self._down_until = 0.0
        self._warned_at = -WARN_EVERY_S
        self._down = False

    async def take(self, key: str, rate: Rate) -> float:
        now = time.monotonic()
        if now < self._down_until:
            return await self.fallback.take(key, rate)
        try:
            wait = await self._take(keys=[self.prefix + key], args=[repr(rate.per_s), rate.burst])
        except RedisError as error:
            self._failed(now, error)
            return await self.fallback.take(key, rate)
        if self._down:
            self._down = False
            log.warning("rate limits: Redis answers again; the buckets are shared again")
        return float(wait)

    def _failed(self, now: float, error: RedisError) -> None:
        self._down = True
        self._down_until = now + RETRY_AFTER_S
        if now - self._warned_at >= WARN_EVERY_S:
            self._warned_at = now
            log.warning(
                "rate limits: Redis is unreachable (%s); counting in this process, so each API "
                "process allows the limit on its own until Redis answers",
                error,
            )

    async def close(self) -> None:
        await self._redis.aclose()
        await self.fallback.close()
