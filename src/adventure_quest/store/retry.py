"""The one back-off of every long-running part that waits out a backing service.

Relays, projection workers, process managers, the world clock and the room feed each run a loop
that must outlive an outage of the store, the read database or the queue. They all wait the
same way, with a ``Backoff``: exponential from ``base_s`` to ``cap_s`` with "equal jitter" (half
the step, plus a random part of the other half: parts that failed together do not retry in
step), each wait cut short when the part is told to stop. And they all say so the same way: one
warning when an outage begins, a reminder at most every ``remind_s`` while it lasts, one line
when it ends, instead of a line per attempt (a worker used to write about a thousand lines in
15 s with NATS down).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import random
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

T = TypeVar("T")

log = logging.getLogger(__name__)

BASE_S = 0.05
CAP_S = 5.0
REMIND_S = 60.0


class Backoff:
    """How one part waits between attempts while a service it needs is failing."""

    def __init__(
        self,
        name: str,
        *,
        base_s: float = BASE_S,
        cap_s: float = CAP_S,
        remind_s: float = REMIND_S,
        logger: logging.Logger | None = None,
        clock: Callable[[], float] = time.monotonic,
        jitter: Callable[[], float] = random.random,
    ) -> None:
        self.name = name
        self.base_s = base_s
        self.cap_s = cap_s
        self.remind_s = remind_s
        self.log = logger or log
        self.clock = clock
        self.jitter = jitter
        #: Failed attempts since the part started (all outages).
        self.failures = 0
        #: Failed attempts of the outage going on now (0: none).
        self.streak = 0
        self._began = 0.0
        self._reminded = 0.0

    def delay(self) -> float:
        """The wait after the ``streak``-th failure in a row: in [step/2, step]."""
        step = min(self.cap_s, math.ldexp(self.base_s, min(self.streak - 1, 32)))
        return step / 2 + self.jitter() * step / 2

    def failed(self, error: BaseException) -> float:
        """Count a failed attempt, say so if it starts an outage (or is due a reminder); the
        time to wait before the next attempt."""
        now = self.clock()
        self.failures += 1
        self.streak += 1
        if self.streak == 1:
            self._began = self._reminded = now
            self.log.warning("%s: %s; retrying with back-off", self.name, error)
        elif now - self._reminded >= self.remind_s:
            self._reminded = now
            self.log.warning(
                "%s: still failing after %d attempts in %.0f s: %s",
                self.name,
                self.streak,
                now - self._began,
                error,
            )
        return self.delay()

    def succeeded(self) -> None:
        """An attempt worked: an outage that was going on is over (said once)."""
        if self.streak:
            self.log.info(
                "%s: recovered after %d failed attempts in %.1f s",
                self.name,
                self.streak,
                self.clock() - self._began,
            )
            self.streak = 0

    async def wait(self, error: BaseException, stop: asyncio.Event | None = None) -> None:
        """``failed``, then wait its delay, or until ``stop`` is set."""
        delay = self.failed(error)
        if stop is None:
            await asyncio.sleep(delay)
            return
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(delay):
                await stop.wait()


async def until_done(
    attempt: Callable[[], Awaitable[T]],
    backoff: Backoff,
    stop: asyncio.Event,
    transient: tuple[type[BaseException], ...],
) -> T | None:
    """``attempt`` until it succeeds (its result) or ``stop`` is set (None), waiting out the
    ``transient`` failures; any other error is raised."""
    while not stop.is_set():
        try:
            result = await attempt()
        except transient as error:
            await backoff.wait(error, stop)
        else:
            backoff.succeeded()
            return result
    return None
