"""Rules every event-store adapter applies to an append, in one place."""

from __future__ import annotations

from collections.abc import Sequence

from adventure_quest.store.envelope import ANY, NO_STREAM, ExpectedVersion, NewEvent
from adventure_quest.store.errors import ConcurrencyError, InvalidAppendError

MAX_STREAM_ID_LENGTH = 200
MAX_EVENTS_PER_APPEND = 10_000


def validate_append(stream_id: str, expected: ExpectedVersion, events: Sequence[NewEvent]) -> None:
    """Reject a malformed append before it reaches storage."""
    if not stream_id or len(stream_id) > MAX_STREAM_ID_LENGTH or not stream_id.isprintable():
        raise InvalidAppendError(f"invalid stream id {stream_id!r}")
    if expected < ANY:
        raise InvalidAppendError(f"invalid expected version {expected}")
    if not events:
        raise InvalidAppendError(f"append to {stream_id!r} has no events")
    if len(events) > MAX_EVENTS_PER_APPEND:
        raise InvalidAppendError(f"append of {len(events)} events exceeds {MAX_EVENTS_PER_APPEND}")


def check_expected(stream_id: str, expected: ExpectedVersion, actual: int) -> None:
    """Raise ConcurrencyError unless a stream at ``actual`` satisfies ``expected``."""
    if expected == ANY:
        return
    if expected == NO_STREAM and actual == NO_STREAM:
        return
    if expected != actual:
        raise ConcurrencyError(stream_id, expected, actual)
