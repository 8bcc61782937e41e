"""One transaction's events, and the work on them every projection can share.

Each projection keeps its own applied versions, so each gets its own plan: which events are
duplicates, which missing ones (a gap) to read from the store first. Projections usually stand
at the same versions, so they usually share one plan; and each event is decoded once, however
many projections apply it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import cast

import msgspec

from adventure_quest.domain.events import Event
from adventure_quest.projections.model import Decoded, Memo
from adventure_quest.store.codec import EventCodec
from adventure_quest.store.envelope import RecordedEvent
from adventure_quest.store.ports import EventStore


class Plan(msgspec.Struct):
    """What a batch asks of a projection, given the versions it has applied."""

    todo: list[RecordedEvent] = msgspec.field(default_factory=list)
    #: The versions of the streams that move, once ``todo`` is applied.
    versions: dict[str, int] = msgspec.field(default_factory=dict)
    duplicates: int = 0
    gap_events: int = 0
    #: ``todo`` decoded, once per plan (see ``Batch.decoded``).
    decoded: list[tuple[Event | str, RecordedEvent]] | None = None
    #: The same when every event decodes (what the fast path takes), else None.
    clean: list[Decoded] | None = None


class Batch:
    """The events of one read-database transaction."""

    def __init__(self, events: Sequence[RecordedEvent], codec: EventCodec[Event]) -> None:
        self.events = events
        self.streams = list(dict.fromkeys(recorded.stream_id for recorded in events))
        self._codec = codec
        #: By event id: the event, or why it cannot be decoded (built when a second plan needs it).
        self._decoded: dict[str, Event | str] = {}
        #: The first plan's events and their decoded forms.
        self._first: tuple[list[RecordedEvent], list[Event | str]] | None = None
        #: Plans made so far, with the applied versions they were made from.
        self._plans: list[tuple[dict[str, int], Plan]] = []
        #: Shared by the projections applying this batch (``apply_all``).
        self.memo: Memo = {}

    async def plan(self, applied: dict[str, int], store: EventStore) -> Plan:
        """What to apply after the versions ``applied``: duplicates out, gaps read in."""
        for versions, plan in self._plans:
            if versions == applied:
                return plan
        plan = Plan()
        last = dict(applied)
        for recorded in self.events:
            stream, version = recorded.stream_id, recorded.version
            seen = last.get(stream, 0)
            if version <= seen:
                plan.duplicates += 1
                continue
            if version > seen + 1:
                missing = await store.read_stream(stream, seen + 1, version - 1)
                plan.gap_events += len(missing)
                plan.todo += missing
            plan.todo.append(recorded)
            last[stream] = version
        plan.versions = {s: v for s, v in last.items() if applied.get(s) != v}
        self._plans.append((applied, plan))
        return plan

    def decoded(self, plan: Plan) -> list[tuple[Event | str, RecordedEvent]]:
        """Each event of the plan with its decoded form, or why it cannot be decoded."""
        if plan.decoded is None:
            todo = plan.todo
            if self._first is None:  # the first plan: usually the only one
                try:
                    events: list[Event | str] = list(self._codec.decode_all(todo))
                except Exception:
                    events = [self._decode(recorded) for recorded in todo]
                self._first = (todo, events)
            else:
                known = self._known()
                events = [
                    known[r.event_id] if r.event_id in known else self._decode(r) for r in todo
                ]
            plan.decoded = list(zip(events, todo, strict=True))
            if not any(isinstance(event, str) for event in events):
                plan.clean = cast(list[Decoded], plan.decoded)
        return plan.decoded

    def _known(self) -> dict[str, Event | str]:
        """By event id, what the first plan decoded (and any decoded since)."""
        if self._first is not None and not self._decoded:
            todo, events = self._first
            self._decoded.update(zip((r.event_id for r in todo), events, strict=True))
        return self._decoded

    def _decode(self, recorded: RecordedEvent) -> Event | str:
        event: Event | str
        try:
            event = self._codec.decode(recorded)
        except Exception as error:
            event = f"cannot decode: {error!r}"
        self._decoded[recorded.event_id] = event
        return event
