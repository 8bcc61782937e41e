"""Where a command's appends landed, collected per request (for consistency tokens).

A handler opens ``track_appends()``; every append the repository makes inside it (in the same
task, or tasks it starts) is recorded as stream id -> log position of its last event. An update
that appends nothing (another writer got there first: the hand-over manager finished the
hand-over) records the position of the event its state stands at, so the token covers what the
answer shows (invariant 10).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar

_appended: ContextVar[dict[str, int] | None] = ContextVar("aq_appended", default=None)


@contextmanager
def track_appends() -> Iterator[dict[str, int]]:
    """Collect ``{stream_id: position}`` of every append made inside the block."""
    positions: dict[str, int] = {}
    token = _appended.set(positions)
    try:
        yield positions
    finally:
        _appended.reset(token)


def appended(stream_id: str, position: int) -> None:
    """Record an append, when someone is tracking."""
    positions = _appended.get()
    if positions is not None and position > positions.get(stream_id, 0):
        positions[stream_id] = position


def active() -> bool:
    """Whether someone is tracking appends here."""
    return _appended.get() is not None
