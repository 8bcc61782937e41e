"""Command handlers of the game: each command loads, decides and appends, stream by stream.

Commands that touch a room and a player (take, drop, attack) run as hand-overs: the first stream
decides and records the hand-over, the second finishes it idempotently (see app/handovers.py and
docs/handover.md). Every answer lists the events appended, so callers can render them.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import msgspec

from adventure_quest.app.aggregates import (
    AggregateType,
    player_id_for,
    player_type,
    room_type,
)
from adventure_quest.app.handovers import Handovers
from adventure_quest.app.repository import ConflictError, Repository, Saved
from adventure_quest.domain import player, room
from adventure_quest.domain.errors import refuse
from adventure_quest.domain.events import (
    Event,
    ItemDropped,
    ItemPickedUp,
    MonsterDefeated,
    MonsterHit,
)
from adventure_quest.domain.player import PlayerState
from adventure_quest.domain.room import RoomState
from adventure_quest.domain.world import World
from adventure_quest.store.envelope import Metadata
from adventure_quest.store.errors import StoreUnavailableError
from adventure_quest.store.uuid7 import uuid7


class Outcome(msgspec.Struct, frozen=True):
    """What a command did: the events it appended (in order) and the acting player's state."""

    player: PlayerState
    events: list[Event]


E = TypeVar("E", bound=Event)
T = TypeVar("T")
log = logging.getLogger(__name__)


def first_of(events: list[Event], kind: type[E]) -> E:
    """The first event of ``kind``; its absence breaks a decision's contract."""
    for event in events:
        if isinstance(event, kind):
            return event
    raise RuntimeError(f"expected a {kind.__name__} among {events!r}")


async def later_if_need_be(finish: Awaitable[T], unfinished: T) -> T:
    """A hand-over's second half, or ``unfinished`` when it cannot be made now.

    Once the first half is recorded the command has happened: answering "conflict, try again"
    (writers kept colliding on a crowded room) or "unavailable" would invite a retry that finds
    the item gone. The hand-over manager finishes what is left, exactly once (docs/handover.md);
    meanwhile the item is in transit, and the answer shows the state before the second half.
    """
    try:
        return await finish
    except (ConflictError, StoreUnavailableError) as error:
        log.warning("hand-over left to the hand-over manager: %s", error)
        return unfinished


def _random_roll() -> int:
    return int.from_bytes(os.urandom(2), "big")


class Game:
    """The command side of Adventure Quest."""

    def __init__(
        self,
        repository: Repository,
        world: World,
        *,
        roll: Callable[[], int] = _random_roll,
        new_id: Callable[[], str] = uuid7,
    ) -> None:
        self.repository = repository
        self.world = world
        self.players: AggregateType[PlayerState] = player_type()
        self.rooms: AggregateType[RoomState] = room_type(world)
        #: The second halves of take, drop and attack (the hand-over manager runs them too).
        self.handovers = Handovers(repository, self.players, self.rooms, world)
        self._roll = roll
        self._new_id = new_id

    def _metadata(self, player_id: str, command_id: str) -> Metadata:
        return Metadata(correlation_id=command_id, causation_id=command_id, actor=player_id)

    # -- queries over the aggregates (the embedded game's own view) ---------------------------

    async def player(self, player_id: str) -> PlayerState:
        """A character's current state (refuses an unknown id)."""
        loaded = await self.repository.load(self.players, self.players.stream_id(player_id))
        if not loaded.state.exists:
            raise refuse("player_not_found", "There is no such character.")
        return loaded.state

    async def current_player(self, player_id: str) -> PlayerState:
        """A character's state as the store has it now, whichever process moved it last (the
        cached state plus the events after it); refuses an unknown id."""
        loaded = await self.repository.refresh(self.players, self.players.stream_id(player_id))
        if not loaded.state.exists:
            raise refuse("player_not_found", "There is no such character.")
        return loaded.state

    async def room(self, room_key: str) -> RoomState:
        """A room's current state (refuses an unknown room)."""
        if room_key not in self.world.rooms:
            raise refuse("room_not_found", f"There is no room {room_key!r}.")
        loaded = await self.repository.load(self.rooms, self.rooms.stream_id(room_key))
        return loaded.state

    # -- commands ------------------------------------------------------------------------------

    async def create_character(self, name: str, token_hash: str = "") -> Outcome:
        """Create a character; the id follows from the name, so a taken name conflicts."""
        name = player.check_name(name)
        player_id = player_id_for(name)
        metadata = self._metadata(player_id, self._new_id())
        saved = await self.repository.update(
            self.players,
            self.players.stream_id(player_id),
            lambda state: player.create(state, player_id, name, self.world, token_hash),
            metadata,
        )
        return Outcome(saved.state, saved.events)

    async def _act(self, player_id: str, decide: Callable[[PlayerState], list[Event]]) -> Outcome:
        metadata = self._metadata(player_id, self._new_id())
        saved = await self.repository.update(
            self.players, self.players.stream_id(player_id), decide, metadata
        )
        return Outcome(saved.state, saved.events)

    async def move(self, player_id: str, direction: str) -> Outcome:
        return await self._act(player_id, lambda s: player.move(s, direction, self.world))

    async def use(self, player_id: str, words: str) -> Outcome:
        return await self._act(player_id, lambda s: player.use(s, words, self.world))

    async def say(self, player_id: str, text: str) -> Outcome:
        return await self._act(player_id, lambda s: player.say(s, text))

    async def respawn(self, player_id: str) -> Outcome:
        return await self._act(player_id, lambda s: player.respawn(s, self.world))

    async def take(self, player_id: str, words: str) -> Outcome:
        """Room hands the item over (its stream decides contested items), then the player."""
        actor = await self.player(player_id)
        player.require_alive(actor)
        here = await self.room(actor.room)
        player.check_can_carry(actor, room.find_item_key(here, words, self.world), self.world)
        handover_id = self._new_id()
        metadata = self._metadata(player_id, handover_id)
        given = await self.repository.update(
            self.rooms,
            self.rooms.stream_id(actor.room),
            lambda s: room.hand_over_item(s, words, player_id, handover_id, self.world),
            metadata,
        )
        picked = first_of(given.events, ItemPickedUp)
        unfinished: Saved[PlayerState] = Saved(actor, [], None)
        finished = await later_if_need_be(
            self.handovers.finish_take(picked, actor.room), unfinished
        )
        stream = self.players.stream_id(player_id)
        second = await self._second_half(finished, unfinished, stream, handover_id)
        return Outcome(finished.state, [*given.events, *second])

    async def drop(self, player_id: str, words: str) -> Outcome:
        """The player lets go first; the room receives the item under the same hand-over id."""
        handover_id = self._new_id()
        metadata = self._metadata(player_id, handover_id)
        let_go = await self.repository.update(
            self.players,
            self.players.stream_id(player_id),
            lambda s: player.drop(s, words, handover_id, self.world),
            metadata,
        )
        dropped = first_of(let_go.events, ItemDropped)
        unfinished: Saved[RoomState] = Saved(RoomState(dropped.room), [], None)
        landed = await later_if_need_be(self.handovers.finish_drop(dropped, player_id), unfinished)
        stream = self.rooms.stream_id(dropped.room)
        second = await self._second_half(landed, unfinished, stream, handover_id)
        return Outcome(let_go.state, [*let_go.events, *second])

    async def attack(self, player_id: str, words: str) -> Outcome:
        """The room resolves the blow against its monster; the player takes the outcome."""
        actor = await self.player(player_id)
        damage, defense = player.attack_power(actor, self.world)
        handover_id = self._new_id()
        roll = self._roll()
        metadata = self._metadata(player_id, handover_id)
        fought = await self.repository.update(
            self.rooms,
            self.rooms.stream_id(actor.room),
            lambda s: room.fight(
                s,
                words,
                player_id=player_id,
                damage=damage,
                defense=defense,
                roll=roll,
                handover_id=handover_id,
                world=self.world,
            ),
            metadata,
        )
        hit = first_of(fought.events, MonsterHit)
        defeated = next((e for e in fought.events if isinstance(e, MonsterDefeated)), None)
        unfinished = Saved(actor, [], None)
        outcome = await later_if_need_be(self.handovers.finish_fight(hit, defeated), unfinished)
        stream = self.players.stream_id(player_id)
        second = await self._second_half(outcome, unfinished, stream, handover_id)
        return Outcome(outcome.state, [*fought.events, *second])

    async def _second_half(
        self, finished: Saved[Any], unfinished: Saved[Any], stream_id: str, handover_id: str
    ) -> list[Event]:
        """The events of a hand-over's second half, whoever recorded them.

        Usually this command did (``events``) or had done so in an earlier attempt
        (``repeated``). When the hand-over manager got there first, the finish found its state
        done and appended nothing: the state the answer shows holds the manager's events, so
        the answer lists them too (read back by their ids, derived from the hand-over's).
        """
        if finished is unfinished:  # left to the manager: nothing recorded yet
            return []
        if finished.events or finished.repeated:
            return [*finished.events, *finished.repeated]
        return await self.repository.recorded_once(stream_id, handover_id)
