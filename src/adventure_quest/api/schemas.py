"""Request and response bodies of the HTTP API: the contract /openapi.json publishes."""

from __future__ import annotations

from typing import Annotated, Any, Literal

import msgspec

from adventure_quest.domain.player import MAX_NAME_LENGTH, MAX_SAY_LENGTH

Words = Annotated[str, msgspec.Meta(min_length=1, max_length=100, examples=["torch"])]


class Strict(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    """Request bodies refuse fields they do not know."""


class CreateCharacter(Strict, frozen=True):
    name: Annotated[str, msgspec.Meta(min_length=1, max_length=MAX_NAME_LENGTH)]


Direction = Literal[
    "north", "south", "east", "west", "up", "down",
    "northeast", "northwest", "southeast", "southwest",
    "n", "s", "e", "w", "u", "d", "ne", "nw", "se", "sw",
]  # fmt: skip


class Move(Strict, frozen=True):
    direction: Direction


class Take(Strict, frozen=True):
    item: Words


class Drop(Strict, frozen=True):
    item: Words


class Use(Strict, frozen=True):
    item: Words


class Attack(Strict, frozen=True):
    target: Words


class Say(Strict, frozen=True):
    text: Annotated[str, msgspec.Meta(min_length=1, max_length=MAX_SAY_LENGTH)]


#: The request bodies, by their schema names in the OpenAPI document.
REQUEST_BODIES = ("CreateCharacter", "Move", "Take", "Drop", "Use", "Attack", "Say")


class ErrorDetail(msgspec.Struct, frozen=True, omit_defaults=True):
    code: str
    message: str
    #: Only on a 500 (``internal``): the id the server logged the error under (api/shield.py).
    request_id: str | None = None


class ErrorBody(msgspec.Struct, frozen=True):
    """Every error answer: a stable machine-readable code and a human message."""

    error: ErrorDetail


class Item(msgspec.Struct, frozen=True):
    item_id: str
    item_key: str
    name: str


class Player(msgspec.Struct, frozen=True):
    """A character as its own command left it (from the write side: always current)."""

    player_id: str
    name: str
    room: str
    level: int
    xp: int
    health: int
    max_health: int
    alive: bool
    inventory: list[Item]
    kills: int = 0
    deaths: int = 0
    achievements: list[str] = []


class EventView(msgspec.Struct, frozen=True):
    type: str
    data: dict[str, Any]


class CommandResult(msgspec.Struct, frozen=True):
    """What a command did. Pass ``consistency`` to a query to read your own write."""

    player: Player
    events: list[EventView]
    messages: list[str]
    consistency: str


class Created(CommandResult, frozen=True):
    """A new character; ``token`` is shown once and authorises its commands (Bearer)."""

    token: str = ""


class HistoryEvent(msgspec.Struct, frozen=True):
    version: int
    position: int
    shard: int
    type: str
    schema_version: int
    recorded_at: float
    data: dict[str, Any]


class History(msgspec.Struct, frozen=True):
    """One page of a stream's events; ask again with ``after=next_after`` while it is set."""

    player_id: str
    events: list[HistoryEvent]
    next_after: int | None


class PastState(msgspec.Struct, frozen=True):
    player_id: str
    version: int
    state: Player


class Health(msgspec.Struct, frozen=True, omit_defaults=True):
    status: str
    #: /readyz: each backing service checked, "ok" or "failed: <why>".
    checks: dict[str, str] = {}
    #: /readyz, when not ready: the names of the checks that failed.
    failing: list[str] = []
