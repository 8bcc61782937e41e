"""A hand-over whose second half cannot be made now is answered as done and finished later.

Once the first half is recorded the command has happened. Answering "conflict" (writers kept
colliding on a crowded room) or "unavailable" would invite a retry that finds the item gone; the
hand-over manager finishes the rest, once.
"""

from __future__ import annotations

from collections.abc import Sequence

import pytest

from adventure_quest.app.aggregates import event_codec, player_id_for
from adventure_quest.app.game import Game
from adventure_quest.app.repository import Repository
from adventure_quest.app.world_loader import load_world
from adventure_quest.domain.events import (
    DamageTaken,
    ItemDropped,
    ItemPickedUp,
    ItemPutDown,
    ItemTaken,
    MonsterHit,
)
from adventure_quest.messaging.memory import MemoryQueue
from adventure_quest.processing.handover_manager import HandoverManager
from adventure_quest.store.envelope import AppendResult, ExpectedVersion, NewEvent
from adventure_quest.store.errors import ConcurrencyError, StoreUnavailableError
from adventure_quest.store.memory import MemoryEventStore, MemorySnapshotStore

WORLD = load_world()


class Contested(MemoryEventStore):
    """Refuses every append to streams starting with ``contested`` (another writer always wins,
    or the store is out of reach)."""

    contested: str | None = None
    failure: type[Exception] = ConcurrencyError

    async def append(
        self, stream_id: str, expected_version: ExpectedVersion, events: Sequence[NewEvent]
    ) -> AppendResult:
        if self.contested and stream_id.startswith(self.contested):
            if self.failure is ConcurrencyError:
                raise ConcurrencyError(stream_id, expected_version, expected_version + 1)
            raise StoreUnavailableError("the store is out of reach", retryable=False)
        return await super().append(stream_id, expected_version, events)


def new_game() -> tuple[Contested, Game, str]:
    store = Contested()
    repository = Repository(store, MemorySnapshotStore(), event_codec(), max_attempts=2)
    return store, Game(repository, WORLD, roll=lambda: 0), player_id_for("Busy")


async def finish_everything(game: Game, store: MemoryEventStore) -> int:
    manager = HandoverManager(game, MemoryQueue(["handovers"], 1), [0])
    for recorded in await store.read_all(0, 10_000):
        await manager.handle(recorded)
    return manager.finished


async def types_of(store: MemoryEventStore, stream_id: str) -> list[str]:
    return [e.event_type for e in await store.read_stream(stream_id)]


@pytest.mark.parametrize("failure", [ConcurrencyError, StoreUnavailableError])
async def test_a_drop_the_room_cannot_take_now_is_done_and_lands_once_later(
    failure: type[Exception],
) -> None:
    store, game, me = new_game()
    await game.create_character("Busy")
    await game.take(me, "torch")
    store.contested, store.failure = "room-", failure
    outcome = await game.drop(me, "torch")
    assert [type(e) for e in outcome.events] == [ItemDropped]
    assert outcome.player.inventory == ()
    store.contested = None
    square = await game.room(WORLD.start_room)
    assert square.items == ()  # in transit
    assert await finish_everything(game, store) == 1
    game.repository.forget(f"room-{WORLD.start_room}")
    assert [i.item_key for i in (await game.room(WORLD.start_room)).items] == ["torch"]
    room_types = await types_of(store, f"room-{WORLD.start_room}")
    assert room_types.count(ItemPutDown.__name__) == 1
    assert await finish_everything(game, store) == 0


async def test_a_take_and_a_blow_the_player_cannot_take_now_are_finished_later() -> None:
    store, game, me = new_game()
    await game.create_character("Busy")
    store.contested = "player-"
    taken = await game.take(me, "torch")
    assert [type(e) for e in taken.events] == [ItemPickedUp]
    assert taken.player.inventory == ()
    store.contested = None
    await game.move(me, "s")
    await game.move(me, "d")
    store.contested = "player-"
    hit = await game.attack(me, "rat")
    assert [type(e) for e in hit.events] == [MonsterHit]
    store.contested = None
    assert await finish_everything(game, store) == 2
    game.repository.forget(f"player-{me}")
    busy = await game.player(me)
    assert [i.item_key for i in busy.inventory] == ["torch"]
    player_types = await types_of(store, f"player-{me}")
    assert player_types.count(ItemTaken.__name__) == 1
    assert player_types.count(DamageTaken.__name__) == 1
