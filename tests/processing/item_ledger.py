"""Where every item instance is, read from an event store three ways, and every hand-over's finish.

``audit`` reads one store after the traffic stopped and reports what breaks invariant 9:

- **The log, folded in order** (one shard, so one total order): each instance moves through
  floor → in transit → inventory → in transit → floor, and each step must start where the last
  one left it. An ``ItemTaken`` of an instance already held, or not in transit under that very
  hand-over, is an error; so is an instance put on a floor while it is on one, or picked up from
  a floor it is not on.
- **The hand-overs**: every start has exactly the finish its kind allows, once per receiving
  stream, and nothing else: a take ``ItemTaken`` on the player (or ``HandoverSettled`` there and
  ``ItemPutDown`` back on the room), a drop ``ItemPutDown`` on the room, a fight ``DamageTaken`` or
  ``XpGained`` (or ``HandoverSettled``) on the player. No finish without a start.
- **The aggregates**: every room of the world and every character loaded from the store (a full
  replay, and again from the snapshots plus the events after them): each instance is on one
  floor or in one inventory, where the log's fold left it; none is in two places, none missing.

``read_models`` compares the floors and inventories of the read database's ``room_view`` and
``player_details`` rows with the aggregates.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from adventure_quest.app.aggregates import event_codec
from adventure_quest.app.game import Game
from adventure_quest.app.repository import Repository
from adventure_quest.domain import room
from adventure_quest.domain.events import (
    DamageTaken,
    Event,
    HandoverSettled,
    HeldItem,
    ItemDropped,
    ItemPickedUp,
    ItemPutDown,
    ItemTaken,
    ItemUsed,
    MonsterDefeated,
    MonsterHit,
    RoomRestocked,
    XpGained,
)
from adventure_quest.domain.world import World
from adventure_quest.projections.players import PLAYER_DETAILS
from adventure_quest.projections.rooms import ROOM_VIEW
from adventure_quest.projections.sqlite import SQLiteReadDatabase
from adventure_quest.store.memory import MemorySnapshotStore
from adventure_quest.store.sqlite.events import SQLiteEventStore
from adventure_quest.store.sqlite.snapshots import SQLiteSnapshotStore

#: ("floor", room key), ("held", player id), ("transit", hand-over id) or ("used", player id).
Place = tuple[str, str]
Finish = tuple[str, str]  # (stream id, event type)
#: Problems reported in full; the rest are counted.
SHOWN = 30


@dataclass
class Handover:
    """One hand-over as its first stream recorded it."""

    kind: str  # "take", "drop", "fight" or "kill" (the blow that felled the monster)
    player: str  # the player's stream id
    room: str  # the room's stream id
    started_at: float
    finished_at: float = 0.0


@dataclass
class Audit:
    """What the store holds and what is wrong with it."""

    problems: list[str] = field(default_factory=list)
    events: Counter[str] = field(default_factory=Counter)
    handovers: Counter[str] = field(default_factory=Counter)
    #: Hand-overs whose first stream recorded the start before a players' kill, and whose
    #: receiving stream recorded the finish after it: the hand-over manager finished them.
    cut_off: Counter[str] = field(default_factory=Counter)
    refused: int = 0
    instances: int = 0
    #: Where each instance is: on a floor or in an inventory (used up ones are not listed).
    places: dict[str, Place] = field(default_factory=dict)

    def problem(self, text: str) -> None:
        self.problems.append(text)

    def summary(self) -> str:
        kinds = ", ".join(f"{n} {kind}s" for kind, n in sorted(self.handovers.items()))
        cut = ", ".join(f"{n} {kind}s" for kind, n in sorted(self.cut_off.items())) or "none"
        finishing = ("ItemTaken", "ItemPutDown", "DamageTaken", "XpGained", "HandoverSettled")
        counts = ", ".join(f"{self.events[name]} {name}" for name in (*finishing, "PlayerDied"))
        return (
            f"{sum(self.handovers.values())} hand-overs ({kinds}; {self.refused} takes refused);"
            f" finished by a manager after a players' kill: {cut}; {counts};"
            f" {self.instances} item instances; {sum(self.events.values())} events"
        )

    def shown(self) -> list[str]:
        extra = len(self.problems) - SHOWN
        return self.problems[:SHOWN] + ([f"... and {extra} more"] if extra > 0 else [])


class Ledger:
    """The log folded in order: where each instance is after each event."""

    def __init__(self, world: World, audit: Audit) -> None:
        self.audit = audit
        self.where: dict[str, Place] = {
            item.item_id: ("floor", key)
            for key in world.rooms
            for item in room.initial_state(world, key).items
        }

    def move(self, item: HeldItem, position: int, source: Place | None, target: Place) -> None:
        """``item`` goes from ``source`` (None: it is new) to ``target``."""
        now = self.where.get(item.item_id)
        if now != source:
            at = "nowhere" if now is None else f"{now[0]} {now[1]}"
            was = "a new instance" if source is None else f"{source[0]} {source[1]}"
            self.audit.problem(
                f"position {position}: {item.item_id} to {target[0]} {target[1]} should be"
                f" {was}, is {at}"
            )
        self.where[item.item_id] = target

    def see(self, event: Event, stream_id: str, position: int) -> None:
        key = stream_id.partition("-")[2]
        match event:
            case ItemPickedUp(item=item, handover_id=handover):
                self.move(item, position, ("floor", key), ("transit", handover))
            case ItemTaken(item=item, handover_id=handover):
                self.move(item, position, ("transit", handover), ("held", key))
            case ItemDropped(item=item, handover_id=handover):
                self.move(item, position, ("held", key), ("transit", handover))
            case ItemPutDown(item=item, handover_id=handover):
                self.move(item, position, ("transit", handover), ("floor", key))
            case ItemUsed(item=item):
                self.move(item, position, ("held", key), ("used", key))
            case MonsterDefeated(loot=items) | RoomRestocked(items=items):
                for item in items:
                    self.move(item, position, None, ("floor", key))


def _expected(handover: Handover) -> list[list[Finish]]:
    """The finishes a hand-over may have, each as a sorted list."""
    player, room_stream = handover.player, handover.room
    settled = (player, "HandoverSettled")
    match handover.kind:
        case "take":
            return [[(player, "ItemTaken")], sorted([settled, (room_stream, "ItemPutDown")])]
        case "drop":
            return [[(room_stream, "ItemPutDown")]]
        case "fight":
            return [[(player, "DamageTaken")], [settled]]
    return [[(player, "XpGained")], [settled]]


async def audit(store_path: Path, world: World, kills: list[float]) -> Audit:
    """Fold the log, check every hand-over's finishes, and load every room and character.

    ``kills`` are the moments (``time.time()``) at which a players' process was known dead.
    """
    found = Audit()
    ledger = Ledger(world, found)
    handovers: dict[str, Handover] = {}
    finishes: dict[str, list[Finish]] = {}
    players: set[str] = set()
    store = SQLiteEventStore(str(store_path))
    snapshots = SQLiteSnapshotStore(str(store_path))
    codec = event_codec()
    try:
        [log] = store.logs()  # one shard: its log is the one order of every event
        after = 0
        while page := await log.read_all(after, 5000):
            for recorded in page:
                found.events[recorded.event_type] += 1
                stream_id, at = recorded.stream_id, recorded.metadata.recorded_at
                if recorded.stream_type == "player":
                    players.add(stream_id.removeprefix("player-"))
                event = codec.decode(recorded)
                ledger.see(event, stream_id, recorded.position)
                match event:
                    case ItemPickedUp(player_id=player, handover_id=handover):
                        handovers[handover] = Handover("take", f"player-{player}", stream_id, at)
                    case ItemDropped(room=where, handover_id=handover):
                        handovers[handover] = Handover("drop", stream_id, f"room-{where}", at)
                    case MonsterHit(player_id=player, handover_id=handover):
                        handovers[handover] = Handover("fight", f"player-{player}", stream_id, at)
                    case MonsterDefeated(handover_id=handover) if handover in handovers:
                        handovers[handover].kind = "kill"
                    case (
                        ItemTaken(handover_id=handover)
                        | ItemPutDown(handover_id=handover)
                        | DamageTaken(handover_id=handover)
                        | XpGained(handover_id=handover)
                        | HandoverSettled(handover_id=handover)
                    ):
                        finishes.setdefault(handover, []).append((stream_id, recorded.event_type))
                        if handover in handovers:
                            handovers[handover].finished_at = at
            after = page[-1].position
        _check_handovers(found, handovers, finishes, kills)
        replayed = Game(
            Repository(store, MemorySnapshotStore(), codec, cache_size=0, snapshot_every=0), world
        )
        snapshotted = Game(
            Repository(store, snapshots, codec, cache_size=0, snapshot_every=0), world
        )
        await _check_places(found, ledger, replayed, snapshotted, sorted(players))
    finally:
        await snapshots.close()
        await store.close()
    return found


def _check_handovers(
    found: Audit,
    handovers: dict[str, Handover],
    finishes: dict[str, list[Finish]],
    kills: list[float],
) -> None:
    for handover, started in handovers.items():
        found.handovers[started.kind] += 1
        got = sorted(finishes.get(handover, []))
        twice = [finish for finish, n in Counter(got).items() if n > 1]
        if twice:
            found.problem(f"{started.kind} {handover} finished more than once: {twice}")
        elif got not in _expected(started):
            found.problem(f"{started.kind} {handover} finished as {got or 'nothing (in transit)'}")
        found.refused += started.kind == "take" and len(got) == 2
        if any(started.started_at < kill < started.finished_at for kill in kills):
            found.cut_off[started.kind] += 1
    for handover in finishes.keys() - handovers.keys():
        found.problem(f"hand-over {handover} finished but never started: {finishes[handover]}")


async def _check_places(
    found: Audit, ledger: Ledger, replayed: Game, snapshotted: Game, players: list[str]
) -> None:
    places: dict[str, list[Place]] = {}
    for key in replayed.world.rooms:
        state = await replayed.room(key)
        if await snapshotted.room(key) != state:
            found.problem(f"room {key}: its snapshot plus later events differs from a replay")
        for item in state.items:
            places.setdefault(item.item_id, []).append(("floor", key))
    for player_id in players:
        character = await replayed.player(player_id)
        if await snapshotted.player(player_id) != character:
            found.problem(f"player {player_id}: its snapshot plus later events differs")
        for item in character.inventory:
            places.setdefault(item.item_id, []).append(("held", player_id))
    for item_id, at in sorted(places.items()):
        if len(at) > 1:
            found.problem(f"{item_id} is in {len(at)} places: {at}")
    folded = {i: p for i, p in ledger.where.items() if p[0] != "used"}
    for item_id, place in sorted(folded.items()):
        if place[0] == "transit":
            found.problem(f"{item_id} still in transit (hand-over {place[1]})")
        elif places.get(item_id) != [place]:
            where = places.get(item_id)
            found.problem(f"{item_id}: the log leaves it {place}, the aggregates {where}")
    for item_id in sorted(places.keys() - folded.keys()):
        found.problem(f"{item_id} is {places[item_id]}, but the log never put it there")
    found.instances = len(places)
    found.places = {item_id: at[0] for item_id, at in places.items()}


async def read_models(read_path: Path, places: dict[str, Place]) -> list[str]:
    """Where the room and player read models put each instance, against ``places``."""
    db = SQLiteReadDatabase(str(read_path))
    try:
        rooms = await db.select(ROOM_VIEW)
        characters = await db.select(PLAYER_DETAILS)
    finally:
        await db.close()
    shown: dict[str, list[Place]] = {}
    for row in rooms:
        for item in row["state"]["items"]:
            shown.setdefault(item["item_id"], []).append(("floor", row["room"]))
    for row in characters:
        for item in row["state"]["inventory"]:
            shown.setdefault(item["item_id"], []).append(("held", row["player_id"]))
    # A room whose stream has no event has no row yet.
    seen = {row["room"] for row in rooms}
    expected = {
        item_id: [place]
        for item_id, place in places.items()
        if place[0] == "held" or place[1] in seen
    }
    return [
        f"{item_id}: read models {shown.get(item_id)}, aggregates {expected.get(item_id)}"
        for item_id in sorted(shown.keys() | expected.keys())
        if shown.get(item_id) != expected.get(item_id)
    ]
