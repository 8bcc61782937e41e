"""Poison events are parked in order per projection and stream; the rest goes on."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import pytest

from adventure_quest.app.aggregates import event_codec, player_id_for
from adventure_quest.app.game import Game
from adventure_quest.app.repository import Repository
from adventure_quest.app.world_loader import load_world
from adventure_quest.domain.events import Event, PlayerMoved, PlayerSaid
from adventure_quest.messaging.memory import MemoryQueue
from adventure_quest.processing.groups import GROUP
from adventure_quest.processing.status import prometheus, read_status
from adventure_quest.projections.dead_letter_admin import DeadLetterAdmin
from adventure_quest.projections.dead_letters import DEAD_LETTERS
from adventure_quest.projections.model import Decoded, Memo, Row, RowKey, Rows, Table
from adventure_quest.projections.players import PLAYER_DETAILS, PlayerDetails
from adventure_quest.projections.ports import ReadDatabase
from adventure_quest.projections.postgres import PostgresReadDatabase
from adventure_quest.projections.rooms import ROOM_VIEW_PLAYERS, RoomView
from adventure_quest.projections.runner import ProjectionRunner
from adventure_quest.projections.sqlite import SQLiteReadDatabase
from adventure_quest.store.envelope import ANY, NewEvent, RecordedEvent
from adventure_quest.store.memory import MemoryEventStore, MemorySnapshotStore
from tests import postgres
from tests.prometheus_text import sample

WORLD = load_world()


class Fragile(PlayerDetails):
    """Player details that choke on speeches containing "boom" until repaired."""

    broken = True

    def prefetch(self, event: Event, recorded: RecordedEvent) -> Iterable[RowKey]:
        return super().prefetch(event, recorded)

    def poison(self, event: Event) -> bool:
        return self.broken and isinstance(event, PlayerSaid) and "boom" in event.text

    async def apply(self, event: Event, recorded: RecordedEvent, rows: Rows) -> None:
        await super().apply(event, recorded, rows)  # a change that must be undone on failure
        if self.poison(event):
            raise ValueError("cannot handle a boom")

    async def apply_all(self, todo: Sequence[Decoded], rows: Rows, memo: Memo) -> None:
        await super().apply_all(todo, rows, memo)  # changes the runner must forget
        if any(self.poison(event) for event, _ in todo):
            raise ValueError("cannot handle a boom")


async def characters(*names: str) -> tuple[MemoryEventStore, Game, list[str]]:
    """A store, a game over it, and these characters created in it (their ids, in order)."""
    store = MemoryEventStore()
    game = Game(Repository(store, MemorySnapshotStore(), event_codec()), WORLD)
    for name in names:
        await game.create_character(name)
    return store, game, [player_id_for(name) for name in names]


async def all_events(store: MemoryEventStore) -> list[RecordedEvent]:
    return await store.read_all(0, 10_000)


async def test_a_failing_event_parks_its_stream_in_order_while_others_go_on(tmp_path: Path) -> None:
    store, game, (ann, bob) = await characters("Ann", "Bob")
    await game.say(ann, "hello")
    await game.say(ann, "boom")
    await game.move(ann, "north")  # after the poison: must wait behind it
    await game.move(bob, "north")  # another stream: must go on
    projection = Fragile()
    db = SQLiteReadDatabase(str(tmp_path / "read.sqlite"))
    runner = ProjectionRunner(db, [projection], store, event_codec())
    await runner.setup()
    counts = await runner.apply(await all_events(store))
    assert (counts.applied, counts.parked) == (4, 2)
    letters = await DeadLetterAdmin.of(runner).dead_letters()
    assert [(r["stream_id"], r["version"]) for r in letters] == [
        (f"player-{ann}", 3),
        (f"player-{ann}", 4),
    ]
    assert "cannot handle a boom" in letters[0]["error"]
    assert "parked behind" in letters[1]["error"]
    bob_row = await db.get(PLAYER_DETAILS, bob)
    ann_row = await db.get(PLAYER_DETAILS, ann)
    assert bob_row is not None
    assert bob_row["room"] == "market_street"
    assert ann_row is not None
    assert ann_row["room"] == WORLD.start_room
    # Later events of the parked stream are parked too, in order.
    await game.say(ann, "still here")
    more = (await all_events(store))[-1:]
    assert (await runner.apply(more)).parked == 1
    # Repaired: a retry applies the letters in order and unparks the stream.
    projection.broken = False
    assert await DeadLetterAdmin.of(runner).retry("player_details") == (3, 0)
    assert await DeadLetterAdmin.of(runner).dead_letters() == []
    ann_row = await db.get(PLAYER_DETAILS, ann)
    assert ann_row is not None
    assert ann_row["room"] == "market_street"
    await game.move(ann, "south")
    assert (await runner.apply((await all_events(store))[-1:])).applied == 1
    await db.close()


async def test_a_retry_that_fails_again_parks_from_the_failing_event(tmp_path: Path) -> None:
    store, game, (cy,) = await characters("Cy")
    await game.say(cy, "boom")
    await game.move(cy, "north")
    db = SQLiteReadDatabase(str(tmp_path / "read.sqlite"))
    runner = ProjectionRunner(db, [Fragile()], store, event_codec())
    await runner.setup()
    await runner.apply(await all_events(store))
    assert await DeadLetterAdmin.of(runner).retry("player_details") == (0, 2)
    assert [r["version"] for r in await DeadLetterAdmin.of(runner).dead_letters()] == [2, 3]
    assert await DeadLetterAdmin.of(runner).skip("player_details") == 2
    assert await DeadLetterAdmin.of(runner).dead_letters() == []
    await game.move(cy, "south")
    counts = await runner.apply((await all_events(store))[-1:])
    assert counts.applied == 1  # unparked: the stream goes on without the skipped events
    await db.close()


class FragileRooms(RoomView):
    """A room view that chokes after changing its rows (moves, and "boom")."""

    @staticmethod
    def poison(event: Event) -> bool:
        return isinstance(event, PlayerMoved) or (
            isinstance(event, PlayerSaid) and "boom" in event.text
        )

    async def apply(self, event: Event, recorded: RecordedEvent, rows: Rows) -> None:
        await super().apply(event, recorded, rows)
        if self.poison(event):
            raise ValueError("cannot handle this")

    async def apply_all(self, todo: Sequence[Decoded], rows: Rows, memo: Memo) -> None:
        await super().apply_all(todo, rows, memo)  # rows changed, to be forgotten
        if any(self.poison(event) for event, _ in todo):
            raise ValueError("cannot handle this")


async def present(db: SQLiteReadDatabase, room: str) -> dict[str, Any]:
    """Who the room view says is in ``room``, with their states."""
    rows = await db.select(ROOM_VIEW_PLAYERS, where={"room": room})
    return {row["player_id"]: row["state"] for row in rows}


async def test_a_failing_event_leaves_the_rows_it_changed_as_they_were(
    tmp_path: Path,
) -> None:
    store, game, (ann, bob, cy) = await characters("Ann", "Bob", "Cy")
    db = SQLiteReadDatabase(str(tmp_path / "read.sqlite"))
    runner = ProjectionRunner(db, [FragileRooms(WORLD)], store, event_codec())
    await runner.setup()
    await runner.apply(await all_events(store))
    square = await present(db, WORLD.start_room)
    assert set(square) == {ann, bob, cy}
    await game.say(cy, "boom")  # fails after replacing Cy's row
    await game.move(ann, "north")  # fails after moving Ann out of the square and in north
    await game.say(bob, "hello")  # applied: Bob's row is set again, equal
    counts = await runner.apply((await all_events(store))[-3:])
    assert (counts.applied, counts.parked) == (1, 2)
    assert await present(db, WORLD.start_room) == square
    assert await present(db, "market_street") == {}
    await db.close()


async def test_an_event_that_cannot_be_decoded_parks_its_stream_and_the_batch_goes_on(
    tmp_path: Path,
) -> None:
    store, game, (ann, bob) = await characters("Ann", "Bob")
    await store.append(f"player-{ann}", ANY, [NewEvent("FromTheFuture", b"{}")])
    await game.move(bob, "north")
    db = SQLiteReadDatabase(str(tmp_path / "read.sqlite"))
    runner = ProjectionRunner(db, [PlayerDetails()], store, event_codec())
    await runner.setup()
    counts = await runner.apply(await all_events(store))
    assert (counts.applied, counts.parked) == (3, 1)
    (letter,) = await DeadLetterAdmin.of(runner).dead_letters()
    assert (letter["stream_id"], letter["version"]) == (f"player-{ann}", 2)
    assert "cannot decode" in letter["error"]
    bob_row = await db.get(PLAYER_DETAILS, bob)
    assert bob_row is not None
    assert bob_row["room"] == "market_street"
    await db.close()


class SQLiteLettersUnread(SQLiteReadDatabase):
    """A real SQLite read database that refuses to hand out its dead letters' rows."""

    async def select(self, table: Table, **options: Any) -> list[Row]:
        assert table != DEAD_LETTERS, "the dead letters were read, not counted"
        return await super().select(table, **options)


class PostgresLettersUnread(PostgresReadDatabase):
    """A real PostgreSQL read database that refuses to hand out its dead letters' rows."""

    async def select(self, table: Table, **options: Any) -> list[Row]:
        assert table != DEAD_LETTERS, "the dead letters were read, not counted"
        return await super().select(table, **options)


@pytest.mark.parametrize("adapter", ["sqlite", "postgres"])
async def test_status_counts_the_dead_letters_without_reading_them(
    tmp_path: Path, adapter: str
) -> None:
    store, game, (ann, bob, cy) = await characters("Ann", "Bob", "Cy")
    await game.say(ann, "hello")
    await game.say(ann, "boom")  # parked by both projections, and Ann's move behind it
    await game.move(ann, "north")
    await game.move(bob, "north")  # parked by the rooms only
    await game.say(cy, "boom")  # parked by both
    url = await postgres.scratch_database("letters_unread") if adapter == "postgres" else ""
    db: ReadDatabase
    if adapter == "sqlite":
        db = SQLiteLettersUnread(str(tmp_path / "read.sqlite"))
        listing: ReadDatabase = SQLiteReadDatabase(str(tmp_path / "read.sqlite"))
    else:
        db, listing = PostgresLettersUnread(url), PostgresReadDatabase(url)
    try:
        runner = ProjectionRunner(db, [Fragile(), FragileRooms(WORLD)], store, event_codec())
        await runner.setup()
        assert (await runner.apply(await all_events(store))).parked == 7
        admin = DeadLetterAdmin.of(runner)
        assert await admin.count() == 7
        assert await admin.count("player_details") == 3
        assert await admin.count("room_view") == 4
        assert await admin.count("leaderboard") == 0
        # The same as listing them through a handle that may read them.
        letters = await DeadLetterAdmin(
            listing, runner.projections, store, event_codec()
        ).dead_letters()
        assert len(letters) == 7
        status = await read_status(
            [], MemoryQueue([GROUP], 2), admin.count, group=GROUP, interval_s=0
        )
        assert status["dead_letters"] == 7
        assert sample(prometheus(status), "aq_dead_letters") == 7
        with pytest.raises(AssertionError, match="read, not counted"):
            await admin.dead_letters()  # the tripwire is armed
    finally:
        await db.close()
        await listing.close()
