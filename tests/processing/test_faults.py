"""Kill -9 the relay, the workers and the players at random moments; nothing is lost or doubled.

Real parts only: a SQLite event store written by a players' process, NATS JetStream (a stream of
this test's own on 127.0.0.1:4222), relay and worker processes (`aq relay`, `aq worker`) that
are killed and restarted, a SQLite read database. The players take, drop and fight (hand-overs
between a room's stream and a player's); their process is killed too, now and then, and started
again under the same names, leaving hand-overs half done for the workers' hand-over managers.
Afterwards every stream's tally of applied events equals its version (counted, not sampled),
every read model equals a rebuild, and once the managers have caught up every item instance is
in exactly one place and every hand-over was finished exactly once (tests/processing/
item_ledger.py reads the log, the aggregates and the read models).
"""

from __future__ import annotations

import asyncio
import itertools
import os
import random
import signal
import subprocess
import sys
import textwrap
import time
import uuid
from pathlib import Path

import pytest

from adventure_quest.app.aggregates import event_codec
from adventure_quest.app.world_loader import load_world
from adventure_quest.bootstrap.pipeline import Processing
from adventure_quest.config import load_settings
from adventure_quest.messaging.urls import open_queue
from adventure_quest.processing.groups import HANDOVERS
from adventure_quest.processing.relay import Relay
from adventure_quest.projections.catalog import projections
from adventure_quest.projections.runner import ProjectionRunner
from adventure_quest.projections.sqlite import SQLiteReadDatabase
from adventure_quest.projections.world_stats import STREAM_TALLY
from adventure_quest.store.sqlite.events import SQLiteEventStore
from adventure_quest.store.urls import open_checkpoint_stores
from tests.conftest import run
from tests.nats_streams import delete_stream
from tests.processing import item_ledger

AQ = str(Path(sys.executable).parent / "aq")
#: The players: three concurrent loops acting for six characters until a deadline (seconds since
#: the epoch), so a process killed and started again (with a new seed) plays on under the same
#: names. Mostly informed choices: take an item lying here, drop one carried, hit a monster that
#: is here, walk towards rooms with items and weak monsters; now and then words picked blind.
PLAYERS = textwrap.dedent(
    """
    import asyncio, contextlib, random, sqlite3, sys, time
    from adventure_quest.app.aggregates import event_codec, player_id_for
    from adventure_quest.app.game import Game
    from adventure_quest.app.repository import ConflictError, Repository
    from adventure_quest.app.world_loader import load_world
    from adventure_quest.domain.errors import DomainError
    from adventure_quest.store.sqlite.events import SQLiteEventStore
    from adventure_quest.store.sqlite.snapshots import SQLiteSnapshotStore

    ROOMS = {"village_square", "market_street", "north_gate", "forest_edge", "mossy_glade",
             "hunters_camp", "village_chapel", "chapel_crypt", "blacksmith_forge",
             "rusty_tankard_inn", "inn_loft", "whispering_pines", "spider_hollow", "wolf_den"}
    BLIND = {"move": ["north", "south", "east", "west"], "take": ["torch", "rope", "club", "herb"],
             "drop": ["torch", "rope", "club"], "attack": ["rat", "spider"], "say": ["hi"]}
    STARTS = {"ItemPickedUp", "ItemDropped", "MonsterHit"}

    class FarApart(SQLiteEventStore):
        # A hand-over's second stream is a while away (as on another shard): a kill at any
        # moment often finds hand-overs half done, and commands race each other meanwhile.
        async def append(self, stream_id, expected_version, events):
            result = await super().append(stream_id, expected_version, events)
            if events[0].event_type in STARTS:
                await asyncio.sleep(0.02)
            return result

    async def act(game, rng, player_id):
        me = await game.player(player_id)
        if not me.alive:
            return await game.respawn(player_id)
        if rng.random() < 0.15:
            verb = rng.choice(list(BLIND))
            return await getattr(game, verb)(player_id, rng.choice(BLIND[verb]))
        here, world = await game.room(me.room), game.world
        verbs = ["move"] + ["take"] * 3 * bool(here.items) + ["drop"] * 2 * bool(me.inventory)
        verb = rng.choice(verbs + ["attack"] * 4 * bool(here.monsters))
        if verb == "take":
            words = world.items[rng.choice(here.items).item_key].name
        elif verb == "drop":
            words = world.items[rng.choice(me.inventory).item_key].name
        elif verb == "attack":
            words = world.monsters[rng.choice(here.monsters).monster_key].name
        else:
            exits = world.rooms[me.room].exits
            words = rng.choice([d for d, r in exits.items() if r in ROOMS] or list(exits))
        return await getattr(game, verb)(player_id, words)

    async def play(game, rng, ids, deadline):
        while time.time() < deadline:
            with contextlib.suppress(DomainError, ConflictError):
                await act(game, rng, rng.choice(ids))
            await asyncio.sleep(rng.uniform(0, 0.01))

    def played_enough(path):
        # The mix of traffic the test asserts on (hand-overs of each kind), counted in the log.
        with contextlib.closing(sqlite3.connect(path, timeout=30)) as db:
            counts = dict(db.execute(
                "SELECT event_type, count(*) FROM events GROUP BY event_type").fetchall())
        fights = counts.get("DamageTaken", 0) + counts.get("XpGained", 0)
        takes, drops = counts.get("ItemTaken", 0), counts.get("ItemDropped", 0)
        return fights >= 10 and takes >= 100 and drops >= 100

    async def main(path, deadline, seed):
        store, snapshots = FarApart(path), SQLiteSnapshotStore(path)
        game = Game(Repository(store, snapshots, event_codec()), load_world())
        names = [f"Faulty{n}" for n in range(6)]
        for name in names:
            with contextlib.suppress(DomainError):
                await game.create_character(name)
        ids = [player_id_for(name) for name in names]
        rngs = [random.Random(seed * 8 + n) for n in range(3)]
        await asyncio.gather(*(play(game, rng, ids, deadline) for rng in rngs))
        # A slow machine may not have played that mix by the deadline (monsters are scarce while
        # the workers whose clock restocks them keep being killed): play on, a second at a time.
        while not played_enough(path) and time.time() < deadline + 60:
            until = time.time() + 1
            await asyncio.gather(*(play(game, rng, ids, until) for rng in rngs))
        await store.close()
        await snapshots.close()

    asyncio.run(main(sys.argv[1], float(sys.argv[2]), int(sys.argv[3])))
    """
)


def spawn(args: list[str], env: dict[str, str]) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [AQ, *args], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )


async def tally_and_tables(
    store_path: Path, read_path: Path
) -> tuple[dict[str, int], dict[str, int]]:
    store = SQLiteEventStore(str(store_path))
    db = SQLiteReadDatabase(str(read_path))
    versions: dict[str, int] = {}
    after = 0
    while page := await store.read_all(after, 5000):
        for event in page:
            versions[event.stream_id] = event.version
        after = page[-1].position
    tally = {r["stream_id"]: r["events"] for r in await db.select(STREAM_TALLY)}
    await db.close()
    await store.close()
    return versions, tally


async def rebuild_equals_live(
    store_path: Path, live_path: Path, rebuilt_path: Path, partitions: int
) -> list[str]:
    """The tables that differ between the live read models and a replay of the whole log.

    The recorded progress (applied_positions) is compared too: live, it must have reached the
    last position of every (shard, partition), as a replay does.
    """
    store = SQLiteEventStore(str(store_path))
    live = SQLiteReadDatabase(str(live_path))
    rebuilt = SQLiteReadDatabase(str(rebuilt_path))
    runner = ProjectionRunner(
        rebuilt, projections(load_world(), partitions), store, event_codec(), partitions=partitions
    )
    await runner.setup()
    after = 0
    while page := await store.read_all(after, 1000):
        await runner.apply(page)
        after = page[-1].position
    differing = []
    for table in runner.tables:
        order = [(table.key, False)]
        if await live.select(table, order_by=order) != await rebuilt.select(table, order_by=order):
            differing.append(table.name)
    for db in (live, rebuilt):
        await db.close()
    await store.close()
    return differing


async def drain(
    env: dict[str, str], store_path: Path, read_path: Path, seconds: float = 90.0
) -> tuple[dict[str, int], dict[str, int]]:
    """Run a relay and a projection worker (no managers) until every event is applied."""
    config = load_settings(
        {},
        store_url=env["AQ_STORE"],
        read_db_url=env["AQ_READ_DB"],
        queue_url=env["AQ_QUEUE"],
        partitions=int(env["AQ_PARTITIONS"]),
    )
    async with Processing.open(config, load_world()) as processing:
        stop = asyncio.Event()
        parts = [processing.relays[0].run, processing.worker(range(config.partitions)).run]
        tasks = [asyncio.create_task(part(stop)) for part in parts]
        deadline = time.monotonic() + seconds
        while True:
            versions, tally = await tally_and_tables(store_path, read_path)
            if tally == versions or time.monotonic() > deadline:
                break
            await asyncio.sleep(0.3)
        stop.set()
        await asyncio.gather(*tasks)
    return versions, tally


async def handovers_handled(
    env: dict[str, str], store_path: Path, seconds: float = 60.0
) -> float | None:
    """Wait until the workers' hand-over managers have handled every event up to the log's head.

    Called once the players are gone, so no hand-over starts after that head: once the relay
    has published it and no partition has anything pending for the ``handovers`` group, every
    hand-over has been through a manager (and each one a kill cut off has been finished).
    How long that took, or None if it did not happen within ``seconds``.
    """
    partitions = int(env["AQ_PARTITIONS"])
    store = SQLiteEventStore(str(store_path))
    [checkpoints] = open_checkpoint_stores(env["AQ_STORE"])
    queue = open_queue(env["AQ_QUEUE"], partitions=partitions, groups=[HANDOVERS])
    name = Relay(store, queue, checkpoints).name  # the relay's checkpoint
    try:
        head, started = await store.head(), time.monotonic()
        while time.monotonic() < started + seconds:
            if await checkpoints.load(name) >= head:
                consumers = [queue.consumer(HANDOVERS, p) for p in range(partitions)]
                if not any([await consumer.pending() for consumer in consumers]):
                    return time.monotonic() - started
            await asyncio.sleep(0.2)
        return None
    finally:
        await queue.close()
        await checkpoints.close()
        await store.close()


def run_with_kills(tmp_path: Path, kills: int, play_seconds: float = 12.0) -> None:
    stream = f"AQT_{os.getpid()}_{uuid.uuid4().hex[:8]}"
    store_path, read_path = tmp_path / "events.sqlite", tmp_path / "read.sqlite"
    env = {
        **os.environ,
        "AQ_STORE": f"sqlite:///{store_path}",
        "AQ_READ_DB": f"sqlite:///{read_path}",
        "AQ_QUEUE": f"nats://127.0.0.1:4222/{stream}",
        "AQ_PARTITIONS": "8",
        "AQ_TICK_SECONDS": "1",  # the rooms restock their items and monsters as they are played
    }
    roles = {
        "relay": ["relay"],
        "worker-a": ["worker", "--partitions", "0-3"],
        "worker-b": ["worker", "--partitions", "4-7"],
    }
    rng = random.Random(kills)
    deadline = time.time() + play_seconds
    seeds = itertools.count()

    def start_players() -> subprocess.Popen[bytes]:
        args = [str(store_path), str(deadline), str(next(seeds))]
        return subprocess.Popen([sys.executable, "-c", PLAYERS, *args])

    players = start_players()
    #: When a killed players' process was dead: hand-overs it started before and left half
    #: done are finished by the workers' hand-over managers.
    players_killed: list[float] = []
    running: dict[str, subprocess.Popen[bytes]] = {}
    try:
        time.sleep(1.0)  # the store exists before the relay opens it
        running = {role: spawn(args, env) for role, args in roles.items()}
        for _ in range(kills):
            time.sleep(rng.uniform(0.05, 0.35))
            if rng.random() < 0.3 and time.time() < deadline - 0.5:
                players.send_signal(signal.SIGKILL)
                assert players.wait() == -signal.SIGKILL, "the players' process failed"
                players_killed.append(time.time())
                players = start_players()
            role = rng.choice(list(roles))
            running[role].send_signal(signal.SIGKILL)
            running[role].wait()
            running[role] = spawn(roles[role], env)
        assert players.wait(timeout=120) == 0
        caught_up = run(handovers_handled(env, store_path))
        assert caught_up is not None, "the hand-over managers did not catch up"
        # Stop everything: the process managers in the workers append events of their own
        # (achievements, the clock's ticks), so the log only stands still once they are gone.
        for process in running.values():
            process.send_signal(signal.SIGTERM)
        for process in running.values():
            process.wait(timeout=20)
        # One last relay and worker, without managers, carry what was left to the read models.
        versions, tally = run(drain(env, store_path, read_path))
    finally:
        for process in [*running.values(), players]:
            if process.poll() is None:
                process.kill()
            process.wait()
        run(delete_stream(stream))
    lost = {s: v - tally.get(s, 0) for s, v in versions.items() if tally.get(s, 0) < v}
    doubled = {s: c - versions.get(s, 0) for s, c in tally.items() if c > versions.get(s, 0)}
    assert not lost, f"events never applied: {lost}"
    assert not doubled, f"events applied twice: {doubled}"
    assert sum(versions.values()) > 200  # the players really did play
    rebuilt_path = tmp_path / "rebuilt.sqlite"
    assert run(rebuild_equals_live(store_path, read_path, rebuilt_path, 8)) == []
    # Every item instance in one place, every hand-over finished once (invariant 9).
    items = run(item_ledger.audit(store_path, load_world(), players_killed))
    print(f"{len(players_killed)} players' kills; managers caught up in {caught_up:.1f} s")
    print(items.summary())
    assert items.shown() == [], items.summary()
    assert run(item_ledger.read_models(read_path, items.places)) == []
    # The traffic really was hand-overs, and kills really left some for the managers.
    assert items.events["ItemTaken"] >= 100, items.summary()
    assert items.handovers["drop"] >= 100, items.summary()
    assert items.events["DamageTaken"] + items.events["XpGained"] >= 10, items.summary()
    assert sum(items.cut_off.values()) >= 3, items.summary()


def test_fifty_kills_of_relay_and_workers_lose_nothing_and_double_nothing(tmp_path: Path) -> None:
    run_with_kills(tmp_path, kills=50)


@pytest.mark.soak
def test_soak_three_hundred_kills(tmp_path: Path) -> None:
    run_with_kills(tmp_path, kills=300, play_seconds=60.0)
