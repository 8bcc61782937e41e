"""``aq loadtest``: simulated players driving a running server over HTTP.

Each player creates a character (and the map is read once), then loops: with probability
``query_ratio`` a query (mostly its room, sometimes itself or the leaderboard), else a command
(mostly a move along an exit; say, take and drop of items it saw in its room, attack, respawn
when dead). Every ``LAG_EVERY``-th successful command of a player is followed by a read of the
player with the command's consistency token: the time from the command's answer to that read's
answer is the end-to-end lag (those reads are not counted as queries).

The client is a minimal HTTP/1.1 keep-alive protocol (one connection per player, one request at
a time, bodies framed by Content-Length) so that the generator costs little CPU next to the server
it measures on the same machine. 409 and 422 answers are the game refusing (``rejections``);
any other non-2xx answer, a dropped connection or a timeout is an ``error``.
"""

from __future__ import annotations

import asyncio
import random
import time
from array import array
from collections import Counter
from collections.abc import Callable
from typing import Any, cast
from urllib.parse import quote, urlsplit

import msgspec

from adventure_quest.bench.harness import percentile

TIMEOUT_S = 10.0
#: One successful command in this many (per player) is read back with its consistency token.
LAG_EVERY = 10
WAIT_MS = 5000
ERROR_SAMPLES = 5
PROGRESS_EVERY_S = 3.0
MAX_ITEMS = 10
REFUSALS = (409, 422)
SAYINGS = ("Hello there!", "Anyone seen the dragon?", "Nice weather.", "Follow me.", "Onwards!")


class LoadTestError(Exception):
    """The load test cannot run: a bad URL or a server that does not answer."""


class ProtocolError(Exception):
    """The server's answer is not HTTP/1.1 this client understands."""


class _Item(msgspec.Struct):
    name: str


class _Character(msgspec.Struct):
    player_id: str
    room: str
    alive: bool
    inventory: list[_Item]


class _CommandAnswer(msgspec.Struct):
    player: _Character
    consistency: str


class _Created(_CommandAnswer):
    token: str


class _Monster(msgspec.Struct):
    name: str


class _RoomAnswer(msgspec.Struct):
    exits: dict[str, str]
    items: list[str]
    monsters: list[_Monster]


class _ErrorDetail(msgspec.Struct):
    code: str


class _ErrorAnswer(msgspec.Struct):
    error: _ErrorDetail


_command_answer = msgspec.json.Decoder(_CommandAnswer)
_created = msgspec.json.Decoder(_Created)
_room_answer = msgspec.json.Decoder(_RoomAnswer)
_error_answer = msgspec.json.Decoder(_ErrorAnswer)


class Connection(asyncio.Protocol):
    """One keep-alive HTTP/1.1 connection carrying one request at a time."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._pending = b""
        self._waiter: asyncio.Future[tuple[int, bytes]] | None = None
        self._transport: asyncio.Transport | None = None
        self.lost: asyncio.Future[None] = loop.create_future()
        self.sent_at = 0.0

    @property
    def closed(self) -> bool:
        return self._transport is None or self._transport.is_closing()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = cast(asyncio.Transport, transport)

    def connection_lost(self, exc: Exception | None) -> None:
        self._fail(ConnectionError(f"connection lost: {exc}" if exc else "connection closed"))
        if not self.lost.done():
            self.lost.set_result(None)

    def data_received(self, data: bytes) -> None:
        if self._pending:
            data = self._pending + data
        self._pending = data
        end = data.find(b"\r\n\r\n")
        if end < 0:
            return
        # Header names come lower-case from uvicorn; lower-casing is the slow fallback.
        at = data.find(b"\r\ncontent-length:", 0, end)
        if at < 0:
            at = data[:end].lower().find(b"\r\ncontent-length:")
        try:
            if at < 0:
                raise ProtocolError(f"an answer without content-length: {data[:end]!r}")
            total = end + 4 + int(data[at + 17 : data.find(b"\r\n", at + 2)])
            if len(data) < total:
                return
            status = int(data[9:12])
        except (ValueError, ProtocolError) as error:
            self._fail(error if isinstance(error, ProtocolError) else ProtocolError(str(error)))
            self.close()
            return
        self._pending = data[total:]
        waiter, self._waiter = self._waiter, None
        if waiter is not None and not waiter.done():
            waiter.set_result((status, data[end + 4 : total]))

    async def request(self, data: bytes) -> tuple[int, bytes]:
        """Send one whole request; its status and body."""
        if self._transport is None or self._transport.is_closing():
            raise ConnectionError("connection closed")
        waiter: asyncio.Future[tuple[int, bytes]] = self._loop.create_future()
        self._waiter = waiter
        self.sent_at = time.monotonic()
        self._transport.write(data)
        return await waiter

    def overdue(self, now: float) -> bool:
        return self._waiter is not None and now - self.sent_at > TIMEOUT_S

    def expire(self) -> None:
        self._fail(TimeoutError(f"no answer in {TIMEOUT_S:g} s"))
        if self._transport is not None:
            self._transport.abort()

    def close(self) -> None:
        if self._transport is not None:
            self._transport.close()

    def _fail(self, error: Exception) -> None:
        waiter, self._waiter = self._waiter, None
        if waiter is not None and not waiter.done():
            waiter.set_exception(error)


class Client:
    """Connections to one server, and a watchdog failing requests that get no answer in time."""

    def __init__(self, url: str) -> None:
        parts = urlsplit(url)
        if parts.scheme != "http" or not parts.hostname:
            raise LoadTestError(f"expected a URL like http://HOST:PORT, got {url!r}")
        self.host = parts.hostname
        self.port = parts.port or 80
        self.prefix = parts.path.rstrip("/")
        self._open: set[Connection] = set()
        self._gets: dict[str, bytes] = {}

    async def connect(self) -> Connection:
        loop = asyncio.get_running_loop()
        _, connection = await asyncio.wait_for(
            loop.create_connection(lambda: Connection(loop), self.host, self.port), TIMEOUT_S
        )
        self._open.add(connection)
        return connection

    async def watch(self) -> None:
        while True:
            await asyncio.sleep(0.5)
            now = time.monotonic()
            for connection in list(self._open):
                if connection.lost.done():
                    self._open.discard(connection)
                elif connection.overdue(now):
                    connection.expire()

    async def close(self) -> None:
        for connection in self._open:
            connection.close()
        if self._open:
            await asyncio.wait([c.lost for c in self._open], timeout=TIMEOUT_S)
        self._open.clear()

    def get(self, path: str) -> bytes:
        request = self._gets.get(path)
        if request is None:
            request = b"GET %s%s HTTP/1.1\r\nHost: %s\r\n\r\n" % (
                self.prefix.encode(),
                path.encode(),
                self.host.encode(),
            )
            if len(self._gets) < 10_000:  # room, character and leaderboard reads repeat
                self._gets[path] = request
        return request

    def post(self, path: str, body: bytes, auth: bytes = b"") -> bytes:
        return (
            b"POST %s%s HTTP/1.1\r\nHost: %s\r\n%sContent-Type: application/json\r\n"
            b"Content-Length: %d\r\n\r\n%s"
        ) % (self.prefix.encode(), path.encode(), self.host.encode(), auth, len(body), body)


class Stats:
    """What the players measured: latencies in ms, counts, refusals by code, first errors."""

    def __init__(self) -> None:
        self.command_ms = array("d")
        self.query_ms = array("d")
        self.lag_ms = array("d")
        self.errors = 0
        self.rejections: Counter[str] = Counter()
        self.error_samples: list[str] = []

    def error(self, message: str) -> None:
        self.errors += 1
        if len(self.error_samples) < ERROR_SAMPLES:
            self.error_samples.append(message)

    def refused(self, body: bytes) -> str:
        try:
            code = _error_answer.decode(body).error.code
        except msgspec.DecodeError:
            code = "unreadable"
        self.rejections[code] += 1
        return code


class Run:
    """What every player of one run shares: the client, the clock, the map, the figures."""

    def __init__(self, client: Client, *, query_ratio: float, interval_s: float) -> None:
        self.client = client
        self.query_ratio = query_ratio
        self.interval_s = interval_s
        self.deadline = 0.0
        self.exits: dict[str, dict[str, str]] = {}
        self.stats = Stats()


class Player:
    """One simulated player: its character, what it saw of its room, and its connection."""

    def __init__(self, run: Run, name: str, rng: random.Random) -> None:
        self.run, self.name, self.rng = run, name, rng
        self.player_id = ""
        self.auth = b""
        self.room = ""
        self.alive = True
        self.inventory: list[str] = []
        self.items_here: list[str] = []
        self.monsters_here: list[str] = []
        self.succeeded = 0
        self._connection: Connection | None = None
        self._requests: dict[tuple[str, ...], bytes] = {}

    async def call(self, data: bytes) -> tuple[int, bytes] | None:
        """The answer, or None once a failure is counted as an error."""
        try:
            if self._connection is None or self._connection.closed:
                self._connection = await self.run.client.connect()
            return await self._connection.request(data)
        except (OSError, TimeoutError, ProtocolError) as error:
            self.run.stats.error(f"{type(error).__name__}: {error}")
            if self._connection is not None:
                self._connection.close()
                self._connection = None
            await asyncio.sleep(0.05)  # a server that went away is not hammered in a hot loop
            return None

    async def create(self) -> bool:
        """Make the character (another name if this one is taken); whether it exists."""
        client, name = self.run.client, self.name
        for _ in range(3):
            answer = await self.call(client.post("/players", msgspec.json.encode({"name": name})))
            if answer is None:
                return False
            status, body = answer
            if status == 201:
                try:
                    created = _created.decode(body)
                except msgspec.DecodeError as error:
                    self.run.stats.error(f"create {name}: an answer not as documented: {error}")
                    return False
                self.player_id = created.player.player_id
                self.auth = b"Authorization: Bearer %s\r\n" % created.token.encode()
                self.apply(created.player)
                return True
            if status != 409:
                break
            name = f"{self.name}-{self.rng.getrandbits(16):04x}"
        self.run.stats.error(f"create {name} -> {status}: {body[:120]!r}")
        return False

    async def play(self) -> None:
        run, rng = self.run, self.rng
        interval = run.interval_s
        next_at = time.perf_counter() + rng.random() * interval
        while (now := time.perf_counter()) < run.deadline:
            if interval:
                if next_at > now:
                    await asyncio.sleep(next_at - now)
                    if time.perf_counter() >= run.deadline:
                        break
                elif now - next_at > 1.0:
                    next_at = now  # far behind: drop the backlog instead of bursting
                next_at += interval
            try:
                if rng.random() < run.query_ratio:
                    await self.query()
                else:
                    await self.command()
            except msgspec.DecodeError as error:
                run.stats.error(f"an answer not as documented: {error}")

    async def query(self) -> None:
        client, room, roll = self.run.client, self.room, self.rng.random()
        if roll < 0.75:
            data = client.get(f"/rooms/{room}")
        elif roll < 0.9:
            data = client.get(f"/players/{self.player_id}")
        else:
            data = client.get("/leaderboard")
        began = time.perf_counter()
        answer = await self.call(data)
        if answer is None:
            return
        status, body = answer
        stats = self.run.stats
        if status == 200:
            elapsed = time.perf_counter() - began
            if roll < 0.75:
                self.saw(room, body)
            stats.query_ms.append(elapsed * 1000)
        elif status in REFUSALS:
            stats.query_ms.append((time.perf_counter() - began) * 1000)
            stats.refused(body)
        else:
            stats.error(f"{data.split(b' ', 2)[1].decode()} -> {status}: {body[:120]!r}")

    async def command(self) -> None:
        name, data = self.next_command()
        began = time.perf_counter()
        answer = await self.call(data)
        if answer is None:
            return
        status, body = answer
        done = time.perf_counter()
        stats = self.run.stats
        if status == 200:
            result = _command_answer.decode(body)
            stats.command_ms.append((done - began) * 1000)
            self.apply(result.player)
            self.succeeded += 1
            if self.succeeded % LAG_EVERY == 0:
                await self.measure_lag(result.consistency, done)
        elif status in REFUSALS:
            stats.command_ms.append((done - began) * 1000)
            self.refused(stats.refused(body))
        else:
            stats.error(f"{name} -> {status}: {body[:120]!r}")

    async def measure_lag(self, consistency: str, answered: float) -> None:
        path = f"/players/{self.player_id}?consistency={quote(consistency)}&wait_ms={WAIT_MS}"
        answer = await self.call(self.run.client.get(path))
        if answer is None:
            return
        status, body = answer
        if status == 200:
            self.run.stats.lag_ms.append((time.perf_counter() - answered) * 1000)
        else:
            self.run.stats.error(f"lag read -> {status}: {body[:120]!r}")

    def next_command(self) -> tuple[str, bytes]:
        """The command to send next, chosen from what the player knows of its room."""
        rng = self.rng
        if not self.alive:
            return "respawn", self._post("respawn", {})
        roll = rng.random()
        exits = self.run.exits.get(self.room)
        if roll < 0.15 or not exits:
            return "say", self._post("say", {"text": rng.choice(SAYINGS)})
        if roll < 0.30 and self.items_here and len(self.inventory) < MAX_ITEMS:
            return "take", self._post("take", {"item": rng.choice(self.items_here)})
        if roll < 0.42 and self.inventory:
            return "drop", self._post("drop", {"item": rng.choice(self.inventory)})
        if roll < 0.47 and self.monsters_here:
            return "attack", self._post("attack", {"target": rng.choice(self.monsters_here)})
        return "move", self._post("move", {"direction": rng.choice(list(exits))})

    def _post(self, command: str, body: dict[str, str]) -> bytes:
        key = (command, *body.values())
        request = self._requests.get(key)
        if request is None:
            path = f"/players/{self.player_id}/{command}"
            encoded = msgspec.json.encode(body) if body else b""
            request = self._requests[key] = self.run.client.post(path, encoded, self.auth)
        return request

    def apply(self, character: _Character) -> None:
        if character.room != self.room:
            self.room = character.room
            self.items_here, self.monsters_here = [], []  # unknown until the room is read
        self.alive = character.alive
        self.inventory = [item.name for item in character.inventory]

    def saw(self, room: str, body: bytes) -> None:
        seen = _room_answer.decode(body)
        self.run.exits[room] = seen.exits
        if room == self.room:
            self.items_here = seen.items
            self.monsters_here = [monster.name for monster in seen.monsters]

    def refused(self, code: str) -> None:
        if code in ("player_dead", "not_dead"):
            self.alive = code == "not_dead"
        elif code == "item_not_here":
            self.items_here = []
        elif code == "monster_not_here":
            self.monsters_here = []


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
) -> dict[str, Any]:
    """Drive the server at ``url`` with ``players`` for ``duration_s``; the figures.

    ``rate`` paces commands across all players (queries keep their share around them);
    0 sends as fast as answers come back. ``characters`` more characters are created first
    (32 at a time) and left idle: how the server holds up with many of them.
    """
    if players < 1 or duration_s <= 0 or rate < 0 or not 0 <= query_ratio <= 1:
        raise LoadTestError("need players >= 1, duration > 0, rate >= 0, 0 <= query ratio <= 1")
    seed = random.randrange(10**9) if seed is None else seed
    operations_per_s = rate / (1 - query_ratio) if query_ratio < 1 else rate
    interval = players / operations_per_s if rate else 0.0
    client = Client(url)
    cpu_began = time.process_time()
    shared = Run(client, query_ratio=query_ratio, interval_s=interval)
    try:
        probe = await client.connect()
        probe.close()
    except (OSError, TimeoutError) as error:
        raise LoadTestError(f"cannot reach {url}: {error}") from None
    helpers = [asyncio.create_task(client.watch())]
    try:
        began = time.perf_counter()
        if characters:
            await _populate(shared, characters, seed, progress)
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
        }
    )


async def _populate(
    shared: Run, characters: int, seed: int, progress: Callable[[str], None] | None
) -> None:
    """Create ``characters`` idle characters, 32 requests at a time."""
    made = 0

    async def creator(lane: int) -> None:
        nonlocal made
        maker = Player(shared, "", random.Random(f"{seed}-idle-{lane}"))
        for n in range(lane, characters, 32):
            maker.name = f"Idle-{seed}-{n}"
            if await maker.create():
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
            exits[room] = _room_answer.decode(body).exits
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
