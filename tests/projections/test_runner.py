"""What the runner shares between projections, and what it must still keep apart."""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from pathlib import Path

import pytest

from adventure_quest.app.aggregates import event_codec, player_id_for
from adventure_quest.app.game import Game
from adventure_quest.app.repository import Repository
from adventure_quest.app.world_loader import load_world
from adventure_quest.domain.events import EVENT_TYPES, SCHEMA_VERSIONS, Event, XpGained
from adventure_quest.domain.upcasters import UPCASTERS
from adventure_quest.projections.catalog import projections
from adventure_quest.projections.model import Projection, Row
from adventure_quest.projections.players import LEADERBOARD, Leaderboard
from adventure_quest.projections.runner import ProjectionRunner
from adventure_quest.projections.sqlite import SQLiteReadDatabase
from adventure_quest.store.codec import EventCodec
from adventure_quest.store.envelope import ANY, RecordedEvent
from adventure_quest.store.memory import MemoryEventStore, MemorySnapshotStore

WORLD = load_world()


class CountingCodec(EventCodec[Event]):
    """The game's codec, counting what it decodes."""

    def __init__(self) -> None:
        super().__init__(EVENT_TYPES, SCHEMA_VERSIONS, UPCASTERS)
        self.decoded = 0

    def decode(self, recorded: RecordedEvent) -> Event:
        self.decoded += 1
        return super().decode(recorded)

    def decode_all(self, records: Sequence[RecordedEvent]) -> list[Event]:
        self.decoded += len(records)
        return [super(CountingCodec, self).decode(recorded) for recorded in records]


async def played(store: MemoryEventStore) -> list[RecordedEvent]:
    game = Game(Repository(store, MemorySnapshotStore(), event_codec()), WORLD)
    for name in ("Ann", "Bob"):
        await game.create_character(name)
    await game.move(player_id_for("Ann"), "north")
    await game.say(player_id_for("Bob"), "hello")
    await game.move(player_id_for("Ann"), "south")
    return await store.read_all(0, 1000)


async def runner_over(
    tmp_path: Path,
    chosen: list[Projection] | None = None,
    codec: EventCodec[Event] | None = None,
) -> tuple[MemoryEventStore, list[RecordedEvent], ProjectionRunner]:
    """A played store, its events, and a set-up runner over a fresh SQLite read database."""
    store = MemoryEventStore()
    events = await played(store)
    db = SQLiteReadDatabase(str(tmp_path / "read.sqlite"))
    runner = ProjectionRunner(
        db, projections(WORLD) if chosen is None else chosen, store, codec or event_codec()
    )
    await runner.setup()
    return store, events, runner


async def rows(runner: ProjectionRunner) -> dict[str, list[Row]]:
    return {t.name: await runner.db.select(t, order_by=[(t.key, False)]) for t in runner.tables}


async def test_each_event_is_decoded_once_however_many_projections_apply_it(tmp_path: Path) -> None:
    codec = CountingCodec()
    _, events, runner = await runner_over(tmp_path, codec=codec)
    counts = await runner.apply(events)
    assert counts.applied == len(events) * len(runner.projections)
    assert codec.decoded == len(events)
    await runner.db.close()


async def test_projections_at_different_versions_each_skip_only_what_they_applied(
    tmp_path: Path,
) -> None:
    store, events, runner = await runner_over(tmp_path)
    ahead = runner.projection("player_details")
    await runner.apply_to(ahead, events[:4])  # one projection ran ahead (a rebuild's catch-up)
    counts = await runner.apply(events)
    assert counts.duplicates == 4
    assert counts.applied == len(events) * len(runner.projections) - 4
    fresh = SQLiteReadDatabase(str(tmp_path / "fresh.sqlite"))
    once = ProjectionRunner(fresh, projections(WORLD), store, event_codec())
    await once.setup()
    await once.apply(events)
    assert await rows(runner) == await rows(once)
    await runner.db.close()
    await fresh.close()


async def test_events_a_projection_does_not_handle_still_move_its_versions(tmp_path: Path) -> None:
    _, events, runner = await runner_over(tmp_path, [Leaderboard()])
    assert (await runner.apply(events)).applied == len(events)
    assert (await runner.apply(events)).duplicates == len(events)
    board = await runner.db.select(LEADERBOARD, order_by=[("name", False)])
    assert [(r["name"], r["level"], r["xp"]) for r in board] == [("Ann", 1, 0), ("Bob", 1, 0)]
    await runner.db.close()


async def test_rows_kept_between_batches_are_forgotten_when_another_writer_commits(
    tmp_path: Path,
) -> None:
    store, events, runner = await runner_over(tmp_path, [Leaderboard()])
    await runner.apply(events)
    ann = player_id_for("Ann")
    assert runner.cache is not None
    assert (LEADERBOARD.name, ann) in runner.cache.rows  # kept for the next batch
    other = SQLiteReadDatabase(
        str(tmp_path / "read.sqlite")
    )  # another writer (a rebuild's swap, say) changes it
    async with other.unit() as unit:
        await unit.write(LEADERBOARD, {ann: {"name": "Ann", "level": 4, "xp": 70}}, [])
    await other.close()
    game = Game(Repository(store, MemorySnapshotStore(), event_codec()), WORLD)
    await game.create_character("Cid")  # a batch that does not touch Ann: still forgets
    await runner.apply((await store.read_all(0, 1000))[len(events) :])
    assert (LEADERBOARD.name, ann) not in runner.cache.rows
    await store.append(f"player-{ann}", ANY, [event_codec().encode(XpGained(5, "rat", "h1"))])
    await runner.apply((await store.read_all(0, 1000))[-1:])
    row = await runner.db.get(LEADERBOARD, ann)
    assert row == {"name": "Ann", "level": 4, "xp": 75}  # built on the other writer's row
    await runner.db.close()


async def test_a_failed_batch_forgets_every_row_kept(tmp_path: Path) -> None:
    _, events, runner = await runner_over(tmp_path)
    await runner.apply(events[:3])
    assert runner.cache is not None
    assert runner.cache.rows
    await runner.db.close()  # the next unit cannot even begin
    with pytest.raises(sqlite3.ProgrammingError):
        await runner.apply(events[3:])
    assert not runner.cache.rows
