"""The achievements process end to end: store -> relay -> queue -> manager and read models.

A character kills a giant rat and explores; the manager unlocks each achievement exactly once on
the player's stream, however often the events reach it, and the read model lists them.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Final

from adventure_quest.app.aggregates import event_codec, player_id_for
from adventure_quest.app.game import Game
from adventure_quest.app.repository import Repository
from adventure_quest.app.world_loader import load_world
from adventure_quest.domain.events import AchievementUnlocked, MonsterDefeated, PlayerMoved
from adventure_quest.messaging.memory import MemoryQueue
from adventure_quest.processing.achievement_manager import AchievementsManager
from adventure_quest.processing.projection_worker import ProjectionWorker
from adventure_quest.processing.relay import Relay
from adventure_quest.projections.achievement_list import ACHIEVEMENTS, Achievements
from adventure_quest.projections.players import PlayerDetails
from adventure_quest.projections.runner import ProjectionRunner
from adventure_quest.projections.sqlite import SQLiteReadDatabase
from adventure_quest.store.envelope import (
    AppendResult,
    ExpectedVersion,
    NewEvent,
    RecordedEvent,
)
from adventure_quest.store.errors import StoreUnavailableError
from adventure_quest.store.memory import (
    MemoryCheckpointStore,
    MemoryEventStore,
    MemorySnapshotStore,
)

WORLD: Final = load_world()
PARTITIONS: Final = 4
#: Down from the village square to the chapel crypt, where the giant rats live.
TO_THE_RATS: Final = ("s", "d")
#: From the crypt, on through the village and the forest: ten different rooms in all.
EXPLORING: Final = ("u", "n", "n", "n", "n", "e", "w", "w", "e", "n", "w")
EARNED: Final = ["first_blood", "explorer"]


def new_game(store: MemoryEventStore) -> Game:
    """A game over ``store`` with its own repository (a process of its own), every roll 0."""
    return Game(Repository(store, MemorySnapshotStore(), event_codec()), WORLD, roll=lambda: 0)


async def kill_a_rat_and_explore(game: Game, player_id: str) -> None:
    """Take a character through its first kill, then on until it has seen ten rooms."""
    for direction in TO_THE_RATS:
        await game.move(player_id, direction)
    for _ in range(10):
        outcome = await game.attack(player_id, "rat")
        if any(isinstance(event, MonsterDefeated) for event in outcome.events):
            break
    else:
        raise AssertionError("the giant rat never fell")
    for direction in EXPLORING:
        await game.move(player_id, direction)


async def hero(game: Game, name: str = "Ratcatcher") -> str:
    """A new character who has killed a rat and explored; its id."""
    await game.create_character(name)
    await kill_a_rat_and_explore(game, player_id_for(name))
    return player_id_for(name)


async def settled(relays: Sequence[Relay]) -> None:
    """Wait until every event, unlocks included, was published and acknowledged by all groups.

    The queue's publish returns only once every group acknowledged, and the manager appends
    before it acknowledges: so a relay with no lag left has nothing in flight behind it.
    """
    while any([await relay.lag() for relay in relays]):
        await asyncio.sleep(0.01)


class Pipeline:
    """Relays, a projection worker and achievements managers running over one store."""

    def __init__(self, store: MemoryEventStore, read_db: Path, groups: Sequence[str]) -> None:
        self.store = store
        self.queue = MemoryQueue(["projections", *groups], PARTITIONS)
        self.db = SQLiteReadDatabase(str(read_db))
        self.runner = ProjectionRunner(
            self.db, [PlayerDetails(), Achievements()], store, event_codec()
        )
        self.managers = [
            AchievementsManager(new_game(store), self.queue, range(PARTITIONS), group,
                                fetch_timeout_s=0.05)
            for group in groups
        ]  # fmt: skip
        self.relays = [
            Relay(log, self.queue, MemoryCheckpointStore(), idle_wait_s=0.05)
            for log in store.logs()
        ]

    @asynccontextmanager
    async def running(self) -> AsyncIterator[Pipeline]:
        await self.runner.setup()
        stop = asyncio.Event()
        worker = ProjectionWorker(self.runner, self.queue, range(PARTITIONS), fetch_timeout_s=0.05)
        tasks = [asyncio.create_task(worker.run(stop))]
        tasks += [asyncio.create_task(manager.run(stop)) for manager in self.managers]
        tasks += [asyncio.create_task(relay.run(stop)) for relay in self.relays]
        try:
            yield self
            await settled(self.relays)
        finally:
            stop.set()
            await asyncio.gather(*tasks)


async def unlocks(store: MemoryEventStore, player_id: str) -> list[RecordedEvent]:
    """The AchievementUnlocked events on the character's stream."""
    stream = await store.read_stream(f"player-{player_id}")
    return [event for event in stream if event.event_type == "AchievementUnlocked"]


async def unlocked_keys(store: MemoryEventStore, player_id: str) -> list[str]:
    codec = event_codec()
    decoded = [codec.decode(event) for event in await unlocks(store, player_id)]
    return [event.achievement for event in decoded if isinstance(event, AchievementUnlocked)]


# -- unlocking through the pipeline ----------------------------------------------------------


async def test_a_first_kill_and_ten_rooms_unlock_first_blood_and_explorer_once_each(
    tmp_path: Path,
) -> None:
    store = MemoryEventStore()
    async with Pipeline(store, tmp_path / "read.sqlite", ["achievements"]).running():
        player_id = await hero(new_game(store))
    assert await unlocked_keys(store, player_id) == EARNED


async def test_the_achievements_read_model_lists_each_unlock_in_order_with_its_position(
    tmp_path: Path,
) -> None:
    store = MemoryEventStore()
    pipeline = Pipeline(store, tmp_path / "read.sqlite", ["achievements"])
    async with pipeline.running():
        player_id = await hero(new_game(store))
    row = await pipeline.db.get(ACHIEVEMENTS, player_id)
    recorded = await unlocks(store, player_id)
    await pipeline.db.close()
    assert row == {
        "name": "Ratcatcher",
        "unlocked": [
            {"achievement": "first_blood", "title": "First Blood",
             "position": recorded[0].position},
            {"achievement": "explorer", "title": "Explorer", "position": recorded[1].position},
        ],
        "count": 2,
    }  # fmt: skip


async def test_an_unlock_is_caused_by_the_event_that_earned_it_and_shares_its_correlation(
    tmp_path: Path,
) -> None:
    """However far behind the manager ran, the cause is the kill, and the tenth room."""

    store = MemoryEventStore()
    async with Pipeline(store, tmp_path / "read.sqlite", ["achievements"]).running():
        player_id = await hero(new_game(store))
    stream = {e.event_id: e for e in await store.read_stream(f"player-{player_id}")}
    for unlock in await unlocks(store, player_id):
        cause = stream[unlock.metadata.causation_id]
        assert cause.version < unlock.version
        assert cause.event_type != "AchievementUnlocked"
        assert unlock.metadata.correlation_id == cause.metadata.correlation_id
        assert unlock.metadata.actor == player_id
    first_blood, explorer = await unlocks(store, player_id)
    assert stream[first_blood.metadata.causation_id].event_type == "XpGained"
    tenth_room = event_codec().decode(stream[explorer.metadata.causation_id])
    assert tenth_room == PlayerMoved("whispering_pines", "spider_hollow", "west")


# -- exactly once, however often events arrive ------------------------------------------------


async def test_two_managers_fed_every_event_at_the_same_time_still_unlock_each_once(
    tmp_path: Path,
) -> None:
    """Two consumer groups over the same partitions: every event is handled twice, racing."""

    store = MemoryEventStore()
    groups = ["achievements", "achievements-twin"]
    async with Pipeline(store, tmp_path / "read.sqlite", groups).running() as pipeline:
        player_id = await hero(new_game(store))
    assert all(manager.checked > 0 for manager in pipeline.managers)
    assert await unlocked_keys(store, player_id) == EARNED


async def test_a_second_manager_replaying_the_whole_log_later_unlocks_nothing_more(
    tmp_path: Path,
) -> None:
    """A relay restarted from scratch re-publishes everything to a new manager."""

    store = MemoryEventStore()
    async with Pipeline(store, tmp_path / "first.sqlite", ["achievements"]).running():
        player_id = await hero(new_game(store))
    head = await store.head()
    again = Pipeline(store, tmp_path / "again.sqlite", ["achievements"])
    async with again.running():
        pass
    assert again.managers[0].checked > 0
    assert again.managers[0].unlocked == 0
    assert await store.head() == head
    assert await unlocked_keys(store, player_id) == EARNED


async def test_a_manager_far_behind_unlocks_each_achievement_at_the_event_that_earned_it() -> None:
    store = MemoryEventStore()
    game = new_game(store)
    player_id = await hero(game)
    manager = AchievementsManager(game, MemoryQueue(["achievements"]), [0])
    causes: list[tuple[str, str]] = []
    for recorded in await store.read_stream(f"player-{player_id}"):
        for event in await manager.handle(recorded):
            assert isinstance(event, AchievementUnlocked)
            causes.append((event.achievement, recorded.event_type))
    assert causes == [("first_blood", "XpGained"), ("explorer", "PlayerMoved")]


async def test_handling_every_event_of_the_stream_again_appends_nothing() -> None:
    store = MemoryEventStore()
    game = new_game(store)
    player_id = await hero(game)
    manager = AchievementsManager(game, MemoryQueue(["achievements"]), [0])
    events = await store.read_stream(f"player-{player_id}")
    first = [e for recorded in events for e in await manager.handle(recorded)]
    assert [e.achievement for e in first if isinstance(e, AchievementUnlocked)] == EARNED
    for recorded in await store.read_stream(f"player-{player_id}"):
        assert await manager.handle(recorded) == []
    assert await unlocked_keys(store, player_id) == EARNED


async def test_a_manager_whose_cached_character_is_stale_still_unlocks() -> None:
    """The manager of another process cached the character before it earned anything."""

    store = MemoryEventStore()
    player_game, manager_game = new_game(store), new_game(store)
    manager = AchievementsManager(manager_game, MemoryQueue(["achievements"]), [0])
    await player_game.create_character("Latecomer")
    player_id = player_id_for("Latecomer")
    (created,) = await store.read_stream(f"player-{player_id}")
    assert await manager.handle(created) == []  # caches the character as it was created
    await kill_a_rat_and_explore(player_game, player_id)
    latest = (await store.read_stream(f"player-{player_id}"))[-1]
    appended = await manager.handle(latest)
    assert [e.achievement for e in appended if isinstance(e, AchievementUnlocked)] == EARNED


class StoreDownOnce(MemoryEventStore):
    """Refuses the first append of an achievement, as a store that went away would."""

    def __init__(self) -> None:
        super().__init__()
        self.refused = 0

    async def append(
        self, stream_id: str, expected_version: ExpectedVersion, events: Sequence[NewEvent]
    ) -> AppendResult:
        if not self.refused and any(e.event_type == "AchievementUnlocked" for e in events):
            self.refused += 1
            raise StoreUnavailableError("the store went away", retryable=False)
        return await super().append(stream_id, expected_version, events)


async def test_a_store_outage_is_waited_out_and_the_unlock_happens_once(tmp_path: Path) -> None:
    store = StoreDownOnce()
    pipeline = Pipeline(store, tmp_path / "read.sqlite", ["achievements"])
    async with pipeline.running():
        player_id = await hero(new_game(store))
    assert store.refused == 1
    assert pipeline.managers[0].failures == 1
    assert await unlocked_keys(store, player_id) == EARNED


# -- the read model --------------------------------------------------------------------------


async def test_the_achievements_read_model_rebuilt_from_the_log_equals_the_live_one(
    tmp_path: Path,
) -> None:
    store = MemoryEventStore()
    pipeline = Pipeline(store, tmp_path / "live.sqlite", ["achievements"])
    async with pipeline.running():
        game = new_game(store)
        await hero(game, "Ann")
        await hero(game, "Bob")
        await game.create_character("Idle")
    live = await pipeline.db.select(ACHIEVEMENTS, order_by=[("player_id", False)])
    await pipeline.db.close()
    rebuilt_db = SQLiteReadDatabase(str(tmp_path / "rebuilt.sqlite"))
    runner = ProjectionRunner(rebuilt_db, [Achievements()], store, event_codec())
    await runner.setup()
    await runner.apply(await store.read_all(0, 10_000))
    rebuilt = await rebuilt_db.select(ACHIEVEMENTS, order_by=[("player_id", False)])
    await rebuilt_db.close()
    assert rebuilt == live
    assert sorted(row["count"] for row in live) == [0, 2, 2]
