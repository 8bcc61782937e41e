"""Notifications: what happens in a character's room, pushed as it happens (Server-Sent Events).

The feed tails every shard's log from its head (only while somebody listens), turns each event
into what the people in its room see (app/text.py ``witness``) and hands it to the subscribers
in that room. A subscription follows its character from room to room. A slow subscriber loses
the oldest notices, never blocks the feed, and is told how many it missed.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Sequence

import msgspec

from adventure_quest.app.game import Game
from adventure_quest.app.text import witness
from adventure_quest.domain.errors import DomainError
from adventure_quest.domain.events import (
    Event,
    ItemPickedUp,
    ItemPutDown,
    MonsterDefeated,
    MonsterHit,
    PlayerCreated,
    PlayerMoved,
    PlayerRespawned,
)
from adventure_quest.store.envelope import RecordedEvent, stream_key_of
from adventure_quest.store.errors import StoreError
from adventure_quest.store.ports import GlobalLog
from adventure_quest.store.retry import Backoff, until_done

log = logging.getLogger(__name__)
QUEUE_LIMIT = 1_000
PAGE = 500


class Notice(msgspec.Struct, frozen=True):
    """One thing that happened in a room."""

    kind: str
    room: str
    player_id: str
    name: str
    text: str
    event_type: str


class Subscription:
    """One listener: the character it follows and the notices waiting for it."""

    def __init__(self, player_id: str, room: str) -> None:
        self.player_id = player_id
        self.room = room
        self.notices: asyncio.Queue[Notice] = asyncio.Queue()
        self.missed = 0

    def offer(self, notice: Notice) -> None:
        if self.notices.qsize() >= QUEUE_LIMIT:
            self.notices.get_nowait()
            self.missed += 1
        self.notices.put_nowait(notice)


class RoomFeed:
    """Turns the logs into room notices for the subscribers."""

    def __init__(self, game: Game, logs: Sequence[GlobalLog]) -> None:
        self.game = game
        self.logs = list(logs)
        self.delivered = 0
        self._rooms: dict[str, set[Subscription]] = {}
        self._players: dict[str, set[Subscription]] = {}
        self._names: dict[str, str] = {}
        self._listening = asyncio.Event()
        #: Set when the server stops: open streams end.
        self.closed = asyncio.Event()

    @property
    def subscribers(self) -> int:
        return sum(len(subs) for subs in self._rooms.values())

    async def subscribe(self, player_id: str) -> Subscription:
        # The write side's state now, not this process's cached one: another API process may
        # have moved the character since (issue 12).
        state = await self.game.current_player(player_id)
        subscription = Subscription(player_id, state.room)
        self._rooms.setdefault(state.room, set()).add(subscription)
        self._players.setdefault(player_id, set()).add(subscription)
        self._listening.set()
        return subscription

    def unsubscribe(self, subscription: Subscription) -> None:
        self._leave(subscription)
        mine = self._players.get(subscription.player_id, set())
        mine.discard(subscription)
        if not mine:
            self._players.pop(subscription.player_id, None)
        if not self._rooms:
            self._listening.clear()

    def _leave(self, subscription: Subscription) -> None:
        room = self._rooms.get(subscription.room, set())
        room.discard(subscription)
        if not room:
            self._rooms.pop(subscription.room, None)

    async def run(self, stop: asyncio.Event) -> None:
        """Tail every shard's log until ``stop``."""
        try:
            await asyncio.gather(*(self._tail(shard_log, stop) for shard_log in self.logs))
        finally:
            self.closed.set()

    async def _tail(self, shard_log: GlobalLog, stop: asyncio.Event) -> None:
        backoff = Backoff(f"room feed, shard {shard_log.shard}", logger=log)
        position = await until_done(shard_log.head, backoff, stop, (StoreError,))
        while position is not None and not stop.is_set():
            try:
                position = await self._step(shard_log, position)
            except StoreError as error:
                await backoff.wait(error, stop)
            else:
                backoff.succeeded()

    async def _step(self, shard_log: GlobalLog, position: int) -> int:
        """Deliver what the log holds after ``position``; the position reached."""
        if not self._listening.is_set():
            # Nobody listens: skip ahead, decode nothing.
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(0.5):
                    await self._listening.wait()
            position = await shard_log.head()
            if self._listening.is_set():
                # Someone subscribed while nobody listened: what moved them before this
                # head is in their state, what moves them after it the tail will see.
                await self._resync()
            return position
        head = await shard_log.wait_for(position, 0.5)
        if head <= position:
            return position
        page = await shard_log.read_all(position, PAGE)
        for recorded in page:
            await self._publish(recorded)
        return page[-1].position if page else position

    async def _publish(self, recorded: RecordedEvent) -> None:
        try:
            event = self.game.repository.codec.decode(recorded)
        except Exception:
            return  # an event this version cannot read is nobody's notice
        actor = self._actor(recorded, event)
        if not actor:
            return
        if isinstance(event, PlayerMoved):
            name = await self._name(actor)
            kind = recorded.event_type
            left = f"{name} leaves {event.direction}."
            self._deliver(Notice("departure", event.from_room, actor, name, left, kind))
            self._follow(actor, event.to_room)
            self._deliver(Notice("arrival", event.to_room, actor, name, f"{name} arrives.", kind))
            return
        room = getattr(event, "room", None)
        if recorded.stream_type == "room":
            room = stream_key_of(recorded.stream_id)
        seen = witness(self.game.world, event, await self._name(actor))
        if seen is None or not isinstance(room, str):
            return
        if isinstance(event, PlayerCreated | PlayerRespawned):
            self._follow(actor, room)
        kind, text = seen
        self._deliver(Notice(kind, room, actor, self._names[actor], text, recorded.event_type))

    def _actor(self, recorded: RecordedEvent, event: Event) -> str:
        if recorded.stream_type == "player":
            return stream_key_of(recorded.stream_id)
        if isinstance(event, ItemPickedUp | ItemPutDown | MonsterHit | MonsterDefeated):
            return event.player_id
        return ""

    async def _name(self, player_id: str) -> str:
        name = self._names.get(player_id)
        if name is None:
            loaded = await self.game.repository.load(
                self.game.players, self.game.players.stream_id(player_id)
            )
            name = self._names[player_id] = loaded.state.name or "someone"
        return name

    async def _resync(self) -> None:
        for player_id in list(self._players):
            try:
                state = await self.game.current_player(player_id)
            except DomainError:
                continue
            self._follow(player_id, state.room)

    def _follow(self, player_id: str, room: str) -> None:
        for subscription in self._players.get(player_id, ()):
            if subscription.room != room:
                self._leave(subscription)
                subscription.room = room
                self._rooms.setdefault(room, set()).add(subscription)

    def _deliver(self, notice: Notice) -> None:
        for subscription in self._rooms.get(notice.room, ()):
            subscription.offer(notice)
            self.delivered += 1
