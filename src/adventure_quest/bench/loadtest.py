"""``aq loadtest``: simulated players driving a running server over HTTP.

``run`` creates the characters (and reads the map once), lets the players play for the
duration, and returns the figures; ``summary`` puts them in a few lines for people. The players
are ``load_player.Player`` (what each does per step, and what counts as a rejection or an
error); they talk to the server through ``http_client``, a minimal HTTP/1.1 keep-alive client
that costs little CPU next to the server it measures on the same machine.
"""

from __future__ import annotations

import asyncio
import random
import time
from array import array
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

import msgspec

from adventure_quest.bench.harness import percentile
from adventure_quest.bench.http_client import Client, ProtocolError, decode_room_answer
from adventure_quest.bench.load_player import Player, Run, Stats

PROGRESS_EVERY_S = 3.0


class LoadTestError(Exception):
    """The load test cannot run: a bad URL or a server that does not answer."""


async def run(
    url: str,
    *,
    players: int = 100,
    duration_s: float = 30.0,
    rate: float = 0.0,
    query_ratio: float = 0.7,
    seed: int | None = None,
    progress: Callable[[str], None] | None = None,
    characters: int = 0,
    read_back: bool = True,
    spread_idle: bool = False,
    hot_room: bool = False,
) -> dict[str, Any]:
    """Drive the server at ``url`` with ``players`` for ``duration_s``; the figures.

    ``rate`` paces commands across all players (queries keep their share around them);
    0 sends as fast as answers come back. ``characters`` more characters are created first
    (32 at a time) and left idle: how the server holds up with many of them. They stand in the
    start room (a crowded room), or with ``spread_idle`` walk a few random steps first.
    ``hot_room``: the players never leave the start room and only drop and take items, so
    every command writes the one room's stream (a hot aggregate).
    """
    if players < 1 or duration_s <= 0 or rate < 0 or not 0 <= query_ratio <= 1:
        raise LoadTestError("need players >= 1, duration > 0, rate >= 0, 0 <= query ratio <= 1")
    seed = random.randrange(10**9) if seed is None else seed
    operations_per_s = rate / (1 - query_ratio) if query_ratio < 1 else rate
    interval = players / operations_per_s if rate else 0.0
    parts = urlsplit(url)
    if parts.scheme != "http" or not parts.hostname:
        raise LoadTestError(f"expected a URL like http://HOST:PORT, got {url!r}")
    client = Client(parts.hostname, parts.port or 80, parts.path.rstrip("/"))
    cpu_began = time.process_time()
    shared = Run(
        client,
        query_ratio=query_ratio,
        interval_s=interval,
        read_back=read_back,
        hot_room=hot_room,
    )
    try:
        probe = await client.connect()
        probe.close()
    except (OSError, TimeoutError) as error:
        raise LoadTestError(f"cannot reach {url}: {error}") from None
    helpers = [asyncio.create_task(client.watch())]
    try:
        began = time.perf_counter()
        if characters:
            await _populate(shared, characters, seed, progress, spread=spread_idle)
        playing = await _cast(shared, players, seed)
        setup_s = time.perf_counter() - began
        began = time.perf_counter()
        shared.deadline = began + duration_s
        if progress is not None:
            helpers.append(asyncio.create_task(_report(shared, progress)))
        await asyncio.gather(*(p.play() for p in playing))
        elapsed = time.perf_counter() - began
    finally:
        for helper in helpers:
            helper.cancel()
        await asyncio.gather(*helpers, return_exceptions=True)
        await client.close()
    return (
        _figures(shared.stats, elapsed, setup_s)
        | await _server_memory(client)
        | {
            "characters": characters,
            "client_cpu_s": round(time.process_time() - cpu_began, 3),
            "url": url,
            "players": len(playing),
            "rate": rate,
            "query_ratio": query_ratio,
            "seed": seed,
            "spread_idle": spread_idle,
            "hot_room": hot_room,
        }
    )


SPREAD_STEPS = 4
#: What the hot-room players drop and take: the shipped world's start room holds one.
HOT_ITEM = "torch"


def hot_world(items: int) -> dict[str, Any]:
    """The shipped world with ``items`` torches in its start room (``aq bench hot-world``):
    a server playing it (``AQ_WORLD``) gives a hot-room load something to drop and take, so
    that every command writes the room's stream."""
    from importlib import resources

    world = msgspec.json.decode(
        resources.files("adventure_quest").joinpath("data/world.json").read_bytes()
    )
    world["rooms"][world["start_room"]]["items"] = [HOT_ITEM] * items
    return dict(world)


async def _populate(
    shared: Run,
    characters: int,
    seed: int,
    progress: Callable[[str], None] | None,
    *,
    spread: bool = False,
) -> None:
    """Create ``characters`` idle characters, 32 requests at a time (``spread``: each then
    walks ``SPREAD_STEPS`` random steps, so they end up all over the map)."""
    made = 0

    async def creator(lane: int) -> None:
        nonlocal made
        maker = Player(shared, "", random.Random(f"{seed}-idle-{lane}"))
        for n in range(lane, characters, 32):
            maker.name = f"Idle-{seed}-{n}"
            if await maker.create():
                if spread:
                    start = maker.room
                    if not shared.exits:
                        await _explore(shared.client, shared.exits, start)
                    await maker.wander(SPREAD_STEPS, away_from=start)
                made += 1
                if progress is not None and made % 1000 == 0:
                    progress(f"{made} idle characters created")

    await asyncio.gather(*(creator(lane) for lane in range(min(32, characters))))


async def _server_memory(client: Client) -> dict[str, float]:
    """The server's resident memory (now and peak, MB) from its /metrics, when it says."""
    connection = await client.connect()
    try:
        status, body = await connection.request(client.get("/metrics"))
    finally:
        connection.close()
    figures: dict[str, float] = {}
    if status != 200:
        return figures
    for line in body.decode().splitlines():
        name, _, value = line.partition(" ")
        if name == "process_resident_memory_bytes":
            figures["server_rss_mb"] = round(float(value) / 2**20, 1)
        elif name == "aq_process_peak_resident_memory_bytes":
            figures["server_peak_rss_mb"] = round(float(value) / 2**20, 1)
    return figures


async def _cast(shared: Run, players: int, seed: int) -> list[Player]:
    """Every player's character created, and the map learned."""
    everyone = [
        Player(shared, f"Load-{seed}-{n}", random.Random(f"{seed}-{n}")) for n in range(players)
    ]
    created = await asyncio.gather(*(p.create() for p in everyone))
    playing = [p for p, ok in zip(everyone, created, strict=True) if ok]
    if not playing:
        raise LoadTestError(f"no character could be created: {shared.stats.error_samples}")
    await _explore(shared.client, shared.exits, playing[0].room)
    return playing


async def _explore(client: Client, exits: dict[str, dict[str, str]], start: str) -> None:
    """Learn the map once (exits never change) so that players can move from their first step."""
    connection = await client.connect()
    try:
        to_visit = [start]
        while to_visit:
            room = to_visit.pop()
            if room in exits:
                continue
            status, body = await connection.request(client.get(f"/rooms/{room}"))
            if status != 200:
                raise LoadTestError(f"GET /rooms/{room} -> {status}: {body[:120]!r}")
            exits[room] = decode_room_answer(body).exits
            to_visit.extend(exits[room].values())
    except (OSError, TimeoutError, ProtocolError, msgspec.DecodeError) as error:
        raise LoadTestError(f"cannot read the map: {error}") from None
    finally:
        connection.close()


async def _report(shared: Run, progress: Callable[[str], None]) -> None:
    stats = shared.stats
    began = last_at = time.perf_counter()
    last = (0, 0)
    while True:
        await asyncio.sleep(PROGRESS_EVERY_S)
        now = time.perf_counter()
        counts = (len(stats.command_ms), len(stats.query_ms))
        span = now - last_at
        progress(
            f"{now - began:5.0f} s  commands {(counts[0] - last[0]) / span:8,.0f}/s  "
            f"queries {(counts[1] - last[1]) / span:8,.0f}/s  "
            f"rejections {sum(stats.rejections.values()):,}  errors {stats.errors:,}"
        )
        last, last_at = counts, now


def _figures(stats: Stats, elapsed: float, setup_s: float) -> dict[str, Any]:
    def ms(values: array[float], fraction: float) -> float:
        return round(percentile(sorted(values), fraction), 3)

    return {
        "benchmark": "loadtest",
        "duration_s": round(elapsed, 3),
        "setup_s": round(setup_s, 3),
        "commands": len(stats.command_ms),
        "queries": len(stats.query_ms),
        "commands_per_s": round(len(stats.command_ms) / elapsed, 1),
        "queries_per_s": round(len(stats.query_ms) / elapsed, 1),
        "command_p50_ms": ms(stats.command_ms, 0.50),
        "command_p99_ms": ms(stats.command_ms, 0.99),
        "query_p50_ms": ms(stats.query_ms, 0.50),
        "query_p99_ms": ms(stats.query_ms, 0.99),
        "lag_samples": len(stats.lag_ms),
        "lag_p50_ms": ms(stats.lag_ms, 0.50),
        "lag_p99_ms": ms(stats.lag_ms, 0.99),
        "rejections": sum(stats.rejections.values()),
        "rejection_codes": dict(stats.rejections.most_common()),
        "errors": stats.errors,
        "error_samples": stats.error_samples,
    }


def summary(result: dict[str, Any]) -> str:
    """The figures as a few lines for people."""
    r = result
    pace = f"{r['rate']:g} commands/s" if r["rate"] else "as fast as possible"
    codes = ", ".join(f"{code} {n:,}" for code, n in r["rejection_codes"].items())
    lines = [
        f"{r['players']} players for {r['duration_s']} s against {r['url']} ({pace}, "
        f"query ratio {r['query_ratio']:g}, seed {r['seed']})",
        f"commands {r['commands']:>10,}  {r['commands_per_s']:>10,.1f}/s  "
        f"p50 {r['command_p50_ms']:8.2f} ms  p99 {r['command_p99_ms']:8.2f} ms",
        f"queries  {r['queries']:>10,}  {r['queries_per_s']:>10,.1f}/s  "
        f"p50 {r['query_p50_ms']:8.2f} ms  p99 {r['query_p99_ms']:8.2f} ms",
        f"lag      {r['lag_samples']:>10,} reads        "
        f"p50 {r['lag_p50_ms']:8.2f} ms  p99 {r['lag_p99_ms']:8.2f} ms",
        f"rejections {r['rejections']:,}" + (f" ({codes})" if codes else ""),
        f"errors {r['errors']:,}; the generator used {r['client_cpu_s']:g} s of CPU",
        *(f"  {sample}" for sample in r["error_samples"]),
    ]
    if "server_rss_mb" in r:
        lines.append(
            f"server memory {r['server_rss_mb']} MB resident, peak {r['server_peak_rss_mb']} MB"
            + (f" ({r['characters']:,} idle characters)" if r["characters"] else "")
        )
    return "\n".join(lines)
