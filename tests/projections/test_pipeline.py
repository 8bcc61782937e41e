"""The processing path end to end: store -> relay -> queue -> workers -> read models."""

from __future__ import annotations

import asyncio
import contextlib
import random
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from adventure_quest.app.aggregates import event_codec, player_id_for
from adventure_quest.app.game import Game
from adventure_quest.app.repository import Repository
from adventure_quest.app.world_loader import load_world
from adventure_quest.domain.errors import DomainError
from adventure_quest.messaging.memory import MemoryQueue
from adventure_quest.processing.projection_worker import ProjectionWorker
from adventure_quest.processing.relay import Relay
from adventure_quest.projections.model import Projection, Row, Table
from adventure_quest.projections.players import (
    LEADERBOARD,
    PLAYER_DETAILS,
    Leaderboard,
    PlayerDetails,
)
from adventure_quest.projections.ports import ReadDatabase
from adventure_quest.projections.rooms import ROOM_VIEW, ROOM_VIEW_PLAYERS, RoomView
from adventure_quest.projections.runner import ProjectionRunner
from adventure_quest.projections.sqlite import SQLiteReadDatabase
from adventure_quest.store.memory import MemoryCheckpointStore, MemorySnapshotStore
from adventure_quest.store.ports import EventStore
from tests.conftest import StoreFactory

WORLD = load_world()
TABLES = (PLAYER_DETAILS, LEADERBOARD, ROOM_VIEW, ROOM_VIEW_PLAYERS)
VERBS = ["move", "take", "drop", "attack", "use", "say"]
WORDS = {
    "move": ["north", "south", "east", "west", "up", "down"],
    "take": ["torch", "rope", "club", "herb", "potion", "sword", "coin"],
    "drop": ["torch", "rope", "club", "herb"],
    "attack": ["rat", "spider", "wolf", "bat"],
    "use": ["herb", "potion"],
    "say": ["hello", "anyone here?"],
}


def projections() -> list[Projection]:
    return [PlayerDetails(), Leaderboard(), RoomView(WORLD)]


async def play(game: Game, names: list[str], steps: int, seed: int) -> None:
    rng = random.Random(seed)
    for name in names:
        await game.create_character(name)

    async def one(name: str) -> None:
        for _ in range(steps):
            verb = rng.choice(VERBS)
            try:
                await getattr(game, verb)(player_id_for(name), rng.choice(WORDS[verb]))
            except DomainError:
                if verb == "attack":
                    with contextlib.suppress(DomainError):
                        await game.respawn(player_id_for(name))

    await asyncio.gather(*(one(name) for name in names))


async def dump(db: ReadDatabase, tables: tuple[Table, ...] = TABLES) -> dict[str, list[Row]]:
    return {t.name: await db.select(t, order_by=[(t.key, False)]) for t in tables}


async def rebuild(store: EventStore, path: Path) -> dict[str, list[Row]]:
    """Every projection rebuilt straight from the full log into a new read database."""
    db = SQLiteReadDatabase(str(path))
    runner = ProjectionRunner(db, projections(), store, event_codec())
    await runner.setup()
    for log in store.logs():
        after = 0
        while page := await log.read_all(after, 333):
            await runner.apply(page)
            after = page[-1].position
    result = await dump(db)
    await db.close()
    return result


@settings(
    max_examples=8, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    seed=st.integers(0, 10_000), players=st.integers(1, 4), partitions=st.sampled_from([1, 4, 16])
)
async def test_live_read_models_equal_a_rebuild_from_the_log(
    make_store: StoreFactory,
    tmp_path_factory: pytest.TempPathFactory,
    seed: int,
    players: int,
    partitions: int,
) -> None:
    """Invariant 5, through the relay, the in-process queue and two workers."""
    folder = Path(str(tmp_path_factory.mktemp("rm")))

    store = make_store()
    game = Game(Repository(store, MemorySnapshotStore(), event_codec()), WORLD, roll=lambda: seed)
    queue = MemoryQueue(["projections"], partitions)
    db = SQLiteReadDatabase(str(folder / "live.sqlite"))
    runner = ProjectionRunner(db, projections(), store, event_codec())
    await runner.setup()
    stop = asyncio.Event()
    half = partitions // 2 or 1
    workers = (
        [
            ProjectionWorker(runner, queue, range(half), fetch_timeout_s=0.05),
            ProjectionWorker(runner, queue, range(half, partitions), fetch_timeout_s=0.05),
        ]
        if partitions > 1
        else [ProjectionWorker(runner, queue, [0], fetch_timeout_s=0.05)]
    )
    relays = [Relay(log, queue, MemoryCheckpointStore(), idle_wait_s=0.05) for log in store.logs()]
    tasks = [asyncio.create_task(w.run(stop)) for w in workers]
    tasks += [asyncio.create_task(r.run(stop)) for r in relays]
    await play(game, [f"Hero{n}" for n in range(players)], 25, seed)
    for relay in relays:  # publish returns once the workers applied and acknowledged
        while await relay.lag():
            await asyncio.sleep(0.02)
    stop.set()
    await asyncio.gather(*tasks)
    live_tables = await dump(db)
    await db.close()
    rebuilt = await rebuild(store, folder / "rebuilt.sqlite")
    assert live_tables == rebuilt
    assert len(live_tables["player_details"]) == players
