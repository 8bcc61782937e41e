"""Consistency tokens: where a command's events landed, and waiting for a read model to get there.

A token lists ``shard.partition:position`` entries, comma-separated: for each shard and queue
partition the command's events went to, the log position of its last event there. A read model
has reached a token when, for every entry, the recorded progress of that (shard, partition)
(projections/progress.py, written with each applied batch) is at or past the position.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Mapping

from adventure_quest.projections import progress
from adventure_quest.projections.ports import ReadDatabase
from adventure_quest.queries.errors import InvalidTokenError

Marks = dict[progress.Mark, int]
_ENTRY = re.compile(r"^([0-9]{1,4})\.([0-9]{1,4}):([0-9]{1,18})$")
MAX_ENTRIES = 64
#: A whole token, as the API's parameters declare it (empty: no wait).
TOKEN_PATTERN = (
    r"^([0-9]{1,4}\.[0-9]{1,4}:[0-9]{1,18}(,[0-9]{1,4}\.[0-9]{1,4}:[0-9]{1,18}){0,63})?$"
)


def token_for(landed: Mapping[str, tuple[int, int]], partitions: int) -> Marks:
    """The marks of a command's appends: ``{stream_id: (shard, position)}`` as the store
    answered them (app/tracking.py), counted under the same marks as applied events are."""
    marks: Marks = {}
    for stream_id, (shard, position) in landed.items():
        mark = progress.mark_of(shard, stream_id, partitions)
        marks[mark] = max(marks.get(mark, 0), position)
    return marks


def encode(marks: Marks) -> str:
    return ",".join(f"{s}.{p}:{position}" for (s, p), position in sorted(marks.items()))


def decode(text: str) -> Marks:
    """Parse a token; InvalidTokenError when it cannot be read."""
    marks: Marks = {}
    entries = [e for e in text.split(",") if e.strip()]
    if len(entries) > MAX_ENTRIES:
        raise InvalidTokenError(f"at most {MAX_ENTRIES} entries")
    for entry in entries:
        found = _ENTRY.match(entry.strip())
        if found is None:
            raise InvalidTokenError(
                f"cannot read {entry!r}: entries are shard.partition:position",
            )
        shard, partition, position = (int(g) for g in found.groups())
        marks[(shard, partition)] = max(marks.get((shard, partition), 0), position)
    return marks


def reached(wanted: Marks, have: Marks) -> bool:
    return all(have.get(mark, 0) >= position for mark, position in wanted.items())


async def progress_of(db: ReadDatabase) -> Marks:
    return progress.reached(await db.select(progress.APPLIED))


class Watch:
    """Wakes waiters when this process commits a batch; polls when another process does."""

    def __init__(self, poll_s: float = 0.005) -> None:
        self.poll_s = poll_s
        self._changed = asyncio.Event()

    def notify(self) -> None:
        self._changed.set()
        self._changed = asyncio.Event()

    async def until(self, db: ReadDatabase, wanted: Marks, deadline: float) -> Marks | None:
        """Wait until ``db`` has reached ``wanted`` (its progress), or None at ``deadline``."""
        poll = self.poll_s
        while True:
            have = await progress_of(db)
            if reached(wanted, have):
                return have
            left = deadline - time.monotonic()
            if left <= 0:
                return None
            changed = self._changed
            try:
                async with asyncio.timeout(min(poll, left)):
                    await changed.wait()
            except TimeoutError:
                poll = min(poll * 2, 0.05)
