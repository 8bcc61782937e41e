"""History and time travel (app/history.py): the one service behind ``aq events``, ``aq state``
and the API's ``/players/{id}/events`` and ``/players/{id}/state``."""

from __future__ import annotations

import time

from adventure_quest.app.aggregates import event_codec, player_id_for
from adventure_quest.app.game import Game
from adventure_quest.app.history import History
from adventure_quest.app.repository import Repository
from adventure_quest.app.world_loader import load_world
from adventure_quest.domain.events import PlayerMoved
from adventure_quest.store.memory import MemoryEventStore, MemorySnapshotStore

WORLD = load_world()


async def played() -> tuple[Game, History, str]:
    """A character created, then moved north and back three times (7 events)."""
    repository = Repository(
        MemoryEventStore(), MemorySnapshotStore(), event_codec(), snapshot_every=2
    )
    game = Game(repository, WORLD)
    await game.create_character("Hist")
    player_id = player_id_for("Hist")
    for _ in range(3):
        await game.move(player_id, "north")
        await game.move(player_id, "south")
    return game, History(repository), game.players.stream_id(player_id)


async def test_events_come_a_page_at_a_time_after_a_version() -> None:
    _, history, stream = await played()
    everything = [e.version for e in await history.events(stream)]
    page = [e.version for e in await history.events(stream, after=2, limit=3)]
    past_the_end = [e.version for e in await history.events(stream, after=7, limit=3)]
    version = await history.version(stream)
    none = await history.version("player-nobody")
    assert everything == list(range(1, 8))
    assert page == [3, 4, 5]
    assert past_the_end == []
    assert (version, none) == (7, 0)


async def test_decoded_events_are_the_games_events() -> None:
    _, history, stream = await played()
    decoded = [type(history.decode(e)).__name__ for e in await history.events(stream, 1, 2)]
    assert decoded == [PlayerMoved.__name__, PlayerMoved.__name__]


async def test_as_of_a_version_is_the_state_then_and_a_version_past_the_end_is_now() -> None:
    game, history, stream = await played()
    then = await history.as_of(game.players, stream, version=2)
    beyond = await history.as_of(game.players, stream, version=99)
    now = await history.as_of(game.players, stream)
    seen = then.state.room, then.version, beyond.state.room, beyond.version, now.state.room

    north = WORLD.rooms[WORLD.start_room].exits["north"]
    assert seen == (north, 2, WORLD.start_room, 7, WORLD.start_room)


async def test_as_of_a_moment_is_the_last_event_recorded_by_then() -> None:
    game, history, stream = await played()
    events = await history.events(stream)
    fourth = events[3].metadata.recorded_at
    # Events recorded in the very same instant as the fourth count as by then too.
    expected = max(e.version for e in events if e.metadata.recorded_at <= fourth)
    at_fourth = (await history.as_of(game.players, stream, moment=fourth)).version
    before_all = (
        await history.as_of(game.players, stream, moment=events[0].metadata.recorded_at - 1)
    ).version
    later = (await history.as_of(game.players, stream, moment=time.time() + 60)).version
    assert at_fourth == expected >= 4
    assert before_all == 0
    assert later == 7
