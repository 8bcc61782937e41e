"""Query handlers over the read models: cached, and consistent with a token when asked.

Reads go to a replica when there are any (round robin). A query carrying a consistency token
is answered from the cache only by an entry read at or past the token; otherwise it waits,
for a bounded time, until its replica has applied the token, then falls back to the primary,
and answers ``412 stale`` if neither got there in time.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Awaitable, Callable, Sequence, Set

import msgspec

from adventure_quest.domain import room
from adventure_quest.domain.player import PlayerState
from adventure_quest.domain.world import World
from adventure_quest.projections.achievement_list import ACHIEVEMENTS
from adventure_quest.projections.model import RowKey
from adventure_quest.projections.players import LEADERBOARD, PLAYER_DETAILS
from adventure_quest.projections.ports import ReadDatabase
from adventure_quest.projections.rooms import ROOM_VIEW, ROOM_VIEW_PLAYERS, summary
from adventure_quest.projections.world_stats import EVENTS_PER_MINUTE
from adventure_quest.queries import views
from adventure_quest.queries.cache import Entry, QueryCache
from adventure_quest.queries.consistency import Marks, Watch, decode, encode, progress_of, reached
from adventure_quest.queries.errors import NotFoundError, StaleError

LEADERBOARD_SIZE = 100
#: The most characters one answer of ``GET /rooms/{room}`` lists (the first page is cached).
ROOM_PAGE = 100
_encode = msgspec.json.Encoder().encode


def cache_key(query: str, argument: str = "") -> str:
    """The key a query's answer is cached under: ``room:hall``, ``world``, ... (one place)."""
    return f"{query}:{argument}" if argument else query


def cache_keys(changed: Set[RowKey]) -> set[str]:
    """The cached answers a committed batch's changed rows make out of date."""
    keys: set[str] = set()
    for table, key in changed:
        if table == PLAYER_DETAILS.name:
            keys.add(cache_key("player", key))
        elif table == ACHIEVEMENTS.name:
            keys.add(cache_key("achievements", key))
        elif table == LEADERBOARD.name:
            keys.add(cache_key("leaderboard"))
        elif table == ROOM_VIEW.name:
            keys |= {cache_key("room", key), cache_key("world")}
        elif table == EVENTS_PER_MINUTE.name:
            keys.add(cache_key("world"))
    return keys


class ReadSide:
    """Answers queries from the read database(s) through the cache."""

    def __init__(
        self,
        primary: ReadDatabase,
        replicas: Sequence[ReadDatabase],
        cache: QueryCache,
        watch: Watch,
        world: World,
        *,
        replica_wait_s: float = 0.2,
    ) -> None:
        self.primary = primary
        self.replicas = list(replicas)
        self.cache = cache
        self.watch = watch
        self.world = world
        self.replica_wait_s = replica_wait_s
        self._next = itertools.cycle(self.replicas or [primary])
        self.fallbacks = 0

    async def answer(
        self,
        key: str,
        read: Callable[[ReadDatabase], Awaitable[bytes]],
        token: str | None,
        wait_s: float,
        *,
        cached: bool = True,
    ) -> bytes:
        """The encoded answer for ``key``, at least as new as ``token`` when one is given
        (``cached``: through the cache; otherwise read, and not kept)."""
        wanted = decode(token) if token else None

        async def load() -> Entry:
            database, have = await self._caught_up(wanted, time.monotonic() + wait_s)
            return Entry(await read(database), encode(have))

        if not cached:
            return (await load()).body
        if wanted is None:
            entry = await self.cache.fetch(key, load)
        else:
            entry = await self.cache.fetch(key, load, lambda e: reached(wanted, decode(e.reached)))
        return entry.body

    async def _caught_up(self, wanted: Marks | None, deadline: float) -> tuple[ReadDatabase, Marks]:
        database = next(self._next)
        if wanted is None:
            return database, await progress_of(database)
        if database is not self.primary:
            near = min(deadline, time.monotonic() + self.replica_wait_s)
            have = await self.watch.until(database, wanted, near)
            if have is not None:
                return database, have
            self.fallbacks += 1
        have = await self.watch.until(self.primary, wanted, deadline)
        if have is None:
            have = await progress_of(self.primary)
            raise StaleError(
                f"the read models did not reach {encode(wanted)} in time (they are at"
                f" {encode(have) or 'nothing yet'}); retry, or ask without the token",
            )
        return self.primary, have

    # -- the read models ------------------------------------------------------------------------

    async def player(self, db: ReadDatabase, player_id: str) -> bytes:
        row = await db.get(PLAYER_DETAILS, player_id)
        if row is None:
            raise NotFoundError("player_not_found", f"no character {player_id!r} (yet)")
        return _encode(
            views.PlayerDetails(
                player_id,
                row["name"],
                row["level"],
                row["xp"],
                row["health"],
                row["max_health"],
                row["room"],
                bool(row["alive"]),
                list(row["inventory"]),
            )
        )

    async def room(
        self, db: ReadDatabase, key: str, after: str | None = None, limit: int = ROOM_PAGE
    ) -> bytes:
        """The room, and a page of the characters there: ``limit`` of them by id, those
        after ``after`` (three indexed reads: the room's row, the page, the count)."""
        definition = self.world.rooms[key]
        row = await db.get(ROOM_VIEW, key)
        if row is None:  # nothing happened there yet: the world's starting contents
            state = room.initial_state(self.world, key)
            keys = [i.item_key for i in state.items]
            items = [self.world.items[k].name for k in keys]
            monsters = [
                views.Monster(m.monster_key, self.world.monsters[m.monster_key].name, m.health)
                for m in state.monsters
            ]
        else:
            items = list(row["items"])
            keys = [i["item_key"] for i in row["state"]["items"]]
            monsters = [msgspec.convert(m, views.Monster) for m in row["monsters"]]
        here = {"room": key}
        page = await db.select(
            ROOM_VIEW_PLAYERS,
            where=here,
            order_by=[("player_id", False)],
            limit=limit + 1,
            after=after,
        )
        more = len(page) > limit
        players = {
            r["player_id"]: views.Present(**summary(msgspec.convert(r["state"], PlayerState)))
            for r in page[:limit]
        }
        present = await db.count(ROOM_VIEW_PLAYERS, where=here)
        return _encode(
            views.RoomView(
                key,
                definition.name,
                definition.description,
                {str(d): to for d, to in definition.exits.items()},
                items,
                keys,
                monsters,
                players,
                present,
                page[limit - 1]["player_id"] if more else None,
            )
        )

    async def leaderboard(self, db: ReadDatabase) -> bytes:
        rows = await db.select(
            LEADERBOARD, order_by=[("level", True), ("xp", True)], limit=LEADERBOARD_SIZE
        )
        return _encode(
            views.Leaderboard(
                [
                    views.Ranked(n, r["player_id"], r["name"], r["level"], r["xp"])
                    for n, r in enumerate(rows, 1)
                ]
            )
        )

    async def achievements(self, db: ReadDatabase, player_id: str) -> bytes:
        row = await db.get(ACHIEVEMENTS, player_id)
        if row is None:
            raise NotFoundError("player_not_found", f"no character {player_id!r} (yet)")
        return _encode(views.Achievements(player_id, row["name"], list(row["unlocked"])))

    async def world_stats(self, db: ReadDatabase) -> bytes:
        present = await db.totals(ROOM_VIEW_PLAYERS, "room")
        minutes = await db.totals(EVENTS_PER_MINUTE, "minute", summed="events", limit=10)
        return _encode(views.WorldStats({r: n for r, n in sorted(present.items()) if r}, minutes))
