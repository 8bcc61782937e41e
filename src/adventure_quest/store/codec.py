"""Turn typed events into stored payloads and back, upcasting old payload schemas on read."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any, Generic, TypeVar

import msgspec

from adventure_quest.store.envelope import Metadata, NewEvent, RecordedEvent
from adventure_quest.store.errors import StoreError

E = TypeVar("E", bound=msgspec.Struct)
_NO_METADATA = Metadata()
Upcaster = Callable[[dict[str, Any]], dict[str, Any]]


class UnknownEventError(StoreError):
    """A stored event whose type or schema version this code cannot read."""

    code = "unknown_event"


class EventCodec(Generic[E]):
    """Encodes events as JSON payloads; decodes them, running upcasters for older schemas.

    ``upcasters[(event_type, v)]`` turns a payload of schema ``v`` into schema ``v + 1``.
    """

    def __init__(
        self,
        types: Mapping[str, type[E]],
        versions: Mapping[str, int],
        upcasters: Mapping[tuple[str, int], Upcaster],
    ) -> None:
        self._versions = {name: versions.get(name, 1) for name in types}
        self._decoders = {name: msgspec.json.Decoder(cls) for name, cls in types.items()}
        self._types = dict(types)
        self._upcasters = dict(upcasters)
        self._encode = msgspec.json.Encoder().encode
        for (name, version), _ in self._upcasters.items():
            if name not in self._types or version >= self._versions[name]:
                raise ValueError(f"upcaster for {name} v{version} has no newer schema to reach")

    def encode(self, event: E, metadata: Metadata = _NO_METADATA) -> NewEvent:
        """A NewEvent carrying ``event`` under its current schema version."""
        name = type(event).__name__
        return NewEvent(name, self._encode(event), self._versions[name], metadata)

    def decode(self, recorded: RecordedEvent) -> E:
        """The typed event, upcast to the current schema when stored under an older one."""
        name = recorded.event_type
        decoder = self._decoders.get(name)
        if decoder is None:
            raise UnknownEventError(f"unknown event type {name!r} at {recorded.stream_id}")
        current = self._versions[name]
        if recorded.schema_version == current:
            return decoder.decode(recorded.payload)
        return self._upcast(recorded, current)

    def decode_all(self, records: Sequence[RecordedEvent]) -> list[E]:
        """``decode`` of each, in order (the first that cannot be decoded raises)."""
        decoders, versions, decode = self._decoders, self._versions, self.decode
        events: list[E] = []
        for recorded in records:
            decoder = decoders.get(recorded.event_type)
            if decoder is not None and recorded.schema_version == versions[recorded.event_type]:
                events.append(decoder.decode(recorded.payload))
            else:
                events.append(decode(recorded))  # upcast, or say why it cannot be decoded
        return events

    def _upcast(self, recorded: RecordedEvent, current: int) -> E:
        name, version = recorded.event_type, recorded.schema_version
        if version > current:
            raise UnknownEventError(
                f"{name} v{version} at {recorded.stream_id} is newer than this code (v{current})"
            )
        payload: dict[str, Any] = msgspec.json.decode(recorded.payload)
        while version < current:
            upcaster = self._upcasters.get((name, version))
            if upcaster is None:
                raise UnknownEventError(f"no upcaster for {name} v{version}")
            payload = upcaster(payload)
            version += 1
        return msgspec.convert(payload, self._types[name])

    def to_builtins(self, recorded: RecordedEvent) -> dict[str, Any]:
        """The decoded (and upcast) payload as plain data, for printing."""
        result: dict[str, Any] = msgspec.to_builtins(self.decode(recorded))
        return result
