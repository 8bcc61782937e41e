"""Invariant 10 when the hand-over process manager finishes first: a command's recorded appends
(what its consistency token is made of) cover the event behind the state it answers with, even
when its own inline finish appended nothing because the manager had already finished.

The store below lets the real ``HandoverManager.handle`` run on the hand-over's first event
before the command's inline finish: either right after that first event is recorded (the inline
finish then finds the hand-over done, or, with a stale cache, repeats it) or just before the
inline finish's own append (which then repeats, or conflicts and finds it done on reloading).
The manager runs in a task of its own, outside the command's tracking, as it does in ``aq serve``
(the same game and cache) or in ``aq worker`` (a repository of its own over the same store).
"""

from __future__ import annotations

import asyncio
import contextvars
from collections.abc import Sequence
from typing import Literal, TypeVar

import msgspec
import pytest

from adventure_quest.app import tracking
from adventure_quest.app.aggregates import AggregateType, event_codec, player_id_for
from adventure_quest.app.game import Game, Outcome
from adventure_quest.app.repository import Repository
from adventure_quest.app.world_loader import load_world
from adventure_quest.domain.events import Event
from adventure_quest.messaging.memory import MemoryQueue
from adventure_quest.processing.handover_manager import HandoverManager
from adventure_quest.store.envelope import AppendResult, ExpectedVersion, NewEvent, RecordedEvent
from adventure_quest.store.memory import MemoryEventStore, MemorySnapshotStore

WORLD = load_world()
#: Every blow's roll: 4 damage (a giant rat has 8 health: it takes two) and the rat bites for 2.
ROLL = 8
#: The first halves of hand-overs: what the manager reacts to.
STARTS = frozenset({"ItemPickedUp", "ItemDropped", "MonsterHit", "MonsterDefeated"})
When = Literal["before_load", "before_append"]
Manager = Literal["shared", "separate"]
StateFrom = Literal["cache", "snapshot"]
S = TypeVar("S", bound=msgspec.Struct)


class ManagerFirstStore(MemoryEventStore):
    """A memory store that lets the hand-over manager finish, ahead of the command's own inline
    finish, every hand-over started while ``racing`` is set."""

    def __init__(self, when: When) -> None:
        super().__init__()
        self.when = when
        self.racing = False
        self.manager: HandoverManager | None = None
        #: What the manager appended, ahead of the inline finishes.
        self.by_manager: list[Event] = []
        self._started: list[RecordedEvent] = []
        self._managing = False

    async def append(
        self, stream_id: str, expected_version: ExpectedVersion, events: Sequence[NewEvent]
    ) -> AppendResult:
        if self._managing or not self.racing:
            return await super().append(stream_id, expected_version, events)
        if self._started and self.when == "before_append":
            await self._let_the_manager_finish()  # the inline finish is about to append
        result = await super().append(stream_id, expected_version, events)
        if any(event.event_type in STARTS for event in events):
            first = result.version - len(events) + 1
            recorded = await self.read_stream(stream_id, first, result.version)
            self._started = [r for r in recorded if r.event_type in STARTS]
            if self.when == "before_load":
                await self._let_the_manager_finish()
        return result

    async def _let_the_manager_finish(self) -> None:
        started, self._started = self._started, []
        manager = self.manager
        assert manager is not None

        async def handle() -> None:
            self._managing = True
            try:
                for recorded in started:
                    self.by_manager += await manager.handle(recorded)
            finally:
                self._managing = False

        # A fresh context: the manager's appends are not the command's (nothing tracks them).
        await asyncio.create_task(handle(), context=contextvars.Context())


class Setup(msgspec.Struct):
    store: ManagerFirstStore
    snapshots: MemorySnapshotStore
    game: Game
    me: str


def new_setup(when: When, manager: Manager, state_from: StateFrom) -> Setup:
    store, snapshots = ManagerFirstStore(when), MemorySnapshotStore()

    def repository() -> Repository:
        if state_from == "snapshot":  # every load: the latest snapshot, with nothing after it
            return Repository(store, snapshots, event_codec(), snapshot_every=1, cache_size=0)
        return Repository(store, snapshots, event_codec())

    game = Game(repository(), WORLD, roll=lambda: ROLL)
    managing = game if manager == "shared" else Game(repository(), WORLD, roll=lambda: ROLL)
    queue = MemoryQueue(["handovers"], partitions=1)  # not consumed: handle() is called directly
    store.manager = HandoverManager(managing, queue, [0])
    return Setup(store, snapshots, game, player_id_for("Racer"))


async def raced(
    setup: Setup, command: str, words: str
) -> tuple[Outcome, dict[str, tuple[int, int]]]:
    """Run ``command`` with the manager finishing first, tracking its appends as the API does."""
    setup.store.racing, setup.store.by_manager = True, []
    try:
        with tracking.track_appends() as positions:
            outcome: Outcome = await getattr(setup.game, command)(setup.me, words)
    finally:
        setup.store.racing = False
    return outcome, dict(positions)


async def check_covered(
    setup: Setup,
    kind: AggregateType[S],
    stream_id: str,
    positions: dict[str, tuple[int, int]],
    answered: S | None = None,
) -> None:
    """``positions`` reach the stream's last event (the one behind the state answered with), and
    the stream replayed up to what they cover is that state."""
    recorded = await setup.store.read_stream(stream_id)
    last = recorded[-1]
    shard, covered = positions.get(stream_id, (last.shard, 0))
    assert shard == last.shard, (
        f"the token names shard {shard} for {stream_id}, stored on {last.shard}"
    )
    assert covered >= last.position, (
        f"the token covers {stream_id} up to log position {covered}, but the state answered "
        f"with is at version {last.version} ({last.event_type} at position {last.position})"
    )
    if answered is not None:
        version = sum(1 for r in recorded if r.position <= covered)
        seen = await setup.game.repository.load_at(kind, stream_id, version)
        assert seen.state == answered


async def check_state_came_from_a_snapshot(setup: Setup, stream_id: str) -> None:
    """In the snapshot case the answer's state was loaded from a snapshot with no events after
    it: the latest snapshot is at the stream's version (and nothing is cached)."""
    snapshot = await setup.snapshots.load(stream_id)
    assert snapshot is not None
    assert snapshot.version == await setup.store.stream_version(stream_id)


def names(events: Sequence[Event]) -> list[str]:
    return [type(event).__name__ for event in events]


CASES = [
    pytest.param(when, manager, state_from, id=f"{manager}-manager-{when}-state-from-{state_from}")
    for state_from in ("cache", "snapshot")
    for manager in ("shared", "separate")
    for when in ("before_load", "before_append")
]


@pytest.mark.parametrize(("when", "manager", "state_from"), CASES)
async def test_a_take_finished_by_the_manager_first_is_covered_by_the_token(
    when: When, manager: Manager, state_from: StateFrom
) -> None:
    setup = new_setup(when, manager, state_from)
    await setup.game.create_character("Racer")
    outcome, positions = await raced(setup, "take", "torch")
    assert names(setup.store.by_manager) == ["ItemTaken"]  # the manager won the race...
    # ...so the inline finish appended nothing, yet the answer lists the second half
    assert names(outcome.events) == ["ItemPickedUp", "ItemTaken"]
    assert outcome.events[1] == setup.store.by_manager[0]
    assert [i.item_key for i in outcome.player.inventory] == ["torch"]  # yet the answer has it
    stream = setup.game.players.stream_id(setup.me)
    if state_from == "snapshot":
        await check_state_came_from_a_snapshot(setup, stream)
    await check_covered(setup, setup.game.players, stream, positions, outcome.player)


@pytest.mark.parametrize(("when", "manager", "state_from"), CASES)
async def test_a_drop_whose_room_side_the_manager_finished_first_is_covered_by_the_token(
    when: When, manager: Manager, state_from: StateFrom
) -> None:
    setup = new_setup(when, manager, state_from)
    await setup.game.create_character("Racer")
    await setup.game.take(setup.me, "torch")  # no race yet
    outcome, positions = await raced(setup, "drop", "torch")
    assert names(setup.store.by_manager) == ["ItemPutDown"]
    assert names(outcome.events) == ["ItemDropped", "ItemPutDown"]
    assert outcome.events[1] == setup.store.by_manager[0]
    assert outcome.player.inventory == ()
    room = setup.game.rooms.stream_id(WORLD.start_room)
    if state_from == "snapshot":
        await check_state_came_from_a_snapshot(setup, room)
    # The room holding the torch again is the drop's effect: the token reaches it too.
    await check_covered(setup, setup.game.rooms, room, positions)
    floor = await setup.game.repository.load(setup.game.rooms, room)
    assert "torch" in [i.item_key for i in floor.state.items]
    player = setup.game.players.stream_id(setup.me)
    await check_covered(setup, setup.game.players, player, positions, outcome.player)


@pytest.mark.parametrize(("when", "manager", "state_from"), CASES)
async def test_an_attack_whose_outcome_the_manager_gave_first_is_covered_by_the_token(
    when: When, manager: Manager, state_from: StateFrom
) -> None:
    setup = new_setup(when, manager, state_from)
    await setup.game.create_character("Racer")
    # The giant rat lives in the chapel crypt: south of the square, then down.
    await setup.game.move(setup.me, "south")
    await setup.game.move(setup.me, "down")
    stream = setup.game.players.stream_id(setup.me)
    before = outcome = await setup.game.player(setup.me)
    # The first blow leaves the rat alive (its bite: health), the second kills it (its XP).
    for expected, changed in (("DamageTaken", "health"), ("XpGained", "xp")):
        answer, positions = await raced(setup, "attack", "rat")
        assert names(setup.store.by_manager) == [expected]
        # The inline finish appended nothing; the answer lists the manager's second half.
        assert answer.events[-1:] == setup.store.by_manager
        outcome = answer.player
        assert getattr(outcome, changed) != getattr(before, changed)
        if state_from == "snapshot":
            await check_state_came_from_a_snapshot(setup, stream)
        await check_covered(setup, setup.game.players, stream, positions, outcome)
        before = outcome
