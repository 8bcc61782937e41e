"""Rules every event-store adapter applies to an append, in one place."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from adventure_quest.store.envelope import ANY, NO_STREAM, AppendResult, ExpectedVersion, NewEvent
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


def settle_reused_ids(
    stream_id: str,
    events: Sequence[NewEvent],
    found: Mapping[str, tuple[str, int, int]],
    shard: int = 0,
) -> AppendResult:
    """The answer to an append some of whose event ids are already recorded.

    ``found`` maps each recorded id among the append's to ``(stream_id, version, position)``.
    An append whose **first** event id is recorded on the same stream is a repeat: nothing is
    written, and the answer is where the recorded ones of its ids on that stream landed (the
    highest), with ``repeat`` set. That covers a retry of the very same append, and a second
    attempt at a decision whose ids are derived from what it decides (a hand-over's finish):
    the decision may come out longer or shorter the second time (a fight's outcome levels the
    character up, or no longer does), but its first event is the same one. Any other reuse of
    ids (a first id that is new, or ids recorded on another stream) is refused.
    """
    first = found.get(events[0].event_id)
    if first is None or first[0] != stream_id:
        raise InvalidAppendError(f"event ids of this append to {stream_id!r} are already used")
    mine = [
        (version, position) for stream, version, position in found.values() if stream == stream_id
    ]
    version, position = max(mine)
    return AppendResult(stream_id, version, position, repeat=True, shard=shard)
