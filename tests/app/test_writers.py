"""Commands for one stream in one process queue behind one writer instead of conflicting."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from adventure_quest.app.aggregates import event_codec, player_id_for
from adventure_quest.app.game import Game
from adventure_quest.app.repository import Repository, Writers
from adventure_quest.app.world_loader import load_world
from adventure_quest.domain.errors import DomainError
from adventure_quest.store.envelope import AppendResult, ExpectedVersion, NewEvent
from adventure_quest.store.errors import ConcurrencyError
from adventure_quest.store.sqlite.events import SQLiteEventStore
from adventure_quest.store.sqlite.snapshots import SQLiteSnapshotStore

WORLD = load_world()


class CountingStore(SQLiteEventStore):
    """A real SQLite store that counts the appends refused for a stale expected version."""

    conflicts = 0

    async def append(
        self, stream_id: str, expected: ExpectedVersion, events: Sequence[NewEvent]
    ) -> AppendResult:
        try:
            return await super().append(stream_id, expected, events)
        except ConcurrencyError:
            self.conflicts += 1
            raise


async def test_a_crowd_grabbing_the_one_torch_of_a_room_never_conflicts(tmp_path: Path) -> None:
    """Forty characters in the start room all reach for its one torch at once, ten times over
    (whoever got it drops it again): every take loads and decides on the room's stream, and
    with one attempt each, any take that failed over another would answer ``conflict``."""
    store = CountingStore(str(tmp_path / "events.sqlite"))
    snapshots = SQLiteSnapshotStore(str(tmp_path / "events.sqlite"))
    repository = Repository(store, snapshots, event_codec(), max_attempts=1)
    game = Game(repository, WORLD)
    names = [f"Crowd{n}" for n in range(40)]
    for name in names:
        await game.create_character(name)
    ids = [player_id_for(name) for name in names]
    room = game.rooms.stream_id(WORLD.start_room)
    before = await store.stream_version(room)

    async def reach(player_id: str) -> bool:
        try:
            await game.take(player_id, "torch")
        except DomainError as error:  # not here any more: refused, not conflicted
            return "torch" not in str(error)
        return True

    for _ in range(10):
        got = await asyncio.gather(*(reach(p) for p in ids))
        assert sum(got) == 1
        await game.drop(ids[got.index(True)], "torch")
    assert store.conflicts == 0
    assert await store.stream_version(room) - before >= 20  # each take and drop wrote it
    assert repository.writers.waiting(room) == 0  # nothing left queued
    await store.close()
    await snapshots.close()


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    holds=st.lists(st.integers(0, 5), min_size=1, max_size=12),
    streams=st.integers(1, 3),
)
async def test_writers_of_a_stream_take_turns_in_arrival_order_and_leave_nothing(
    holds: list[int], streams: int
) -> None:
    writers = Writers()
    inside: dict[str, int] = {}
    order: dict[str, list[int]] = {}

    async def write(n: int, pauses: int) -> None:
        stream = f"s{n % streams}"
        async with writers.turn(stream):
            inside[stream] = inside.get(stream, 0) + 1
            assert inside[stream] == 1, "two writers of one stream at once"
            order.setdefault(stream, []).append(n)
            for _ in range(pauses):
                await asyncio.sleep(0)
            inside[stream] -= 1

    tasks = []
    for n, pauses in enumerate(holds):
        tasks.append(asyncio.create_task(write(n, pauses)))
        await asyncio.sleep(0)  # each arrives (and queues) before the next
    await asyncio.gather(*tasks)
    for stream, seen in order.items():
        assert seen == sorted(seen), f"{stream}: {seen}"
        assert writers.waiting(stream) == 0


async def test_a_failing_decision_lets_the_next_writer_go(tmp_path: Path) -> None:
    store = CountingStore(str(tmp_path / "events.sqlite"))
    snapshots = SQLiteSnapshotStore(str(tmp_path / "events.sqlite"))
    game = Game(Repository(store, snapshots, event_codec(), max_attempts=1), WORLD)
    await game.create_character("Ann")
    ann = player_id_for("Ann")
    await game.take(ann, "torch")
    results = await asyncio.gather(
        game.drop(ann, "sword"),  # she has none: refused, and the queue goes on
        game.drop(ann, "torch"),
        return_exceptions=True,
    )
    assert isinstance(results[0], DomainError)
    assert not isinstance(results[1], BaseException)
    assert store.conflicts == 0
    await store.close()
    await snapshots.close()
