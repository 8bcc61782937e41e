"""Rate limits of the commands: a token bucket per (command, character), or per (``create``,
client address), checked before the command runs, so nothing over a limit is written.

Seen (issue 12): one client could append thousands of ``say`` events a second, and create
characters as fast, each event kept forever. ``ApiContext.command`` calls ``RateLimits.check``
for every command on every lane (the fast lane and the Litestar routes), after the token check:
a request that is not the character's own cannot spend its bucket. Over the limit the answer is
``429 rate_limited`` with ``Retry-After`` (whole seconds, rounded up).

The buckets live in this process (``MemoryBuckets``) or, when the cache is Redis, in Redis
(``api/redis_limits.py``, chosen by the composition root), so every API process spends from
the same buckets.
"""

from __future__ import annotations

import math
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping
from typing import Protocol

from adventure_quest.api.errors import ApiError
from adventure_quest.config import Rate

_UNITS = {"s": "a second", "m": "a minute", "h": "an hour"}


class Buckets(Protocol):
    """Token buckets by key; a bucket not seen before is full."""

    async def take(self, key: str, rate: Rate) -> float:
        """Take a token from ``key``'s bucket: 0.0 if it had one, else the seconds until it
        will (and nothing is taken). Atomic per key, whoever else takes from it."""
        ...

    async def close(self) -> None: ...


def spend(tokens: float, stamp: float, now: float, rate: Rate) -> tuple[float, float]:
    """A request at ``now`` on a bucket that held ``tokens`` at ``stamp``: (the tokens it holds
    after, 0.0 if the request was served, else the seconds until a token will be there)."""
    tokens = min(float(rate.burst), tokens + max(0.0, now - stamp) * rate.per_s)
    if tokens >= 1.0:
        return tokens - 1.0, 0.0
    return tokens, (1.0 - tokens) / rate.per_s


class MemoryBuckets:
    """The buckets of one process: a bounded LRU map, so that it cannot grow without bound.

    A bucket pushed out is the one used least recently, which is in all likelihood full again
    (a full bucket and a missing one are the same); only more than ``capacity`` clients active
    at once could push out one that was not, and that gives its client a full bucket early.
    """

    def __init__(
        self, capacity: int = 100_000, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.capacity = capacity
        self.clock = clock
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()

    def spend(self, key: str, rate: Rate) -> float:
        """``take``, synchronously."""
        now = self.clock()
        found = self._buckets.get(key)
        if found is None:
            tokens, wait = spend(float(rate.burst), now, now, rate)
            if len(self._buckets) >= self.capacity:
                self._buckets.popitem(last=False)
        else:
            tokens, wait = spend(found[0], found[1], now, rate)
            self._buckets.move_to_end(key)
        self._buckets[key] = (tokens, now)
        return wait

    async def take(self, key: str, rate: Rate) -> float:
        return self.spend(key, rate)

    def __len__(self) -> int:
        return len(self._buckets)

    async def close(self) -> None:
        self._buckets.clear()


class RateLimits:
    """The configured limit of each command kind (``Settings.rate_limits``) over the buckets."""

    def __init__(self, limits: Mapping[str, Rate], buckets: Buckets) -> None:
        self.limits = dict(limits)
        self.buckets = buckets

    async def check(self, kind: str, who: str) -> None:
        """Spend a token of ``who``'s ``kind`` bucket, or raise ``429 rate_limited``.

        ``who``: the character id, or the client address for ``create``.
        """
        rate = self.limits.get(kind)
        if rate is None:
            return
        wait = await self.buckets.take(f"{kind}:{who}", rate)
        if wait > 0.0:
            raise refusal(kind, rate, wait)


def refusal(kind: str, rate: Rate, wait: float) -> ApiError:
    """The 429 of a request ``wait`` seconds too early."""
    seconds = max(1, math.ceil(wait))
    whose = "from this address" if kind == "create" else "for this character"
    message = (
        f"too many {kind} commands {whose}: at most {rate.count:g} {_UNITS[rate.unit]}, "
        f"{rate.burst} at once; retry after {seconds} s"
    )
    return ApiError(429, "rate_limited", message, {"Retry-After": str(seconds)})
