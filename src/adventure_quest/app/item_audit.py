"""Finding item instances recorded in more than one place, and taking the extra copies away.

Hand-overs are finished exactly once (docs/handover.md), but stores written before that may hold
an instance twice: a finish recorded again by a lagging process manager put it into an inventory
a second time, into two inventories, or back onto a floor while someone held it. ``audit`` reads
every shard's log once and the current state of every room and character; ``repair`` appends one
``DuplicateRemoved`` per extra copy, so that every instance is left in the one place its deciding
events (the room giving it, the character dropping or using it, a refused take's return) put it
last.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable

import msgspec

from adventure_quest.app.game import Game
from adventure_quest.domain.events import (
    DuplicateRemoved,
    Event,
    HeldItem,
    ItemDropped,
    ItemPickedUp,
    ItemPutDown,
    ItemUsed,
    MonsterDefeated,
    RoomRestocked,
)
from adventure_quest.store.envelope import Metadata, stream_key_of
from adventure_quest.store.uuid7 import uuid7

#: ("floor", room key) or ("held", player id).
Place = tuple[str, str]
#: The events that decide where an instance goes (finishes only follow them).
_DECIDING = frozenset(
    {"ItemPickedUp", "ItemDropped", "ItemUsed", "ItemPutDown", "MonsterDefeated", "RoomRestocked"}
)
PAGE = 5_000


class Duplicate(msgspec.Struct, frozen=True):
    """An instance found in more than one place (a place twice: twice in one inventory)."""

    item: HeldItem
    places: list[Place]
    keep: Place

    @property
    def extra(self) -> list[Place]:
        """The copies to take away: every place but one copy at ``keep``."""
        rest = list(self.places)
        rest.remove(self.keep)
        return rest


class Audit(msgspec.Struct, frozen=True):
    """What ``audit`` read and what it found."""

    events: int
    rooms: int
    characters: int
    instances: int
    duplicates: list[Duplicate]
    names: dict[str, str]

    def describe(self, place: Place) -> str:
        kind, key = place
        if kind == "floor":
            return f"on the floor of {key}"
        return f"held by {self.names.get(key, key)}"


class _Deciding:
    """The last place each instance's deciding events put it in, read from the logs."""

    def __init__(self) -> None:
        self.last: dict[str, tuple[tuple[float, int, int], Place | None]] = {}
        self.takes: set[str] = set()
        self.returns: set[str] = set()

    def see(self, event: Event, order: tuple[float, int, int], room_key: str) -> None:
        match event:
            case ItemPickedUp(item=item, player_id=player_id, handover_id=handover_id):
                self.takes.add(handover_id)
                self._put(item, order, ("held", player_id))
            case ItemDropped(item=item, room=where):
                self._put(item, order, ("floor", where))
            case ItemUsed(item=item):
                self._put(item, order, None)
            case ItemPutDown(item=item, handover_id=handover_id):
                # A refused take's return decides (the first time); a drop's landing follows
                # the drop, and a late second copy of either must not count.
                if handover_id in self.takes and handover_id not in self.returns:
                    self.returns.add(handover_id)
                    self._put(item, order, ("floor", room_key))
            case MonsterDefeated(loot=items) | RoomRestocked(items=items):
                for item in items:
                    self._put(item, order, ("floor", room_key))

    def _put(self, item: HeldItem, order: tuple[float, int, int], place: Place | None) -> None:
        known = self.last.get(item.item_id)
        if known is None or order > known[0]:
            self.last[item.item_id] = (order, place)

    def place_of(self, item_id: str) -> Place | None:
        known = self.last.get(item_id)
        return None if known is None else known[1]


async def audit(game: Game, progress: Callable[[int], None] | None = None) -> Audit:
    """Read every log and every room's and character's state; ``progress(events read)``."""
    store, codec = game.repository.store, game.repository.codec
    deciding, players, events = _Deciding(), set(), 0
    for log in store.logs():
        after = 0
        while batch := await log.read_all(after, PAGE):
            for recorded in batch:
                if recorded.stream_type == "player":
                    players.add(stream_key_of(recorded.stream_id))
                if recorded.event_type in _DECIDING:
                    order = (recorded.metadata.recorded_at, log.shard, recorded.position)
                    room_key = stream_key_of(recorded.stream_id)
                    deciding.see(codec.decode(recorded), order, room_key)
            after = batch[-1].position
            events += len(batch)
            if progress is not None:
                progress(events)
    found: dict[str, list[Place]] = {}
    held: dict[str, HeldItem] = {}
    for room_key in game.world.rooms:
        for item in (await game.room(room_key)).items:
            found.setdefault(item.item_id, []).append(("floor", room_key))
            held[item.item_id] = item
    names: dict[str, str] = {}
    for player_id in sorted(players):
        character = await game.player(player_id)
        names[player_id] = character.name
        for item in character.inventory:
            found.setdefault(item.item_id, []).append(("held", player_id))
            held[item.item_id] = item
    duplicates = []
    for item_id, places in sorted(found.items()):
        if len(places) > 1:
            truth = deciding.place_of(item_id)
            keep = truth if truth in places else places[0]
            duplicates.append(Duplicate(held[item_id], places, keep))
    return Audit(events, len(game.world.rooms), len(players), len(found), duplicates, names)


async def repair(
    game: Game, found: Audit, report: Callable[[Duplicate, Place], None] | None = None
) -> int:
    """Take every extra copy away; the number of copies removed.

    Each stream decides on its current state (the copies it still holds beyond the one kept), so
    running it again, or after a crash midway, removes nothing twice.
    """
    metadata = Metadata(correlation_id=uuid7(), causation_id="", actor="aq items repair")
    removed = 0
    for duplicate in found.duplicates:
        for place, count in Counter(duplicate.places).items():
            keep = 1 if place == duplicate.keep else 0
            if count <= keep:
                continue
            reason = f"a copy recorded twice; kept {found.describe(duplicate.keep)}"
            removed += await _remove(
                game, duplicate.item, place, keep=keep, reason=reason, metadata=metadata
            )
            if report is not None:
                report(duplicate, place)
    return removed


async def _remove(
    game: Game, item: HeldItem, place: Place, *, keep: int, reason: str, metadata: Metadata
) -> int:
    def extra_copies(items: tuple[HeldItem, ...]) -> list[Event]:
        return [DuplicateRemoved(item, reason)] * max(items.count(item) - keep, 0)

    kind, key = place
    if kind == "floor":
        saved_room = await game.repository.update(
            game.rooms, game.rooms.stream_id(key), lambda s: extra_copies(s.items), metadata
        )
        return len(saved_room.events)
    saved = await game.repository.update(
        game.players, game.players.stream_id(key), lambda s: extra_copies(s.inventory), metadata
    )
    return len(saved.events)


def throttled(report: Callable[[int], None], every_s: float = 1.0) -> Callable[[int], None]:
    """``report`` called at most once every ``every_s`` seconds (the first after ``every_s``)."""
    last = [time.monotonic()]

    def progress(count: int) -> None:
        now = time.monotonic()
        if now - last[0] >= every_s:
            last[0] = now
            report(count)

    return progress
