"""The routes a fast lane may answer, declared once; the routes and the lanes both read it.

``COMMANDS``: each command that has a body, with the body's schema and how it calls the game
(``api/commands.py`` routes them, ``api/fast_commands.py`` runs well-formed ones itself).
``QUERIES``: each cached query a plain GET asks for, with its path and its cache key
(``api/reads.py`` answers them through the read side, ``api/fast_reads.py`` straight from the
cache when the answer is there). Paths use the one id pattern of ``api/params.py``; cache keys
the one function of the read side (``queries.read_side.cache_key``).
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from typing import Any, NamedTuple

import msgspec

from adventure_quest.api import schemas
from adventure_quest.api.params import UUID_PATTERN
from adventure_quest.app.game import Game, Outcome
from adventure_quest.queries.read_side import cache_key

Call = Callable[[Game, str, Any], Awaitable[Outcome]]


class CommandLane(NamedTuple):
    """``POST /players/{id}/{verb}`` with a ``body``; ``call`` runs it for the character."""

    verb: str
    body: type[msgspec.Struct]
    call: Call


COMMANDS: dict[str, CommandLane] = {
    lane.verb: lane
    for lane in (
        CommandLane("move", schemas.Move, lambda g, p, b: g.move(p, b.direction)),
        CommandLane("take", schemas.Take, lambda g, p, b: g.take(p, b.item)),
        CommandLane("drop", schemas.Drop, lambda g, p, b: g.drop(p, b.item)),
        CommandLane("use", schemas.Use, lambda g, p, b: g.use(p, b.item)),
        CommandLane("attack", schemas.Attack, lambda g, p, b: g.attack(p, b.target)),
        CommandLane("say", schemas.Say, lambda g, p, b: g.say(p, b.text)),
    )
}
#: Every command path of ``COMMANDS``: (character id, verb).
COMMAND_PATH = re.compile(rf"^/players/({UUID_PATTERN})/({'|'.join(COMMANDS)})$")


class QueryLane(NamedTuple):
    """A GET of ``path`` (at most one argument, its group) answered by the query ``name``."""

    name: str
    path: re.Pattern[str]

    def key(self, argument: str = "") -> str:
        """The cache key of the answer (the same the route caches it under)."""
        return cache_key(self.name, argument)


QUERIES: dict[str, QueryLane] = {
    lane.name: lane
    for lane in (
        QueryLane("player", re.compile(rf"^/players/({UUID_PATTERN})$")),
        QueryLane("achievements", re.compile(rf"^/players/({UUID_PATTERN})/achievements$")),
        QueryLane("room", re.compile(r"^/rooms/([^/]+)$")),
        QueryLane("world", re.compile(r"^/world$")),
    )
}
