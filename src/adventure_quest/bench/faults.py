"""Fault drills on a simulated cluster: players play while hosts are cut off, killed and frozen.

Players (on the load host) create characters and then speak and walk through every API host,
each ``say`` carrying a text of its own, so that the log tells which commands were recorded.
Meanwhile a schedule injects faults: a store shard's host cut off the network and healed, a
NATS node cut off (a minority, then the node leading the stream), ``kill -9`` of random ``aq``
processes (started again), a worker frozen with SIGSTOP past its partition lease and woken, and
the read primary restarted. Then the load stops and the drill waits until the read models have
caught up, and checks:

* every acknowledged command is in the log exactly once, and nothing is there that was not sent
  (a command that got no answer may or may not be there, but at most once);
* every stream's tally of applied events equals its version (each effect applied once);
* every read model equals a rebuild from the log;
* the consistency token of each player's last acknowledged command is honoured by every API.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import shutil
import signal
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

import httpx
import msgspec

from adventure_quest.app.aggregates import event_codec
from adventure_quest.app.world_loader import load_world
from adventure_quest.cluster.deploy import Cluster, Process
from adventure_quest.domain.events import PlayerSaid
from adventure_quest.projections.catalog import projections
from adventure_quest.projections.runner import ProjectionRunner
from adventure_quest.projections.sqlite import SQLiteReadDatabase
from adventure_quest.projections.urls import open_read_database
from adventure_quest.projections.world_stats import STREAM_TALLY
from adventure_quest.store.urls import open_event_store

Progress = Callable[[str], None]
DIRECTIONS: Final = ("north", "south", "east", "west")
STREAM: Final = "AQ_EVENTS"


@dataclass
class Ledger:
    """What the players sent and what was acknowledged (texts of ``say``), and their tokens."""

    attempted: set[str] = field(default_factory=set)
    acknowledged: set[str] = field(default_factory=set)
    commands: int = 0
    answered: Counter[int] = field(default_factory=Counter)
    failures: Counter[str] = field(default_factory=Counter)
    last_token: dict[str, str] = field(default_factory=dict)


@dataclass
class Report:
    faults: list[str] = field(default_factory=list)
    acknowledged: int = 0
    commands: int = 0
    lost: int = 0
    duplicated: int = 0
    unknown: int = 0
    tally_mismatches: int = 0
    rebuild_differs: list[str] = field(default_factory=list)
    tokens_refused: int = 0
    converge_s: float | None = None
    answered: dict[str, int] = field(default_factory=dict)

    @property
    def passed(self) -> bool:
        return (
            self.lost == self.duplicated == self.unknown == self.tally_mismatches == 0
            and not self.rebuild_differs
            and self.tokens_refused == 0
            and self.converge_s is not None
            and self.acknowledged > 0
        )

    def table(self) -> str:
        rows = [
            ("faults injected", str(len(self.faults))),
            ("commands sent", str(self.commands)),
            ("commands acknowledged (say)", str(self.acknowledged)),
            ("lost", str(self.lost)),
            ("duplicated", str(self.duplicated)),
            ("present but never sent", str(self.unknown)),
            ("streams applied other than once", str(self.tally_mismatches)),
            ("read models unlike a rebuild", ", ".join(self.rebuild_differs) or "0"),
            ("tokens not honoured", str(self.tokens_refused)),
            ("time to converge", "never" if self.converge_s is None else f"{self.converge_s} s"),
        ]
        width = max(len(name) for name, _ in rows)
        lines = [f"| {'':<{width}} | result |", f"|{'-' * (width + 2)}|--------|"]
        lines += [f"| {name:<{width}} | {value} |" for name, value in rows]
        return "\n".join([*lines, "", "faults: " + "; ".join(self.faults)])


class Players:
    """Players on the load host, through every API host, until ``stop``."""

    def __init__(self, apis: list[str], count: int, seed: int) -> None:
        self.apis = apis
        self.count = count
        self.rng = random.Random(seed)
        self.ledger = Ledger()
        self.stop = threading.Event()
        self.ready = threading.Event()
        self.tag = f"d{seed}"

    async def run(self) -> Ledger:
        clients = [httpx.AsyncClient(base_url=url, timeout=5.0) for url in self.apis]
        try:
            players = [await self._create(clients, i) for i in range(self.count)]
            self.ready.set()
            await asyncio.gather(*(self._play(clients, *p) for p in players))
        finally:
            self.ready.set()
            for client in clients:
                await client.aclose()
        return self.ledger

    async def _create(self, clients: list[httpx.AsyncClient], i: int) -> tuple[str, str]:
        for attempt in range(100):
            client = clients[(i + attempt) % len(clients)]
            name = f"{self.tag}p{i}" if attempt == 0 else f"{self.tag}p{i}x{attempt}"
            with contextlib.suppress(httpx.HTTPError):
                answer = await client.post("/players", json={"name": name})
                if answer.status_code == 201:
                    body = answer.json()
                    return body["player"]["player_id"], body["token"]
            await asyncio.sleep(0.2)
        raise RuntimeError("could not create the drill's characters")

    async def _play(self, clients: list[httpx.AsyncClient], player: str, token: str) -> None:
        ledger, rng = self.ledger, random.Random(f"{self.tag}{player}")
        auth = {"Authorization": f"Bearer {token}"}
        n = 0
        while not self.stop.is_set():
            client = rng.choice(clients)
            n += 1
            if n % 4:
                text = f"{self.tag}-{player[:8]}-{n}"
                path, body = f"/players/{player}/say", {"text": text}
                ledger.attempted.add(text)
            else:
                text = ""
                path, body = f"/players/{player}/move", {"direction": rng.choice(DIRECTIONS)}
            ledger.commands += 1
            try:
                answer = await client.post(path, json=body, headers=auth)
            except httpx.HTTPError as error:
                ledger.failures[type(error).__name__] += 1
                await asyncio.sleep(0.1)
                continue
            ledger.answered[answer.status_code] += 1
            if answer.status_code == 200:
                ledger.last_token[player] = answer.json()["consistency"]
                if text:
                    ledger.acknowledged.add(text)
            elif answer.status_code >= 500:
                await asyncio.sleep(0.1)
            await asyncio.sleep(0.02)


class Faults:
    """The schedule of faults, each said in ``report.faults`` as it is injected."""

    def __init__(self, cluster: Cluster, report: Report, seed: int, progress: Progress) -> None:
        self.cluster = cluster
        self.report = report
        self.rng = random.Random(seed)
        self.progress = progress

    def said(self, what: str) -> None:
        self.report.faults.append(what)
        self.progress(f"fault: {what}")

    def cut(self, host_name: str, seconds: float, why: str = "") -> None:
        host = self.cluster.host(host_name)
        self.cluster.network.cut(host)
        self.said(f"{host_name}{why} cut off for {seconds:.0f} s")
        time.sleep(seconds)
        self.cluster.network.heal(host)

    def stream_leader(self) -> str:
        """The NATS host leading the event stream (waiting for one after a healed cut)."""
        hosts = {h.name for h in self.cluster.hosts_running("nats")}

        async def ask() -> str:
            import nats

            client = await nats.connect(self.cluster.nats_servers())
            try:
                deadline = time.monotonic() + 60
                while time.monotonic() < deadline:
                    with contextlib.suppress(Exception):
                        info = await client.jetstream().stream_info(STREAM)
                        if info.cluster and info.cluster.leader in hosts:
                            return str(info.cluster.leader)
                    await asyncio.sleep(0.5)
                raise RuntimeError("the event stream has had no leader for 60 s")
            finally:
                await client.close()

        return self.cluster.host("load").inside(ask)

    def kill_random(self, roles: tuple[str, ...] = ("api", "relay", "worker")) -> None:
        victim = self.rng.choice([p for p in self.cluster.aq_processes() if p.role in roles])
        os.kill(victim.process.pid, signal.SIGKILL)
        victim.process.wait(timeout=10)
        self.said(f"kill -9 aq {victim.role} on {victim.host.name}")
        time.sleep(1.0)
        self.cluster.restart(victim)

    def freeze_worker(self, seconds: float) -> None:
        worker: Process = self.rng.choice(self.cluster.aq_processes("worker"))
        os.kill(worker.process.pid, signal.SIGSTOP)
        self.said(f"aq worker on {worker.host.name} frozen (SIGSTOP) for {seconds:.0f} s")
        time.sleep(seconds)
        os.kill(worker.process.pid, signal.SIGCONT)

    def restart_read_primary(self) -> None:
        host = self.cluster.hosts_running("read-primary")[0]
        self.cluster.restart_read_primary()
        self.said(f"read primary on {host.name} restarted")


def drill(
    cluster: Cluster,
    *,
    seconds: float,
    players: int,
    seed: int,
    lease_s: float,
    progress: Progress,
) -> Report:
    """Play for about ``seconds`` while the faults are injected; converge; check; the report."""
    report = Report()
    crowd = Players(cluster.endpoints.apis, players, seed)
    load = cluster.host("load")
    ledger_box: list[Ledger] = []
    playing = threading.Thread(target=lambda: ledger_box.append(load.inside(crowd.run)))
    playing.start()
    crowd.ready.wait(timeout=120)
    try:
        schedule(Faults(cluster, report, seed, progress), cluster, seconds, lease_s)
    finally:
        crowd.stop.set()
        playing.join(timeout=60)
    ledger = ledger_box[0] if ledger_box else crowd.ledger
    report.commands = ledger.commands
    report.acknowledged = len(ledger.acknowledged)
    report.answered = {str(k): v for k, v in sorted(ledger.answered.items())}
    report.answered |= dict(ledger.failures.items())
    env = cluster.env()
    began = time.monotonic()
    if load.inside(lambda: _converged(env, deadline_s=180)):
        report.converge_s = round(time.monotonic() - began, 1)
    said, mismatches, differing = load.inside(lambda: _check(env, cluster.layout.partitions))
    present = Counter(text for text in said if text.startswith(crowd.tag))
    report.lost = len(ledger.acknowledged - set(present))
    report.duplicated = sum(1 for n in present.values() if n > 1)
    report.unknown = len(set(present) - ledger.attempted)
    report.tally_mismatches = mismatches
    report.rebuild_differs = differing
    report.tokens_refused = load.inside(lambda: _tokens_refused(cluster.endpoints.apis, ledger))
    return report


def schedule(faults: Faults, cluster: Cluster, seconds: float, lease_s: float) -> None:
    """The faults, spread over ``seconds`` (a longer drill repeats the round with new victims)."""
    stores = [h.name for h in cluster.hosts_running("store")]
    nats = [h.name for h in cluster.hosts_running("nats")]
    end = time.monotonic() + seconds
    pause = 2.0
    while True:
        time.sleep(pause)
        faults.cut(faults.rng.choice(stores), 5, " (an event-store shard)")
        time.sleep(pause)
        leader = faults.stream_leader() if len(nats) > 1 else ""
        if len(nats) > 1:
            minority = faults.rng.choice([n for n in nats if n != leader])
            faults.cut(minority, 5, " (a NATS node, not the stream's leader)")
            time.sleep(pause)
            faults.cut(faults.stream_leader(), 6, " (the NATS node leading the stream)")
            time.sleep(pause)
        faults.kill_random()
        time.sleep(pause)
        faults.kill_random()
        time.sleep(pause)
        faults.freeze_worker(lease_s + 3)
        time.sleep(pause)
        faults.restart_read_primary()
        if time.monotonic() > end:
            return


async def _versions(store_url: str) -> dict[str, int]:
    store = open_event_store(store_url)
    versions: dict[str, int] = {}
    try:
        for log in store.logs():
            after = 0
            while page := await log.read_all(after, 5000):
                for event in page:
                    versions[event.stream_id] = event.version
                after = page[-1].position
    finally:
        await store.close()
    return versions


async def _tally(read_url: str) -> dict[str, int]:
    db = open_read_database(read_url)
    try:
        return {r["stream_id"]: r["events"] for r in await db.select(STREAM_TALLY)}
    finally:
        await db.close()


async def _converged(env: dict[str, str], deadline_s: float) -> bool:
    """Until every stream's applied tally equals its version in the log."""
    deadline = time.monotonic() + deadline_s
    while time.monotonic() < deadline:
        with contextlib.suppress(Exception):
            if await _tally(env["AQ_READ_DB"]) == await _versions(env["AQ_STORE"]):
                return True
        await asyncio.sleep(0.5)
    return False


async def _heads(store: Any) -> list[int]:
    return [await log.head() for log in store.logs()]


async def _live_at_rest(
    store: Any, live: Any, tables: list[Any], read_url: str, store_url: str
) -> tuple[list[int], dict[str, dict[str, Any]], int]:
    """The live read models at a moment when nothing was being appended, and the log's heads
    then: the process managers and the world clock append events of their own at any time, so
    a snapshot is taken only between two equal readings of the heads, with every stream's tally
    equal to its version (the streams whose tally is off, if that never happens in 60 s)."""
    deadline = time.monotonic() + 60
    while True:
        before = await _heads(store)
        rows = {}
        for table in tables:
            found = await live.select(table, order_by=[(table.key, False)])
            rows[table.name] = {r[table.key]: r for r in found}
        versions, tally = await _versions(store_url), await _tally(read_url)
        mismatches = sum(1 for s, v in versions.items() if tally.get(s) != v)
        mismatches += sum(1 for s in tally if s not in versions)
        if before == await _heads(store) and (mismatches == 0 or time.monotonic() > deadline):
            return before, rows, mismatches
        await asyncio.sleep(0.5)


async def _check(env: dict[str, str], partitions: int) -> tuple[list[str], int, list[str]]:
    """The texts said in the log, the streams whose tally is off, the tables unlike a rebuild."""
    store = open_event_store(env["AQ_STORE"])
    codec = event_codec()
    said: list[str] = []
    folder = tempfile.mkdtemp(prefix="aq-drill-")
    rebuilt = SQLiteReadDatabase(str(Path(folder) / "rebuilt.sqlite"))
    live = open_read_database(env["AQ_READ_DB"])
    try:
        runner = ProjectionRunner(
            rebuilt, projections(load_world(), partitions), store, codec, partitions=partitions
        )
        await runner.setup()
        heads, mine, mismatches = await _live_at_rest(
            store, live, list(runner.tables), env["AQ_READ_DB"], env["AQ_STORE"]
        )
        for log, head in zip(store.logs(), heads, strict=True):
            after = 0
            while after < head and (page := await log.read_all(after, 1000)):
                page = [recorded for recorded in page if recorded.position <= head]
                await runner.apply(page)
                for recorded in page:
                    event = codec.decode(recorded)
                    if isinstance(event, PlayerSaid):
                        said.append(event.text)
                after = page[-1].position if page else head
        differing = []
        for table in runner.tables:
            replayed = {
                r[table.key]: r for r in await rebuilt.select(table, order_by=[(table.key, False)])
            }
            live_rows = mine[table.name]
            keys = sorted(
                k for k in live_rows.keys() | replayed.keys() if live_rows.get(k) != replayed.get(k)
            )
            if keys:
                first = keys[0]
                differing.append(
                    f"{table.name} ({len(keys)} rows; {first}: live {live_rows.get(first)},"
                    f" rebuilt {replayed.get(first)})"
                )
        return said, mismatches, differing
    finally:
        await rebuilt.close()
        await live.close()
        shutil.rmtree(folder, ignore_errors=True)
        await store.close()


async def _tokens_refused(apis: list[str], ledger: Ledger) -> int:
    refused = 0
    for i, (player, token) in enumerate(sorted(ledger.last_token.items())):
        async with httpx.AsyncClient(base_url=apis[i % len(apis)], timeout=10) as client:
            answer = await client.get(
                f"/players/{player}", params={"consistency": token, "wait_ms": 5000}
            )
            refused += answer.status_code != 200
    return refused


def summary(report: Report) -> dict[str, Any]:
    return msgspec.to_builtins(report) | {"passed": report.passed}  # type: ignore[no-any-return]
