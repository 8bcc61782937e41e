"""An item moving between a room and a player is never in two places, and never vanishes once the
system settles: under concurrent commands, under crashes between the two streams, and however
often a hand-over is finished again.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Iterable, Sequence
from random import Random
from typing import Final

import hypothesis
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule, run_state_machine_as_test
from msgspec.structs import replace

from adventure_quest.app.aggregates import event_codec
from adventure_quest.app.game import Game
from adventure_quest.app.repository import Repository
from adventure_quest.app.world_loader import load_world
from adventure_quest.domain import room
from adventure_quest.domain.errors import DomainError
from adventure_quest.domain.events import (
    DamageTaken,
    Event,
    HandoverSettled,
    HeldItem,
    ItemDropped,
    ItemPickedUp,
    ItemPutDown,
    ItemTaken,
    MonsterDefeated,
    MonsterHit,
    XpGained,
)
from adventure_quest.domain.player import RECENT_HANDOVERS
from adventure_quest.domain.world import World
from adventure_quest.store.envelope import AppendResult, ExpectedVersion, NewEvent, RecordedEvent
from adventure_quest.store.errors import ConcurrencyError
from adventure_quest.store.memory import MemoryEventStore, MemorySnapshotStore
from adventure_quest.store.ports import EventStore

SQUARE: Final = "village_square"
#: Alike items, weightless and heavy ones: enough to fill tight inventories and to contest.
FLOOR: Final = (
    "torch", "torch", "gold_coin", "gold_coin", "healing_herb", "rusty_sword", "coil_of_rope",
)  # fmt: skip
WORDS: Final = sorted(set(FLOOR))
#: Enough retries that up to 32 racing commands all get through (5 were the most seen), few
#: enough that the repository's exponential back-off stays short.
PATIENT: Final = 12
#: The refusals a take or a drop may meet when others get there first.
EXPECTED_REFUSALS: Final = {"item_not_here", "item_not_carried", "inventory_full"}


def crowded_world(*, max_items: int = 3, max_weight: int = 6) -> World:
    """The shipped world with FLOOR in the village square and tight carrying limits."""
    world = load_world()
    square = replace(world.rooms[SQUARE], items=list(FLOOR))
    rules = replace(world.player, max_items=max_items, max_weight=max_weight)
    return replace(world, player=rules, rooms={**world.rooms, SQUARE: square})


def floor_ids(world: World) -> list[str]:
    return [item.item_id for item in room.initial_state(world, SQUARE).items]


class SimulatedCrash(Exception):
    """The process died before an append reached the store."""


class CrashingEventStore(MemoryEventStore):
    """A memory store that crashes every append to streams whose id starts with ``crash_on``."""

    def __init__(self) -> None:
        super().__init__()
        self.crash_on: str | None = None

    async def append(
        self, stream_id: str, expected_version: ExpectedVersion, events: Sequence[NewEvent]
    ) -> AppendResult:
        if self.crash_on is not None and stream_id.startswith(self.crash_on):
            raise SimulatedCrash(stream_id)
        return await super().append(stream_id, expected_version, events)


class YieldingEventStore(MemoryEventStore):
    """A memory store that lets other tasks run before each read and append, as a networked one
    would; the memory store alone never suspends, so concurrent commands would not interleave.
    """

    def __init__(self, schedule: Random, most: int = 3) -> None:
        super().__init__()
        self._schedule = schedule
        self._most = most
        self.conflicts = 0

    async def _let_others_run(self) -> None:
        for _ in range(self._schedule.randint(0, self._most)):
            await asyncio.sleep(0)

    async def append(
        self, stream_id: str, expected_version: ExpectedVersion, events: Sequence[NewEvent]
    ) -> AppendResult:
        await self._let_others_run()
        try:
            return await super().append(stream_id, expected_version, events)
        except ConcurrencyError:
            self.conflicts += 1
            raise

    async def read_stream(
        self, stream_id: str, from_version: int = 1, to_version: int | None = None
    ) -> list[RecordedEvent]:
        await self._let_others_run()
        return await super().read_stream(stream_id, from_version, to_version)


class GatedEventStore(MemoryEventStore):
    """Holds the first ``parties`` appends to room streams until all have arrived."""

    def __init__(self, parties: int) -> None:
        super().__init__()
        self._parties = parties
        self._gate = asyncio.Barrier(parties)
        self.expected_versions: list[int] = []

    async def append(
        self, stream_id: str, expected_version: ExpectedVersion, events: Sequence[NewEvent]
    ) -> AppendResult:
        if stream_id.startswith("room-") and len(self.expected_versions) < self._parties:
            self.expected_versions.append(expected_version)
            await self._gate.wait()
        return await super().append(stream_id, expected_version, events)


def new_game(store: EventStore, world: World, *, max_attempts: int = 5, roll: int = 0) -> Game:
    repository = Repository(store, MemorySnapshotStore(), event_codec(), max_attempts=max_attempts)
    return Game(repository, world, roll=lambda: roll)


async def joined(game: Game, count: int) -> list[str]:
    return [(await game.create_character(f"Player {n}")).player.player_id for n in range(count)]


async def stored(game: Game, stream_id: str) -> list[Event]:
    recorded = await game.repository.store.read_stream(stream_id)
    return [game.repository.codec.decode(event) for event in recorded]


async def stored_of(game: Game, stream_id: str, kind: type[Event]) -> list[Event]:
    return [event for event in await stored(game, stream_id) if isinstance(event, kind)]


async def put_down_in_the_square(game: Game, handover_id: str) -> list[ItemPutDown]:
    """The square's ``ItemPutDown`` events of one hand-over."""
    return [
        e
        for e in await stored_of(game, f"room-{SQUARE}", ItemPutDown)
        if isinstance(e, ItemPutDown) and e.handover_id == handover_id
    ]


async def perform(game: Game, player_id: str, verb: str, words: str) -> str:
    """Run a take or a drop; answer "ok", the expected refusal's code, or "crashed"."""
    try:
        if verb == "take":
            await game.take(player_id, words)
        else:
            await game.drop(player_id, words)
    except SimulatedCrash:
        return "crashed"
    except DomainError as error:
        if error.code not in EXPECTED_REFUSALS:
            raise
        return error.code
    return "ok"


async def whereabouts(game: Game, player_ids: Iterable[str]) -> list[str]:
    """Every item id found in the square or in an inventory, once per place, read afresh."""
    fresh = new_game(game.repository.store, game.world)
    places = [item.item_id for item in (await fresh.room(SQUARE)).items]
    for player_id in player_ids:
        places += [item.item_id for item in (await fresh.player(player_id)).inventory]
    return places


def misplaced(places: list[str], expected: Iterable[str]) -> dict[str, list[str]]:
    """What breaks "each item in exactly one place": duplicated, missing and unknown ids."""
    counts = Counter(places)
    return {
        "in two places": sorted(item for item, n in counts.items() if n > 1),
        "vanished": sorted(set(expected) - set(counts)),
        "unknown": sorted(set(counts) - set(expected)),
    }


SETTLED: Final[dict[str, list[str]]] = {"in two places": [], "vanished": [], "unknown": []}


async def finish_every_hand_over_again(game: Game, player_ids: Iterable[str]) -> None:
    """Redeliver every hand-over's finish, as a recovery process that cannot tell which ran."""
    for event in await stored(game, f"room-{SQUARE}"):
        if isinstance(event, ItemPickedUp):
            await game.handovers.finish_take(event, SQUARE)
    for player_id in player_ids:
        for event in await stored(game, f"player-{player_id}"):
            if isinstance(event, ItemDropped):
                await game.handovers.finish_drop(event, player_id)


# -- (a) concurrent takes and drops ----------------------------------------------------------

COMMAND = st.tuples(st.sampled_from(["take", "drop"]), st.sampled_from(WORDS))


@settings(max_examples=100, deadline=None)
@given(
    scripts=st.lists(st.lists(COMMAND, min_size=1, max_size=8), min_size=2, max_size=4),
    each_command_alone=st.booleans(),
    schedule=st.randoms(use_true_random=False),
)
def test_concurrent_takes_and_drops_leave_every_item_in_exactly_one_place(
    scripts: list[list[tuple[str, str]]], each_command_alone: bool, schedule: Random
) -> None:
    async def play_script(game: Game, player_id: str, script: list[tuple[str, str]]) -> None:
        for verb, words in script:
            await perform(game, player_id, verb, words)

    async def scenario() -> None:
        world, store = crowded_world(), YieldingEventStore(schedule)
        game = new_game(store, world, max_attempts=PATIENT)
        player_ids = await joined(game, len(scripts))
        if each_command_alone:  # a player's own commands race each other too
            await asyncio.gather(
                *(
                    perform(game, player_id, verb, words)
                    for player_id, script in zip(player_ids, scripts, strict=True)
                    for verb, words in script
                )
            )
        else:
            await asyncio.gather(
                *(play_script(game, p, s) for p, s in zip(player_ids, scripts, strict=True))
            )
        hypothesis.event(
            f"appends lost to a concurrent writer: {'some' if store.conflicts else 'none'}"
        )
        refused = [await stored_of(game, f"player-{p}", HandoverSettled) for p in player_ids]
        hypothesis.event(f"takes refused on arrival: {'some' if any(refused) else 'none'}")
        assert misplaced(await whereabouts(game, player_ids), floor_ids(world)) == SETTLED
        for player_id in player_ids:
            held = (await game.player(player_id)).inventory
            assert len(held) <= world.player.max_items
        await finish_every_hand_over_again(game, player_ids)
        assert misplaced(await whereabouts(game, player_ids), floor_ids(world)) == SETTLED

    asyncio.run(scenario())


class HandoverMachine(RuleBasedStateMachine):
    """Three players take and drop in the square; some commands crash between the two streams
    and are finished (twice) by a later recovery. In between, an item in transit is nowhere,
    never in two places; after recovery each item is in exactly one place.
    """

    def __init__(self) -> None:
        super().__init__()
        self.world = crowded_world(max_items=2, max_weight=5)
        self.store = CrashingEventStore()
        self.game = new_game(self.store, self.world)
        self.player_ids = asyncio.run(joined(self.game, 3))
        self.pending_takes: list[ItemPickedUp] = []
        self.pending_drops: list[tuple[ItemDropped, str]] = []

    def act(self, who: int, verb: str, words: str, *, crash_on: str | None = None) -> str:
        self.store.crash_on = crash_on
        try:
            return asyncio.run(perform(self.game, self.player_ids[who], verb, words))
        finally:
            self.store.crash_on = None

    async def last_event(self, stream_id: str) -> Event:
        return (await stored(self.game, stream_id))[-1]

    @rule(
        who=st.integers(0, 2), verb=st.sampled_from(["take", "drop"]), words=st.sampled_from(WORDS)
    )
    def take_or_drop(self, who: int, verb: str, words: str) -> None:
        assert self.act(who, verb, words) != "crashed"

    @rule(who=st.integers(0, 2), words=st.sampled_from(WORDS))
    def take_but_crash_before_the_player_holds_it(self, who: int, words: str) -> None:
        if self.act(who, "take", words, crash_on="player-") == "crashed":
            picked = asyncio.run(self.last_event(f"room-{SQUARE}"))
            assert isinstance(picked, ItemPickedUp)
            self.pending_takes.append(picked)

    @rule(who=st.integers(0, 2), words=st.sampled_from(WORDS))
    def drop_but_crash_before_the_room_receives_it(self, who: int, words: str) -> None:
        player_id = self.player_ids[who]
        if self.act(who, "drop", words, crash_on="room-") == "crashed":
            dropped = asyncio.run(self.last_event(f"player-{player_id}"))
            assert isinstance(dropped, ItemDropped)
            self.pending_drops.append((dropped, player_id))

    @rule()
    def recover(self) -> None:
        if self.pending_takes or self.pending_drops:
            hypothesis.event("recovery finished interrupted hand-overs")

        async def finish_twice() -> None:
            for picked in self.pending_takes:
                for _ in range(2):
                    await self.game.handovers.finish_take(picked, SQUARE)
            for dropped, player_id in self.pending_drops:
                for _ in range(2):
                    await self.game.handovers.finish_drop(dropped, player_id)

        asyncio.run(finish_twice())
        self.pending_takes.clear()
        self.pending_drops.clear()
        assert self.misplaced() == SETTLED

    @invariant()
    def no_item_is_ever_in_two_places(self) -> None:
        found = self.misplaced()
        assert (found["in two places"], found["unknown"]) == ([], [])
        in_transit = {p.item.item_id for p in self.pending_takes} | {
            d.item.item_id for d, _ in self.pending_drops
        }
        assert set(found["vanished"]) == in_transit

    def misplaced(self) -> dict[str, list[str]]:
        return misplaced(
            asyncio.run(whereabouts(self.game, self.player_ids)), floor_ids(self.world)
        )

    def teardown(self) -> None:
        self.recover()


def test_items_are_never_in_two_places_through_crashes_and_recovery() -> None:
    run_state_machine_as_test(
        HandoverMachine,
        settings=settings(max_examples=50, stateful_step_count=20, deadline=None),
    )


# -- (b) crash recovery, step by step --------------------------------------------------------


#: How often recovery runs over one interrupted hand-over: every count from 1 to 16 (the
#: examples cover the whole range; each run takes a few milliseconds).
RECOVERY_RUNS: Final = st.integers(1, 16)
RECOVERY_SETTINGS: Final = settings(max_examples=40, deadline=None)


async def crashed_take(game: Game, store: CrashingEventStore, player_id: str) -> ItemPickedUp:
    """Take a torch, crashing after the room's ItemPickedUp; return that pending event."""
    store.crash_on = "player-"
    assert await perform(game, player_id, "take", "torch") == "crashed"
    store.crash_on = None
    picked = (await stored(game, f"room-{SQUARE}"))[-1]
    assert isinstance(picked, ItemPickedUp)
    return picked


@RECOVERY_SETTINGS
@given(RECOVERY_RUNS)
async def test_an_interrupted_take_is_finished_once_however_often_recovery_runs(times: int) -> None:
    store, world = CrashingEventStore(), crowded_world()
    game = new_game(store, world)
    [player_id] = await joined(game, 1)
    picked = await crashed_take(game, store, player_id)
    in_transit = misplaced(await whereabouts(game, [player_id]), floor_ids(world))
    assert in_transit == {**SETTLED, "vanished": [picked.item.item_id]}
    for _ in range(times):
        await game.handovers.finish_take(picked, SQUARE)
    assert (await game.player(player_id)).inventory == (picked.item,)
    assert len(await stored_of(game, f"player-{player_id}", ItemTaken)) == 1
    assert misplaced(await whereabouts(game, [player_id]), floor_ids(world)) == SETTLED


@RECOVERY_SETTINGS
@given(RECOVERY_RUNS)
async def test_an_interrupted_take_that_no_longer_fits_returns_the_item_once(times: int) -> None:
    store, world = CrashingEventStore(), crowded_world(max_items=1)
    game = new_game(store, world)
    [player_id] = await joined(game, 1)
    picked = await crashed_take(game, store, player_id)
    await game.take(player_id, "coin")  # the inventory is full before recovery runs
    for _ in range(times):
        await game.handovers.finish_take(picked, SQUARE)
    assert len(await stored_of(game, f"player-{player_id}", HandoverSettled)) == 1
    assert await stored_of(game, f"room-{SQUARE}", ItemPutDown) == [
        ItemPutDown(picked.item, player_id, picked.handover_id)
    ]
    assert misplaced(await whereabouts(game, [player_id]), floor_ids(world)) == SETTLED


async def test_a_refused_take_whose_return_was_interrupted_still_returns_the_item() -> None:
    store, world = CrashingEventStore(), crowded_world(max_items=1)
    game = new_game(store, world)
    [player_id] = await joined(game, 1)
    picked = await crashed_take(game, store, player_id)
    await game.take(player_id, "coin")
    store.crash_on = "room-"  # recovery itself dies after the player's side
    with pytest.raises(SimulatedCrash):
        await game.handovers.finish_take(picked, SQUARE)
    store.crash_on = None
    await game.handovers.finish_take(picked, SQUARE)
    assert misplaced(await whereabouts(game, [player_id]), floor_ids(world)) == SETTLED


@RECOVERY_SETTINGS
@given(RECOVERY_RUNS)
async def test_an_interrupted_drop_lands_the_item_once_however_often_recovery_runs(
    times: int,
) -> None:
    store, world = CrashingEventStore(), crowded_world()
    game = new_game(store, world)
    [player_id] = await joined(game, 1)
    await game.take(player_id, "torch")
    store.crash_on = "room-"
    assert await perform(game, player_id, "drop", "torch") == "crashed"
    store.crash_on = None
    dropped = (await stored(game, f"player-{player_id}"))[-1]
    assert isinstance(dropped, ItemDropped)
    assert (await game.player(player_id)).inventory == ()
    for _ in range(times):
        await game.handovers.finish_drop(dropped, player_id)
    assert await stored_of(game, f"room-{SQUARE}", ItemPutDown) == [
        ItemPutDown(dropped.item, player_id, dropped.handover_id)
    ]
    assert misplaced(await whereabouts(game, [player_id]), floor_ids(world)) == SETTLED


async def into_the_crypt(game: Game, player_id: str) -> None:
    await game.move(player_id, "s")
    await game.move(player_id, "d")


async def crashed_attack(
    game: Game, store: CrashingEventStore, player_id: str
) -> tuple[MonsterHit, MonsterDefeated | None]:
    """Attack a rat in the crypt, crashing after the room's events; return them."""
    store.crash_on = "player-"
    with pytest.raises(SimulatedCrash):
        await game.attack(player_id, "rat")
    store.crash_on = None
    recorded = await stored(game, "room-chapel_crypt")
    hit = next(e for e in reversed(recorded) if isinstance(e, MonsterHit))
    defeated = next((e for e in recorded if isinstance(e, MonsterDefeated)), None)
    return hit, defeated


@RECOVERY_SETTINGS
@given(RECOVERY_RUNS)
async def test_an_interrupted_fight_hurts_the_player_once_however_often_recovery_runs(
    times: int,
) -> None:
    store = CrashingEventStore()
    game = new_game(store, load_world(), roll=16)  # blows of 4, the rat answers with 4
    [player_id] = await joined(game, 1)
    await into_the_crypt(game, player_id)
    hit, defeated = await crashed_attack(game, store, player_id)
    assert (defeated, hit.counter_damage) == (None, 4)
    for _ in range(times):
        await game.handovers.finish_fight(hit, defeated)
    assert (await game.player(player_id)).health == 96
    assert await stored_of(game, f"player-{player_id}", DamageTaken) == [
        DamageTaken(4, "giant_rat", "chapel_crypt", hit.handover_id)
    ]


@RECOVERY_SETTINGS
@given(RECOVERY_RUNS)
async def test_an_interrupted_victory_pays_its_xp_once_however_often_recovery_runs(
    times: int,
) -> None:
    store = CrashingEventStore()
    game = new_game(store, load_world(), roll=3)  # blows of 4 + 3 = 7
    [player_id] = await joined(game, 1)
    await into_the_crypt(game, player_id)
    await game.attack(player_id, "rat")  # 8 - 7: one health left
    hit, defeated = await crashed_attack(game, store, player_id)
    assert defeated is not None
    for _ in range(times):
        await game.handovers.finish_fight(hit, defeated)
    survivor = await game.player(player_id)
    assert (survivor.xp, survivor.kills) == (10, 1)
    assert await stored_of(game, f"player-{player_id}", XpGained) == [
        XpGained(10, "giant_rat", hit.handover_id)
    ]


# -- (c) a contested item --------------------------------------------------------------------

TORCH: Final = HeldItem(f"{SQUARE}.torch.0", "torch")


async def reach_for_the_torch(game: Game, player_ids: list[str]) -> list[str]:
    """Every player takes the square's one torch at once; answer each one's result."""
    results = await asyncio.gather(
        *(perform(game, player_id, "take", "torch") for player_id in player_ids)
    )
    return list(results)


@settings(max_examples=40, deadline=None)
@given(st.integers(2, 4), st.randoms(use_true_random=False))
async def test_of_players_reaching_for_one_item_at_once_exactly_one_gets_it(
    count: int, schedule: Random
) -> None:
    store = YieldingEventStore(schedule)
    game = new_game(store, load_world(), max_attempts=PATIENT)
    player_ids = await joined(game, count)
    results = await reach_for_the_torch(game, player_ids)
    hypothesis.event(
        f"appends lost to a concurrent writer: {'some' if store.conflicts else 'none'}"
    )
    assert sorted(results) == ["item_not_here"] * (count - 1) + ["ok"]
    winner = player_ids[results.index("ok")]
    for player_id in player_ids:
        held = (await game.player(player_id)).inventory
        assert held == ((TORCH,) if player_id == winner else ())
    assert (await game.room(SQUARE)).items == ()
    assert len(await stored_of(game, f"room-{SQUARE}", ItemPickedUp)) == 1


async def test_when_both_decide_on_the_same_room_version_the_loser_finds_the_item_gone() -> None:
    """Two processes (a repository each, sharing the store) decide on the same room version;
    one append wins."""
    store = GatedEventStore(parties=2)
    game, other = new_game(store, load_world()), new_game(store, load_world())
    player_ids = await joined(game, 2)
    results = list(
        await asyncio.gather(
            perform(game, player_ids[0], "take", "torch"),
            perform(other, player_ids[1], "take", "torch"),
        )
    )
    assert store.expected_versions == [0, 0]  # both passed the checks before either wrote
    assert sorted(results) == ["item_not_here", "ok"]
    [picked] = await stored(game, f"room-{SQUARE}")
    assert isinstance(picked, ItemPickedUp)
    assert (picked.item, picked.player_id) == (TORCH, player_ids[results.index("ok")])


# -- (d) finishes redelivered late, and what they record ------------------------------------


async def forget(game: Game, stream: str, count: int = RECENT_HANDOVERS + 1) -> None:
    """Finish ``count`` other hand-overs on ``stream`` so its memory of hand-overs rolls over."""
    for n in range(count):
        if stream == "room":
            await game.handovers.finish_drop(
                ItemDropped(HeldItem(f"pebble.{n}", "pebble"), SQUARE, f"other-{n}"), "x"
            )
        else:
            await game.handovers.finish_fight(other_hit(n, stream), None)


def other_hit(n: int, player_id: str) -> MonsterHit:
    return MonsterHit("crypt.rat.0", "giant_rat", player_id, 0, 8, 0, f"other-{n}")


async def test_a_drop_finished_again_after_the_room_forgot_it_still_lands_once() -> None:
    game = new_game(MemoryEventStore(), crowded_world())
    [player_id] = await joined(game, 1)
    await game.take(player_id, "torch")
    await game.drop(player_id, "torch")
    [dropped] = await stored_of(game, f"player-{player_id}", ItemDropped)
    assert isinstance(dropped, ItemDropped)
    await forget(game, "room")
    assert dropped.handover_id not in (await game.room(SQUARE)).recent_handovers
    assert (await game.handovers.finish_drop(dropped, player_id)).events == []
    landed = await put_down_in_the_square(game, dropped.handover_id)
    assert landed == [ItemPutDown(dropped.item, player_id, dropped.handover_id)]


async def test_a_take_finished_again_after_the_player_forgot_it_is_received_once() -> None:
    game = new_game(MemoryEventStore(), crowded_world())
    [player_id] = await joined(game, 1)
    await game.take(player_id, "torch")
    [picked] = await stored_of(game, f"room-{SQUARE}", ItemPickedUp)
    assert isinstance(picked, ItemPickedUp)
    await forget(game, player_id)
    assert picked.handover_id not in (await game.player(player_id)).recent_handovers
    again = await game.handovers.finish_take(picked, SQUARE)
    assert again.events == []
    assert (await game.player(player_id)).inventory == (picked.item,)
    assert len(await stored_of(game, f"player-{player_id}", ItemTaken)) == 1


async def test_a_refused_take_returned_again_after_the_room_forgot_it_is_returned_once() -> None:
    store, world = CrashingEventStore(), crowded_world(max_items=1)
    game = new_game(store, world)
    [player_id] = await joined(game, 1)
    picked = await crashed_take(game, store, player_id)
    await game.take(player_id, "coin")
    first = await game.handovers.finish_take(picked, SQUARE)
    assert first.state.refused_handovers[-1] == picked.handover_id
    assert [type(e) for e in first.events] == [HandoverSettled, ItemPutDown]
    assert first.result is not None
    await forget(game, "room")
    await game.handovers.finish_take(picked, SQUARE)
    returned = await put_down_in_the_square(game, picked.handover_id)
    assert returned == [ItemPutDown(picked.item, player_id, picked.handover_id)]


async def test_a_fight_finished_again_after_the_player_forgot_it_hurts_once() -> None:
    store = CrashingEventStore()
    game = new_game(store, load_world(), roll=16)
    [player_id] = await joined(game, 1)
    await into_the_crypt(game, player_id)
    hit, defeated = await crashed_attack(game, store, player_id)
    await game.handovers.finish_fight(hit, defeated)
    await forget(game, player_id)
    assert hit.handover_id not in (await game.player(player_id)).recent_handovers
    await game.handovers.finish_fight(hit, defeated)
    assert (await game.player(player_id)).health == 96


async def test_each_finish_records_its_hand_over_as_cause_correlation_and_the_player_as_actor() -> (
    None
):
    store = CrashingEventStore()
    game = new_game(store, crowded_world(max_items=1))
    [player_id] = await joined(game, 1)
    picked = await crashed_take(game, store, player_id)
    await game.take(player_id, "coin")
    await game.handovers.finish_take(picked, SQUARE)  # refused, and returned to the room
    await game.drop(player_id, "coin")
    await into_the_crypt(game, player_id)
    hit, defeated = await crashed_attack(game, store, player_id)
    await game.handovers.finish_fight(hit, defeated)
    finished = [
        r
        for stream in (f"player-{player_id}", f"room-{SQUARE}")
        for r in await store.read_stream(stream)
        if r.event_type in {"HandoverSettled", "ItemPutDown", "ItemTaken", "DamageTaken"}
    ]
    assert {r.event_type for r in finished} >= {"HandoverSettled", "ItemPutDown"}
    assert any(r.event_type == "DamageTaken" for r in finished)
    for r in finished:
        handover = game.repository.codec.decode(r).handover_id  # type: ignore[attr-defined]
        assert (r.metadata.correlation_id, r.metadata.causation_id) == (handover, handover)
        assert r.metadata.actor == player_id
