"""Where a command's appends landed, collected per request (for consistency tokens).

A handler opens ``track_appends()``; every append the repository makes inside it (in the same
task, or tasks it starts) is recorded as stream id -> (shard, log position of its last event),
as the store answered it (``AppendResult``). An update that appends nothing (another writer got
there first: the hand-over manager finished the hand-over) records where the event its state
stands at lies, so the token covers what the answer shows (invariant 10).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar

#: stream id -> (shard, position): where the last of a stream's events in this request lies.
Landed = dict[str, tuple[int, int]]

_appended: ContextVar[Landed | None] = ContextVar("aq_appended", default=None)


@contextmanager
def track_appends() -> Iterator[Landed]:
    """Collect ``{stream_id: (shard, position)}`` of every append made inside the block."""
    landed: Landed = {}
    token = _appended.set(landed)
    try:
        yield landed
    finally:
        _appended.reset(token)


def appended(stream_id: str, shard: int, position: int) -> None:
    """Record an append, when someone is tracking (a stream's highest position wins)."""
    landed = _appended.get()
    if landed is not None and position > landed.get(stream_id, (shard, 0))[1]:
        landed[stream_id] = (shard, position)


def active() -> bool:
    """Whether someone is tracking appends here."""
    return _appended.get() is not None
