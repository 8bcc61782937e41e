"""``aq play``: the text adventure in a terminal, on the embedded store.

The parser turns a line into a call on the Game; mistakes come back as game text. It reads any
line source, so piped standard input plays the same as a person typing.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Protocol

from adventure_quest.app.aggregates import player_id_for
from adventure_quest.app.game import Outcome
from adventure_quest.app.repository import ConflictError
from adventure_quest.app.text import (
    describe_inventory,
    describe_room,
    describe_stats,
    narrate,
)
from adventure_quest.domain.errors import DomainError
from adventure_quest.domain.player import PlayerState
from adventure_quest.domain.room import RoomState
from adventure_quest.domain.world import DIRECTIONS, World

HELP = """Commands:
  look (l)                 describe where you are
  go DIRECTION, n/s/e/w/u/d/ne/nw/se/sw
  take ITEM, drop ITEM     pick up or put down an item
  inventory (i)            what you carry
  attack MONSTER           fight a monster here
  use ITEM                 use an item (drink a potion)
  stats                    your character sheet
  say TEXT                 speak to the room
  respawn                  return to life after dying
  help, quit"""

QUIT = object()


class Playable(Protocol):
    """What a session plays against: the game in process, or a server (cli/remote.py)."""

    world: World

    async def player(self, player_id: str) -> PlayerState: ...
    async def room(self, room_key: str) -> RoomState: ...
    async def create_character(self, name: str) -> Outcome: ...
    async def move(self, player_id: str, direction: str) -> Outcome: ...
    async def take(self, player_id: str, words: str) -> Outcome: ...
    async def drop(self, player_id: str, words: str) -> Outcome: ...
    async def attack(self, player_id: str, words: str) -> Outcome: ...
    async def use(self, player_id: str, words: str) -> Outcome: ...
    async def say(self, player_id: str, text: str) -> Outcome: ...
    async def respawn(self, player_id: str) -> Outcome: ...


class Session:
    """One player's terminal session: a line in, game text out."""

    def __init__(self, game: Playable, player_id: str) -> None:
        self.game = game
        self.player_id = player_id
        self._verbs: dict[str, Callable[[str], Awaitable[str]]] = {
            "look": self._look, "l": self._look,
            "go": self._go, "walk": self._go, "move": self._go,
            "take": self._take, "get": self._take, "pick": self._take,
            "drop": self._drop,
            "inventory": self._inventory, "i": self._inventory, "inv": self._inventory,
            "attack": self._attack, "fight": self._attack, "kill": self._attack,
            "use": self._use, "drink": self._use,
            "stats": self._stats, "status": self._stats,
            "say": self._say,
            "respawn": self._respawn,
            "help": self._help, "?": self._help,
        }  # fmt: skip

    async def handle(self, line: str) -> str | object:
        """Game text answering ``line``; QUIT when the player leaves."""
        verb, _, rest = line.strip().partition(" ")
        verb, rest = verb.casefold(), rest.strip()
        if not verb:
            return ""
        if verb in ("quit", "exit", "q"):
            return QUIT
        if verb in DIRECTIONS or verb in DIRECTIONS.values():
            verb, rest = "go", verb
        action = self._verbs.get(verb)
        if action is None:
            return f"I don't know how to {verb!r}. Type 'help' for the commands."
        try:
            return await action(rest)
        except DomainError as error:
            return error.message
        except ConflictError:
            return "The world shifted around you; try that again."

    def _told(self, outcome: Outcome) -> str:
        lines = [narrate(self.game.world, event) for event in outcome.events]
        return "\n".join(line for line in lines if line)

    async def _look(self, _: str) -> str:
        me = await self.game.player(self.player_id)
        return describe_room(self.game.world, await self.game.room(me.room))

    async def _go(self, direction: str) -> str:
        if not direction:
            return "Go where?"
        outcome = await self.game.move(self.player_id, direction.casefold())
        return self._told(outcome) + "\n" + await self._look("")

    async def _take(self, words: str) -> str:
        if words.casefold() == "up" or words.casefold().startswith("up "):
            words = words[2:].strip()
        if not words:
            return "Take what?"
        return self._told(await self.game.take(self.player_id, words))

    async def _drop(self, words: str) -> str:
        if not words:
            return "Drop what?"
        return self._told(await self.game.drop(self.player_id, words))

    async def _inventory(self, _: str) -> str:
        return describe_inventory(self.game.world, await self.game.player(self.player_id))

    async def _attack(self, words: str) -> str:
        if not words:
            return "Attack what?"
        return self._told(await self.game.attack(self.player_id, words))

    async def _use(self, words: str) -> str:
        if not words:
            return "Use what?"
        return self._told(await self.game.use(self.player_id, words))

    async def _stats(self, _: str) -> str:
        return describe_stats(self.game.world, await self.game.player(self.player_id))

    async def _say(self, text: str) -> str:
        return self._told(await self.game.say(self.player_id, text))

    async def _respawn(self, _: str) -> str:
        outcome = await self.game.respawn(self.player_id)
        return self._told(outcome) + "\n" + await self._look("")

    async def _help(self, _: str) -> str:
        return HELP


async def enter(game: Playable, name: str) -> tuple[Session, str]:
    """Resume the character called ``name``, or create it; returns the session and a greeting."""
    player_id = player_id_for(name)
    try:
        me = await game.player(player_id)
        greeting = f"Welcome back, {me.name}."
    except DomainError as error:
        if error.code != "player_not_found":
            raise
        outcome = await game.create_character(name)
        greeting = "\n".join(line for e in outcome.events if (line := narrate(game.world, e)))
    session = Session(game, player_id)
    return session, greeting + "\n" + str(await session.handle("look"))
