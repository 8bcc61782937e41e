"""The world clock: every tick once, none missed across restarts; respawns once per tick."""

from __future__ import annotations

import asyncio
import itertools

from adventure_quest.app.aggregates import event_codec, player_id_for
from adventure_quest.app.game import Game
from adventure_quest.app.repository import Repository
from adventure_quest.app.world_loader import load_world
from adventure_quest.domain import clock, room
from adventure_quest.domain.events import RoomRestocked, WorldTicked
from adventure_quest.messaging.memory import MemoryQueue
from adventure_quest.processing.relay import Relay
from adventure_quest.processing.respawn_manager import RespawnManager
from adventure_quest.processing.world_clock import WorldClock
from adventure_quest.store.memory import (
    MemoryCheckpointStore,
    MemoryEventStore,
    MemorySnapshotStore,
)

WORLD = load_world()


class Time:
    """A clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


def new_game(store: MemoryEventStore) -> Game:
    return Game(Repository(store, MemorySnapshotStore(), event_codec()), WORLD, roll=lambda: 0)


async def ticks(store: MemoryEventStore) -> list[int]:
    return [e.version for e in await store.read_stream(clock.CLOCK_STREAM)]


async def test_a_restarted_clock_appends_every_missed_tick_once() -> None:
    store, time = MemoryEventStore(), Time()
    first = WorldClock(new_game(store), period_s=10, now=time)
    await first.tick()
    time.now += 25  # two ticks due
    await first.tick()
    await first.tick()  # nothing more due: nothing appended
    assert await ticks(store) == [1, 2, 3]
    time.now += 35.5  # the clock was down: ticks due at +30, +40, +50 and +60 missed
    restarted = WorldClock(new_game(store), period_s=10, now=time)
    assert len(await restarted.tick()) == 4
    recorded = await store.read_stream(clock.CLOCK_STREAM)
    decoded = [event_codec().decode(e) for e in recorded]
    assert [t.tick for t in decoded if isinstance(t, WorldTicked)] == [1, 2, 3, 4, 5, 6, 7]
    ats = [t.at for t in decoded if isinstance(t, WorldTicked)]
    assert all(later - earlier == 10 for earlier, later in itertools.pairwise(ats))


async def test_two_clocks_racing_append_each_tick_once() -> None:
    store, time = MemoryEventStore(), Time()
    clocks = [WorldClock(new_game(store), period_s=1, now=time) for _ in range(4)]
    for _ in range(20):
        time.now += 1
        await asyncio.gather(*(c.tick() for c in clocks))
    decoded = [event_codec().decode(e) for e in await store.read_stream(clock.CLOCK_STREAM)]
    numbers = [t.tick for t in decoded if isinstance(t, WorldTicked)]
    assert numbers == list(range(1, len(numbers) + 1))
    assert len(numbers) == 20  # the first tick at the first call, then one a second


async def test_a_tick_brings_a_defeated_monster_back_once_with_a_new_id() -> None:
    store, time = MemoryEventStore(), Time()
    game = new_game(store)
    await game.create_character("Hunter")
    me = player_id_for("Hunter")
    await game.move(me, "south")
    await game.move(me, "down")
    here = (await game.player(me)).room
    while any(m.monster_key == "giant_rat" for m in (await game.room(here)).monsters):
        await game.attack(me, "rat")
    clock_ = WorldClock(game, period_s=10, now=time)
    await clock_.tick()
    queue = MemoryQueue(["respawns"], partitions=2)
    manager = RespawnManager(game, queue, range(2), fetch_timeout_s=0.02)
    relay = Relay(store, queue, MemoryCheckpointStore(), idle_wait_s=0.02)
    stop = asyncio.Event()
    tasks = [asyncio.create_task(manager.run(stop)), asyncio.create_task(relay.run(stop))]
    while await relay.lag():
        await asyncio.sleep(0.01)
    rats = [m for m in (await game.room(here)).monsters if m.monster_key == "giant_rat"]
    assert len(rats) == WORLD.rooms[here].monsters.count("giant_rat")
    assert all(rat.monster_id.endswith("@1") for rat in rats)
    # The same tick handled again restocks nothing.
    again = await manager.handle((await store.read_stream(clock.CLOCK_STREAM))[0])
    assert again == []
    stop.set()
    await asyncio.gather(*tasks)
    restocks = [
        e for e in await store.read_stream(f"room-{here}") if e.event_type == "RoomRestocked"
    ]
    assert len(restocks) == 1


def test_restock_is_pure_and_once_per_tick() -> None:
    state = room.initial_state(WORLD, "chapel_crypt")
    assert room.restock(state, 1, WORLD) == []  # nothing missing
    emptied = room.RoomState("chapel_crypt")
    (restocked,) = room.restock(emptied, 3, WORLD)
    assert isinstance(restocked, RoomRestocked)
    after = room.evolve(emptied, restocked)
    assert room.restock(after, 3, WORLD) == []
    assert room.restock(after, 2, WORLD) == []
    assert len(after.monsters) == len(state.monsters)
