"""Waiting for new events without busy polling: a wake-up signal with a polling fallback."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable
from typing import Final

#: However a store is woken, a waiting reader re-reads the head at least this often.
POLL_S: Final = 0.5


class HeadSignal:
    """Readers wait on it; writers (or a LISTEN callback) ``notify`` it after a commit.

    A lost wake-up costs at most ``poll_s``: the waiter re-reads the head on a timer too, which
    also covers writers in other processes that cannot notify this one.
    """

    def __init__(self, poll_s: float = POLL_S) -> None:
        self.poll_s = poll_s
        self._event: asyncio.Event | None = None

    def notify(self) -> None:
        if self._event is not None:
            self._event.set()

    async def wait_for(
        self, head: Callable[[], Awaitable[int]], after_position: int, timeout: float
    ) -> int:
        """The head once it passes ``after_position``, or the head when ``timeout`` runs out."""
        deadline = time.monotonic() + timeout
        if self._event is None:
            self._event = asyncio.Event()
        event = self._event
        while True:
            event.clear()
            current = await head()
            remaining = deadline - time.monotonic()
            if current > after_position or remaining <= 0:
                return current
            # asyncio.timeout, not wait_for: wait_for can swallow a racing cancellation (3.11).
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(min(self.poll_s, remaining)):
                    await event.wait()
