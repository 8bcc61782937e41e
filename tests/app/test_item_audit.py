"""Stores written before hand-overs were exactly once: duplicated items found and taken away.

The duplicates are made as the earlier code made them: a finish appended again under a new event
id (the last-64 window had forgotten the hand-over), after the item had moved on.
"""

from __future__ import annotations

import subprocess
import sys
from collections import Counter
from collections.abc import Callable
from pathlib import Path

from adventure_quest.app.aggregates import event_codec, player_id_for
from adventure_quest.app.game import Game
from adventure_quest.app.item_audit import audit, repair
from adventure_quest.app.repository import Repository
from adventure_quest.app.world_loader import load_world
from adventure_quest.domain.events import (
    DuplicateRemoved,
    Event,
    ItemDropped,
    ItemPickedUp,
    ItemPutDown,
    ItemTaken,
)
from adventure_quest.projections.catalog import projections
from adventure_quest.projections.rooms import ROOM_VIEW, ROOM_VIEW_PLAYERS
from adventure_quest.projections.runner import ProjectionRunner
from adventure_quest.projections.sqlite import SQLiteReadDatabase
from adventure_quest.store.envelope import Metadata
from adventure_quest.store.ports import EventStore
from adventure_quest.store.sqlite.events import SQLiteEventStore
from adventure_quest.store.sqlite.snapshots import SQLiteSnapshotStore
from tests.conftest import run

WORLD = load_world()
SQUARE = "village_square"
TORCH = "village_square.torch.0"
AQ = str(Path(sys.executable).parent / "aq")


def new_game(store: EventStore, snapshots: SQLiteSnapshotStore) -> Game:
    return Game(Repository(store, snapshots, event_codec(), cache_size=0), WORLD)


def always(event: Event) -> Callable[[object], list[Event]]:
    return lambda _: [event]


async def finished_again(game: Game, stream_id: str, handover_id: str) -> None:
    """Re-append the finish of a hand-over under a fresh id, as the window-bound code did."""
    [log] = game.repository.store.logs()
    for recorded in await log.read_all(0, 100_000):
        event = game.repository.codec.decode(recorded)
        if isinstance(event, ItemPickedUp) and event.handover_id == handover_id:
            taken = ItemTaken(event.item, SQUARE, handover_id)
            await game.repository.update(
                game.players, stream_id, always(taken), Metadata(actor="old manager")
            )
            return
        if isinstance(event, ItemDropped) and event.handover_id == handover_id:
            landed = ItemPutDown(event.item, "", handover_id)
            await game.repository.update(
                game.rooms,
                game.rooms.stream_id(event.room),
                always(landed),
                Metadata(actor="old manager"),
            )
            return
    raise AssertionError(f"no hand-over {handover_id}")


async def handover_ids(
    game: Game, stream_id: str, kind: type[ItemPickedUp] | type[ItemDropped]
) -> list[str]:
    recorded = await game.repository.store.read_stream(stream_id)
    decoded = [game.repository.codec.decode(r) for r in recorded]
    return [e.handover_id for e in decoded if isinstance(e, kind)]


async def duplicated(path: Path) -> tuple[SQLiteEventStore, Game, str, str]:
    """Ann takes the torch, drops it, Bob takes it; then old-style repeats of Ann's two finishes:
    the square's floor, Ann's and Bob's inventories all hold the one torch."""
    store, snapshots = SQLiteEventStore(str(path)), SQLiteSnapshotStore(str(path))
    game = new_game(store, snapshots)
    ann, bob = player_id_for("Ann"), player_id_for("Bob")
    for name in ("Ann", "Bob"):
        await game.create_character(name)
    await game.take(ann, "torch")
    await game.drop(ann, "torch")
    await game.take(bob, "torch")
    [take, _] = await handover_ids(game, f"room-{SQUARE}", ItemPickedUp)
    [drop] = await handover_ids(game, f"player-{ann}", ItemDropped)
    await finished_again(game, f"player-{ann}", take)
    await finished_again(game, f"player-{ann}", take)  # twice in her inventory
    await finished_again(game, "", drop)  # and on the floor again
    return store, game, ann, bob


async def test_every_copy_is_found_and_the_one_the_deciding_events_name_is_kept(
    tmp_path: Path,
) -> None:
    store, game, ann, bob = await duplicated(tmp_path / "events.sqlite")
    found = await audit(game)
    [torch] = found.duplicates
    assert torch.item.item_id == TORCH
    assert Counter(torch.places) == {("held", ann): 2, ("held", bob): 1, ("floor", SQUARE): 1}
    assert torch.keep == ("held", bob)  # the room gave it to Bob last
    assert (found.characters, found.rooms) == (2, len(WORLD.rooms))
    assert found.describe(torch.keep) == "held by Bob"
    before = await store.head()
    assert await repair(game, found) == 3
    assert await store.head() == before + 3
    assert (await audit(game)).duplicates == []
    assert [i.item_id for i in (await game.player(bob)).inventory] == [TORCH]
    assert (await game.player(ann)).inventory == ()
    assert TORCH not in [i.item_id for i in (await game.room(SQUARE)).items]
    assert await repair(game, await audit(game)) == 0  # again: nothing more
    removed = [
        game.repository.codec.decode(r)
        for r in await store.read_all(before, 10)
        if r.event_type == "DuplicateRemoved"
    ]
    assert all(isinstance(e, DuplicateRemoved) and e.item.item_id == TORCH for e in removed)
    await store.close()


async def test_a_repaired_store_projects_every_instance_once(tmp_path: Path) -> None:
    store, game, _, _ = await duplicated(tmp_path / "events.sqlite")
    await repair(game, await audit(game))
    db = SQLiteReadDatabase(str(tmp_path / "read.sqlite"))
    runner = ProjectionRunner(db, projections(WORLD), store, event_codec())
    await runner.setup()
    await runner.apply(await store.read_all(0, 10_000))
    [square] = [r for r in await db.select(ROOM_VIEW) if r["room"] == SQUARE]
    on_floor = [i["item_id"] for i in square["state"]["items"]]
    present = await db.select(ROOM_VIEW_PLAYERS, where={"room": SQUARE})
    carried = {
        person["state"]["name"]: [i["item_key"] for i in person["state"]["inventory"]]
        for person in present
    }
    assert (on_floor, carried) == ([], {"Ann": [], "Bob": ["torch"]})
    await db.close()
    await store.close()


def test_the_cli_checks_and_repairs_a_data_directory(tmp_path: Path) -> None:
    async def make() -> None:
        store, _, _, _ = await duplicated(tmp_path / "events.sqlite")
        await store.close()

    run(make())

    def aq(*args: str) -> subprocess.CompletedProcess[str]:
        command = [AQ, "items", *args, "--data-dir", str(tmp_path)]
        return subprocess.run(command, capture_output=True, text=True, timeout=60, check=False)

    check = aq("check")
    assert check.returncode == 1, check.stderr
    assert "1 in more than one place" in check.stdout
    [line] = [line for line in check.stdout.splitlines() if line.startswith(f"  {TORCH} ")]
    places = line.removeprefix(f"  {TORCH} (torch): ").split(", ")
    assert sorted(places) == ["held by Ann x2", "held by Bob", f"on the floor of {SQUARE}"]
    assert "keeps the copy held by Bob" in check.stdout
    repaired = aq("repair")
    assert repaired.returncode == 0, repaired.stderr
    assert "removed 3 extra copies" in repaired.stdout
    again = aq("check", "--json")
    assert again.returncode == 0, again.stderr
    assert '"duplicates":[]' in again.stdout
    missing = subprocess.run(
        [AQ, "items", "check", "--data-dir", str(tmp_path / "nowhere")],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert missing.returncode == 2
    assert "error [store_not_found]" in missing.stderr
