"""One simulated player of ``aq loadtest``: what it does at each step, and what it measured.

Each player creates a character, then loops: with probability ``query_ratio`` a query (mostly
its room, sometimes itself or the leaderboard), else a command (mostly a move along an exit;
say, take and drop of items it saw in its room, attack, respawn when dead; in a hot-room run
only drop and take, where it stands). Every
``LAG_EVERY``-th successful command of a player is followed by a read of the player with the
command's consistency token: the time from the command's answer to that read's answer is the
end-to-end lag (those reads are not counted as queries). 409 and 422 answers are the game
refusing, 429 the server's rate limits (``rejections``, by code); any other non-2xx answer, a
dropped connection or a timeout is an ``error``. ``Run`` is what the players of one run share,
``Stats`` what they measured.
"""

from __future__ import annotations

import asyncio
import random
import time
from array import array
from collections import Counter
from urllib.parse import quote

import msgspec

from adventure_quest.bench.http_client import (
    Character,
    Client,
    Connection,
    ProtocolError,
    decode_command_answer,
    decode_created,
    decode_error_answer,
    decode_room_answer,
)

#: One successful command in this many (per player) is read back with its consistency token.
LAG_EVERY = 10
WAIT_MS = 5000
ERROR_SAMPLES = 5
MAX_ITEMS = 10
REFUSALS = (409, 422, 429)
SAYINGS = ("Hello there!", "Anyone seen the dragon?", "Nice weather.", "Follow me.", "Onwards!")


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
            code = decode_error_answer(body).error.code
        except msgspec.DecodeError:
            code = "unreadable"
        self.rejections[code] += 1
        return code


class Run:
    """What every player of one run shares: the client, the clock, the map, the figures."""

    def __init__(
        self,
        client: Client,
        *,
        query_ratio: float,
        interval_s: float,
        read_back: bool = True,
        hot_room: bool = False,
    ) -> None:
        self.client = client
        self.query_ratio = query_ratio
        #: Whether players stay where they are and only drop and take (one hot room stream).
        self.hot_room = hot_room
        #: Whether every LAG_EVERY-th command is read back (off: the write path alone).
        self.read_back = read_back
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
                    created = decode_created(body)
                except msgspec.DecodeError as error:
                    self.run.stats.error(f"create {name}: an answer not as documented: {error}")
                    return False
                self.player_id = created.player.player_id
                self.auth = b"Authorization: Bearer %s\r\n" % created.token.encode()
                self._requests.clear()  # they were another character's (a reused maker)
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
            result = decode_command_answer(body)
            stats.command_ms.append((done - began) * 1000)
            self.apply(result.player)
            self.succeeded += 1
            if self.run.read_back and self.succeeded % LAG_EVERY == 0:
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

    async def wander(self, steps: int, away_from: str) -> None:
        """Walk ``steps`` random exits, none back into ``away_from`` while there is another
        (an idle character leaving the start room for somewhere else on the map)."""
        for _ in range(steps):
            exits = self.run.exits.get(self.room)
            if not exits:
                return
            onward = [d for d, to in exits.items() if to != away_from] or list(exits)
            answer = await self.call(self._post("move", {"direction": self.rng.choice(onward)}))
            if answer is None:
                return
            status, body = answer
            if status != 200:
                self.run.stats.error(f"move -> {status}: {body[:120]!r}")
                return
            self.apply(decode_command_answer(body).player)

    def next_command(self) -> tuple[str, bytes]:
        """The command to send next, chosen from what the player knows of its room."""
        rng = self.rng
        if not self.alive:
            return "respawn", self._post("respawn", {})
        if self.run.hot_room:  # drop what it carries, take something back: the room's stream
            if self.inventory:
                return "drop", self._post("drop", {"item": rng.choice(self.inventory)})
            item = rng.choice(self.items_here) if self.items_here else "torch"
            return "take", self._post("take", {"item": item})
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

    def apply(self, character: Character) -> None:
        if character.room != self.room:
            self.room = character.room
            self.items_here, self.monsters_here = [], []  # unknown until the room is read
        self.alive = character.alive
        self.inventory = [item.name for item in character.inventory]

    def saw(self, room: str, body: bytes) -> None:
        seen = decode_room_answer(body)
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
