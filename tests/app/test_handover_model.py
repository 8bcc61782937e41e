"""Items are conserved whatever the hand-over manager's lag (invariant 9), against a model.

Several characters take, drop, use, fight, die and respawn in three rooms while the rooms restock.
The hand-over process manager (its production ``handle``) works through the log behind them: held
back for a backlog of up to thousands of hand-overs, then catching up in steps of any size, crashing
mid-way and redelivering from its last acknowledgement, starting again from the very beginning
(every hand-over finished a second time), and racing the commands' own inline finishes. Commands
may crash between their two streams, leaving the manager to finish them.

After every step: every item instance is in at most one place (a floor or one inventory), the log
never gives an instance to a holder twice in a row, and the floors and inventories are what the
acknowledged commands' answers imply (items of a command that crashed midway are in transit until
the manager finishes them, then in exactly one of the places that command allows).
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Sequence
from random import Random
from typing import Final

import hypothesis
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    invariant,
    precondition,
    rule,
)
from msgspec.structs import replace

from adventure_quest.app.aggregates import event_codec
from adventure_quest.app.game import Game, Outcome
from adventure_quest.app.repository import Repository
from adventure_quest.app.world_loader import load_world
from adventure_quest.domain import room
from adventure_quest.domain.errors import DomainError
from adventure_quest.domain.events import (
    Event,
    HeldItem,
    ItemDropped,
    ItemPickedUp,
    ItemPutDown,
    ItemTaken,
    ItemUsed,
    MonsterDefeated,
    RoomRestocked,
)
from adventure_quest.domain.world import World
from adventure_quest.messaging.memory import MemoryQueue
from adventure_quest.processing.handover_manager import HandoverManager
from adventure_quest.store.envelope import (
    AppendResult,
    ExpectedVersion,
    Metadata,
    NewEvent,
    RecordedEvent,
)
from adventure_quest.store.memory import MemoryEventStore, MemorySnapshotStore

ROOMS: Final = ("village_square", "village_chapel", "chapel_crypt")
WORDS: Final = ("torch", "herb", "key", "tail")
PLAYERS: Final = 3


def small_world() -> World:
    """The shipped world, with tight inventories and frail characters (so they die and respawn)."""
    world = load_world()
    rules = replace(world.player, max_items=2, max_weight=2, base_health=3)
    return replace(world, player=rules)


class Crash(Exception):
    """The process died before this append reached the store."""


class FlakyStore(MemoryEventStore):
    """A memory store that can crash the next append to some streams, and can let other tasks
    run before each read and append (so racing tasks interleave as over a network)."""

    def __init__(self) -> None:
        super().__init__()
        self.crash_on: str | None = None
        self.crash_after = 0
        self.schedule: Random | None = None

    async def _let_others_run(self) -> None:
        if self.schedule is not None:
            for _ in range(self.schedule.randint(0, 3)):
                await asyncio.sleep(0)

    async def append(
        self, stream_id: str, expected_version: ExpectedVersion, events: Sequence[NewEvent]
    ) -> AppendResult:
        await self._let_others_run()
        if self.crash_on is not None and stream_id.startswith(self.crash_on):
            if self.crash_after <= 0:
                self.crash_on = None
                raise Crash(stream_id)
            self.crash_after -= 1
        return await super().append(stream_id, expected_version, events)

    async def read_stream(
        self, stream_id: str, from_version: int = 1, to_version: int | None = None
    ) -> list[RecordedEvent]:
        await self._let_others_run()
        return await super().read_stream(stream_id, from_version, to_version)


Place = tuple[str, str]  # ("floor", room) or ("held", player id)


class HandoverModel(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.world = small_world()
        self.store = FlakyStore()
        self.game = Game(
            Repository(self.store, MemorySnapshotStore(), event_codec(), max_attempts=12),
            self.world,
            roll=self._roll,
        )
        self.rolls = Random(0)
        self.manager = HandoverManager(self.game, MemoryQueue(["handovers"], 1), [0])
        self.acked = 0  # the manager's last acknowledged log position
        self.cursor = 0  # how far it has handled
        self.tick = 0
        self.players = [
            asyncio.run(self.game.create_character(f"Hero {n}")).player.player_id
            for n in range(PLAYERS)
        ]
        #: Where each item instance is, by the acknowledged answers.
        self.model: dict[str, Place] = {
            item.item_id: ("floor", key)
            for key in ROOMS
            for item in room.initial_state(self.world, key).items
        }
        #: Items a crashed command left in transit: the places its finish may leave each in.
        self.in_transit: dict[str, tuple[int, set[Place]]] = {}
        self.log_seen = 0
        self.holders: Counter[str] = Counter()
        self.floors: Counter[str] = Counter(self.model.keys())

    def _roll(self) -> int:
        return self.rolls.randrange(1 << 16)

    # -- commands ---------------------------------------------------------------------------

    async def _command(self, who: int, verb: str, words: str) -> Outcome:
        player_id = self.players[who]
        match verb:
            case "take":
                return await self.game.take(player_id, words)
            case "drop":
                return await self.game.drop(player_id, words)
            case "use":
                return await self.game.use(player_id, words)
            case "attack":
                return await self.game.attack(player_id, "rat")
            case "respawn":
                return await self.game.respawn(player_id)
        return await self.game.move(player_id, words)

    def _acknowledged(self, who: int, outcome: Outcome) -> None:
        """Move the model's items as the command's answer says."""
        player_id = self.players[who]
        for event in outcome.events:
            match event:
                case ItemPickedUp(item=item):
                    held = item in outcome.player.inventory
                    self.model[item.item_id] = (
                        ("held", player_id) if held else ("floor", outcome.player.room)
                    )
                case ItemDropped(item=item, room=where):
                    self.model[item.item_id] = ("floor", where)
                case ItemUsed(item=item):
                    self.model.pop(item.item_id)
                case MonsterDefeated(loot=loot):
                    for item in loot:
                        self.model[item.item_id] = ("floor", outcome.player.room)

    async def _crashed(self, who: int, first_stream: str, before: int) -> None:
        """What a command that died between its streams left: the first stream's events."""
        player_id = self.players[who]
        for recorded in await self.store.read_all(before, 10):
            if recorded.stream_id != first_stream:
                continue
            event = self.game.repository.codec.decode(recorded)
            match event:
                case ItemPickedUp(item=item):
                    here = first_stream.removeprefix("room-")
                    self.model.pop(item.item_id)
                    places = {("held", player_id), ("floor", here)}
                    self.in_transit[item.item_id] = (recorded.position, places)
                case ItemDropped(item=item, room=where):
                    self.model.pop(item.item_id)
                    self.in_transit[item.item_id] = (recorded.position, {("floor", where)})
                case MonsterDefeated(loot=loot):
                    for item in loot:
                        self.model[item.item_id] = ("floor", first_stream.removeprefix("room-"))

    async def _play(self, who: int, verb: str, words: str, crash: bool) -> None:
        actor = await self.game.player(self.players[who])
        before = await self.store.head()
        first_stream = f"player-{actor.player_id}" if verb == "drop" else f"room-{actor.room}"
        if crash and verb in ("take", "drop", "attack"):
            self.store.crash_on = "room-" if verb == "drop" else "player-"
            self.store.crash_after = 0
        try:
            outcome = await self._command(who, verb, words)
        except Crash:
            hypothesis.event(f"a {verb} crashed between its streams")
            self.game.repository.forget(f"player-{actor.player_id}")
            self.game.repository.forget(first_stream)
            await self._crashed(who, first_stream, before)
            return
        except DomainError:
            return
        finally:
            self.store.crash_on = None
        if verb in ("attack", "respawn"):
            hypothesis.event(f"{verb}: {type(outcome.events[-1]).__name__}")
        self._acknowledged(who, outcome)

    @rule(
        who=st.integers(0, PLAYERS - 1),
        verb=st.sampled_from(["take", "take", "drop", "drop", "use", "attack", "respawn"]),
        words=st.sampled_from(WORDS),
        crash=st.booleans(),
    )
    def act(self, who: int, verb: str, words: str, crash: bool) -> None:
        asyncio.run(self._play(who, verb, words, crash))

    @rule(who=st.integers(0, PLAYERS - 1), way=st.sampled_from(["s", "d", "u", "n"]))
    def walk(self, who: int, way: str) -> None:
        here = asyncio.run(self.game.player(self.players[who])).room
        if here in ROOMS and not (here == "village_square" and way == "n"):
            asyncio.run(self._play(who, "move", way, crash=False))

    @rule(who=st.integers(0, PLAYERS - 1))
    def go_down_to_the_rats(self, who: int) -> None:
        if asyncio.run(self.game.player(self.players[who])).room == "village_square":
            for way in ("s", "d"):
                asyncio.run(self._play(who, "move", way, crash=False))

    @rule(who=st.integers(0, PLAYERS - 1), blows=st.integers(1, 4), crash=st.booleans())
    def fight(self, who: int, blows: int, crash: bool) -> None:
        """Strike the crypt's rats (the last blow may crash before the character feels it)."""
        for blow in range(blows):
            asyncio.run(self._play(who, "attack", "rat", crash=crash and blow == blows - 1))
        asyncio.run(self._play(who, "respawn", "", crash=False))

    @rule(who=st.integers(0, PLAYERS - 1), times=st.sampled_from([3, 40, 400, 1500]))
    def churn(self, who: int, times: int) -> None:
        """Take and drop whatever lies here, again and again: a backlog of hand-overs."""

        async def churn() -> None:
            actor = await self.game.player(self.players[who])
            floor = (await self.game.room(actor.room)).items
            if not floor or not actor.alive:
                return
            words = self.world.items[floor[0].item_key].name
            hypothesis.event(f"a backlog of {2 * times} hand-overs made at once")
            for _ in range(times):
                await self._play(who, "take", words, crash=False)
                await self._play(who, "drop", words, crash=False)

        asyncio.run(churn())

    @rule()
    def restock(self) -> None:
        """A world tick: each room brings back what it misses (as the respawn manager does)."""

        async def restock() -> None:
            self.tick += 1
            for key in ROOMS:
                saved = await self.game.repository.update(
                    self.game.rooms,
                    self.game.rooms.stream_id(key),
                    lambda state: room.restock(state, self.tick, self.world),
                    Metadata(actor="world-clock"),
                )
                for event in saved.events:
                    if isinstance(event, RoomRestocked):
                        for item in event.items:
                            self.model[item.item_id] = ("floor", key)

        asyncio.run(restock())

    # -- the hand-over manager --------------------------------------------------------------

    async def _handle(self, upto: int) -> None:
        """Handle the log from the cursor up to ``upto`` (a crash leaves the cursor there)."""
        try:
            while self.cursor < upto:
                batch = await self.store.read_all(self.cursor, min(upto - self.cursor, 500))
                for recorded in batch:
                    await self.manager.handle(recorded)
                    self.cursor = recorded.position
        finally:
            await self._settle_transit()

    async def _settle_transit(self) -> None:
        for item_id, (position, _) in list(self.in_transit.items()):
            if position <= self.cursor:
                places = await self._places()
                [place] = places[item_id]
                assert place in self.in_transit.pop(item_id)[1]
                self.model[item_id] = place

    @rule(step=st.sampled_from([1, 7, 100, 5000]))
    def manager_catches_up(self, step: int) -> None:
        async def catch_up() -> None:
            backlog = await self.store.head() - self.cursor
            hypothesis.event(f"manager behind by {'> 1,000' if backlog > 1000 else '<= 1,000'}")
            await self._handle(min(self.cursor + step, await self.store.head()))
            self.acked = self.cursor

        asyncio.run(catch_up())

    @rule(after=st.integers(0, 5), where=st.sampled_from(["room-", "player-"]))
    def manager_crashes_and_is_redelivered(self, after: int, where: str) -> None:
        async def crash() -> None:
            self.store.crash_on, self.store.crash_after = where, after
            try:
                await self._handle(await self.store.head())
            except Crash:
                hypothesis.event("the manager crashed mid-way")
            finally:
                self.store.crash_on = None
            # Restarted: everything since its last acknowledgement comes again.
            for stream_id in {f"room-{key}" for key in ROOMS} | {
                f"player-{p}" for p in self.players
            }:
                self.game.repository.forget(stream_id)
            self.cursor = self.acked

        asyncio.run(crash())

    @rule()
    def manager_starts_again_from_the_beginning(self) -> None:
        """Its checkpoint lost: every hand-over ever made is handled a second time."""
        self.acked = self.cursor = 0

    @rule(
        who=st.integers(0, PLAYERS - 1),
        verb=st.sampled_from(["take", "drop", "attack"]),
        words=st.sampled_from(WORDS),
        schedule=st.randoms(use_true_random=False),
    )
    @precondition(lambda self: not self.in_transit)
    def command_races_the_manager(self, who: int, verb: str, words: str, schedule: Random) -> None:
        """The manager, caught up, follows the log while the command finishes its own way."""

        async def race() -> None:
            await self._handle(await self.store.head())
            self.acked = self.cursor
            done = asyncio.Event()

            async def follow() -> None:
                while not done.is_set() or self.cursor < await self.store.head():
                    await self._handle(await self.store.head())
                    await asyncio.sleep(0)

            async def command() -> None:
                try:
                    await self._play(who, verb, words, crash=False)
                finally:
                    done.set()

            self.store.schedule = schedule
            conflicts = self.manager.finished
            try:
                await asyncio.gather(command(), follow())
            finally:
                self.store.schedule = None
            won = "the manager" if self.manager.finished > conflicts else "the command"
            hypothesis.event(f"race: {won} finished the hand-over")
            self.acked = self.cursor

        asyncio.run(race())

    # -- what must hold ---------------------------------------------------------------------

    async def _places(self) -> dict[str, list[Place]]:
        """Every item's places, read afresh from the store (no cached state)."""
        fresh = Game(
            Repository(self.store, MemorySnapshotStore(), event_codec(), cache_size=0), self.world
        )
        found: dict[str, list[Place]] = {}
        for key in ROOMS:
            for item in (await fresh.room(key)).items:
                found.setdefault(item.item_id, []).append(("floor", key))
        for player_id in self.players:
            for held in (await fresh.player(player_id)).inventory:
                found.setdefault(held.item_id, []).append(("held", player_id))
        return found

    @invariant()
    def every_item_is_where_the_answers_put_it(self) -> None:
        """Reading the store afresh: nothing in two places, everything where the model says."""
        found = asyncio.run(self._places())
        assert {item: places for item, places in found.items() if len(places) > 1} == {}
        assert {item: places[0] for item, places in found.items()} == self.model
        assert set(found).isdisjoint(self.in_transit)

    @invariant()
    def no_instance_is_given_to_a_holder_twice_in_a_row(self) -> None:
        async def fold() -> None:
            while batch := await self.store.read_all(self.log_seen, 1000):
                for recorded in batch:
                    self._count(self.game.repository.codec.decode(recorded), recorded.stream_id)
                self.log_seen = batch[-1].position

        asyncio.run(fold())

    def _count(self, event: Event, stream_id: str) -> None:
        placed: list[HeldItem] = []
        match event:
            case ItemTaken(item=item):
                self.holders[item.item_id] += 1
                assert self.holders[item.item_id] == 1, f"{item} taken twice in a row"
            case ItemDropped(item=item) | ItemUsed(item=item):
                self.holders[item.item_id] -= 1
                assert self.holders[item.item_id] == 0, f"{item} let go of while not held"
            case ItemPickedUp(item=item):
                self.floors[item.item_id] -= 1
            case ItemPutDown(item=item):
                placed = [item]
            case MonsterDefeated(loot=loot):
                placed = loot
            case RoomRestocked(items=items):
                placed = items
        for item in placed:
            self.floors[item.item_id] += 1
            assert self.floors[item.item_id] == 1, f"{item} put on a floor twice ({stream_id})"

    def teardown(self) -> None:
        # However the run went, a manager that finally catches up leaves nothing in transit.
        asyncio.run(self._handle(asyncio.run(self.store.head())))
        assert self.in_transit == {}
        self.every_item_is_where_the_answers_put_it()


HandoverModel.TestCase.settings = settings(max_examples=60, stateful_step_count=40, deadline=None)
TestItemsAreConservedWhateverTheManagersLagCrashesAndRaces = HandoverModel.TestCase
