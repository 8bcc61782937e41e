"""The hand-over process manager finishes what a crash between two streams left half done."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import pytest

from adventure_quest.app.aggregates import event_codec, player_id_for
from adventure_quest.app.game import Game
from adventure_quest.app.repository import Repository
from adventure_quest.app.world_loader import load_world
from adventure_quest.messaging.memory import MemoryQueue
from adventure_quest.processing.handover_manager import HandoverManager
from adventure_quest.processing.relay import Relay
from adventure_quest.store.envelope import AppendResult, ExpectedVersion, NewEvent, RecordedEvent
from adventure_quest.store.memory import (
    MemoryCheckpointStore,
    MemoryEventStore,
    MemorySnapshotStore,
)

WORLD = load_world()


class Crash(Exception):
    """The process died here."""


class CrashingStore(MemoryEventStore):
    """Fails the next append to a stream with the given prefix (a crash between two streams)."""

    crash_on: str | None = None

    async def append(
        self, stream_id: str, expected_version: ExpectedVersion, events: Sequence[NewEvent]
    ) -> AppendResult:
        if self.crash_on and stream_id.startswith(self.crash_on):
            self.crash_on = None
            raise Crash(stream_id)
        return await super().append(stream_id, expected_version, events)


async def recover(store: CrashingStore, game: Game) -> int:
    """Run the manager over the whole log once; the number of hand-overs it had to finish."""
    queue = MemoryQueue(["handovers"], partitions=4)
    manager = HandoverManager(game, queue, range(4), fetch_timeout_s=0.02)
    relay = Relay(store, queue, MemoryCheckpointStore(), idle_wait_s=0.02)
    stop = asyncio.Event()
    tasks = [asyncio.create_task(manager.run(stop)), asyncio.create_task(relay.run(stop))]
    while await relay.lag() or relay.position < await store.head():
        await asyncio.sleep(0.01)
    stop.set()
    await asyncio.gather(*tasks)
    return manager.finished


def new_game() -> tuple[CrashingStore, Game, str]:
    store = CrashingStore()
    game = Game(Repository(store, MemorySnapshotStore(), event_codec()), WORLD, roll=lambda: 0)
    return store, game, player_id_for("Crash")


async def player_events(store: MemoryEventStore, player_id: str) -> list[RecordedEvent]:
    return await store.read_stream(f"player-{player_id}")


async def test_a_take_cut_off_after_the_room_gave_the_item_is_finished_once() -> None:
    store, game, me = new_game()
    await game.create_character("Crash")
    store.crash_on = "player-"
    with pytest.raises(Crash):
        await game.take(me, "torch")
    assert (await game.room(WORLD.start_room)).items == ()  # gone from the floor...
    assert (await game.player(me)).inventory == ()  # ...and not yet held: in transit
    game.repository.forget(f"player-{me}")
    assert await recover(store, game) == 1
    assert [i.item_key for i in (await game.player(me)).inventory] == ["torch"]
    before = len(await player_events(store, me))
    assert await recover(store, game) == 0  # everything again: nothing more happens
    assert len(await player_events(store, me)) == before


async def test_a_drop_cut_off_after_the_player_let_go_lands_in_the_room_once() -> None:
    store, game, me = new_game()
    await game.create_character("Crash")
    await game.take(me, "torch")
    store.crash_on = "room-"
    with pytest.raises(Crash):
        await game.drop(me, "torch")
    assert (await game.room(WORLD.start_room)).items == ()
    game.repository.forget(f"room-{WORLD.start_room}")
    assert await recover(store, game) == 1
    room = await game.room(WORLD.start_room)
    assert [i.item_key for i in room.items] == ["torch"]
    assert await recover(store, game) == 0
    assert [i.item_key for i in (await game.room(WORLD.start_room)).items] == ["torch"]


async def test_a_fight_cut_off_after_the_blow_gives_its_outcome_once() -> None:
    store, game, me = new_game()
    await game.create_character("Crash")
    # The giant rat lives in the chapel crypt: south of the square, then down.
    await game.move(me, "south")
    await game.move(me, "down")
    here = (await game.player(me)).room
    assert any(m.monster_key == "giant_rat" for m in (await game.room(here)).monsters)
    store.crash_on = "player-"
    with pytest.raises(Crash):
        await game.attack(me, "rat")
    game.repository.forget(f"player-{me}")
    finished = await recover(store, game)
    assert finished == 1
    hit = (await store.read_stream(f"room-{here}"))[-1]
    outcomes = [e for e in await player_events(store, me) if e.event_type == "DamageTaken"]
    assert len(outcomes) == 1  # the rat's answer reached the player...
    assert outcomes[0].metadata.causation_id == hit.metadata.causation_id  # ...for that blow
    assert await recover(store, game) == 0
    again = [e for e in await player_events(store, me) if e.event_type == "DamageTaken"]
    assert len(again) == 1
