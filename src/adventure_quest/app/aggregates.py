"""How each aggregate type is named, started, evolved and snapshotted: one place for both."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Generic, TypeVar

import msgspec

from adventure_quest.domain import clock, player, room
from adventure_quest.domain.events import EVENT_TYPES, SCHEMA_VERSIONS, Event
from adventure_quest.domain.upcasters import UPCASTERS
from adventure_quest.domain.world import World
from adventure_quest.store.codec import EventCodec
from adventure_quest.store.envelope import stream_key_of

S = TypeVar("S", bound=msgspec.Struct)

_NAMES = uuid.UUID("0b9a6f4e-6a51-4c55-9f3a-0d6a1f2c8e11")


class AggregateType(Generic[S]):
    """Describes one aggregate type to the repository."""

    def __init__(
        self,
        prefix: str,
        state_type: type[S],
        initial: Callable[[str], S],
        evolve: Callable[[S, Event], S],
        snapshot_schema: int,
    ) -> None:
        self.prefix = prefix
        self.state_type = state_type
        self.initial = initial
        self.evolve = evolve
        self.snapshot_schema = snapshot_schema

    def stream_id(self, key: str) -> str:
        return f"{self.prefix}-{key}"

    def key_of(self, stream_id: str) -> str:
        return stream_id.removeprefix(f"{self.prefix}-")


def player_id_for(name: str) -> str:
    """A character's id follows from its name (case-insensitive), so the name is unique."""
    return str(uuid.uuid5(_NAMES, " ".join(name.split()).casefold()))


#: Schema 2 added the achievement counters (rooms visited, items taken...). They summarise the
#: whole history, so a schema 1 snapshot would decode them as zero: it must be replayed instead.
#: 3 added the hash of the character's API token.
PLAYER_SNAPSHOT_SCHEMA = 3
#: 2: rooms remember the last world-clock tick that restocked them.
ROOM_SNAPSHOT_SCHEMA = 2


def player_type() -> AggregateType[player.PlayerState]:
    return AggregateType(
        "player",
        player.PlayerState,
        lambda _: player.PlayerState(),
        player.evolve,
        PLAYER_SNAPSHOT_SCHEMA,
    )


def room_type(world: World) -> AggregateType[room.RoomState]:
    return AggregateType(
        "room",
        room.RoomState,
        lambda stream_id: room.initial_state(world, stream_key_of(stream_id)),
        room.evolve,
        ROOM_SNAPSHOT_SCHEMA,
    )


def clock_type() -> AggregateType[clock.ClockState]:
    return AggregateType("world", clock.ClockState, lambda _: clock.ClockState(), clock.evolve, 1)


def event_codec() -> EventCodec[Event]:
    """The codec for every domain event, with its upcasters."""
    return EventCodec(EVENT_TYPES, SCHEMA_VERSIONS, UPCASTERS)
