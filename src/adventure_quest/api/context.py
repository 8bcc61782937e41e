"""What the API's handlers work with, wired once per process."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any

import msgspec
from prometheus_client import CollectorRegistry

from adventure_quest import tracing
from adventure_quest.api import schemas
from adventure_quest.api.limits import RateLimits
from adventure_quest.api.metrics import ApiMetrics
from adventure_quest.app.game import Game, Outcome
from adventure_quest.app.history import History
from adventure_quest.app.text import narrate
from adventure_quest.app.tracking import track_appends
from adventure_quest.config import Settings
from adventure_quest.domain.errors import DomainError
from adventure_quest.domain.player import PlayerState
from adventure_quest.projections.dead_letter_admin import DeadLetterAdmin
from adventure_quest.projections.runner import ProjectionRunner
from adventure_quest.queries.consistency import encode, token_for
from adventure_quest.queries.feed import RoomFeed
from adventure_quest.queries.read_side import ReadSide
from adventure_quest.store.ports import GlobalLog


class ApiContext:
    """What the API's handlers work with: the game (write side), the read side, the room feed,
    the projections' administration (dead letters, rebuilds), lag status, readiness checks,
    metrics, the commands' rate limits, settings.

    Built by the composition root (bootstrap/serve.py) from the parts the API role opens, with
    the process's metrics registry (api/metrics.py ``process_registry``).
    """

    def __init__(
        self,
        settings: Settings,
        *,
        game: Game,
        history: History,
        read: ReadSide,
        feed: RoomFeed,
        logs: Sequence[GlobalLog],
        projections: ProjectionRunner,
        dead_letters: DeadLetterAdmin,
        status: Callable[[], Awaitable[dict[str, Any]]],
        readiness: Mapping[str, Callable[[], Awaitable[object]]],
        registry: CollectorRegistry,
        limits: RateLimits,
    ) -> None:
        self.settings = settings
        self.game = game
        self.history = history
        self.world = game.world
        self.read = read
        self.watch = read.watch
        self.feed = feed
        self.logs = list(logs)
        self.shards = len(self.logs)
        #: The read models, for rebuilds (no tables created), and their dead letters.
        self.projections = projections
        self.dead_letters = dead_letters
        self.status = status
        #: What /readyz checks, by name: each backing service this process's role uses.
        self.readiness = dict(readiness)
        self.metrics = ApiMetrics(registry, read, feed)
        self.limits = limits
        self.started = time.time()

    async def command(
        self, name: str, act: Callable[[], Awaitable[Outcome]], *, by: str
    ) -> tuple[Outcome, str]:
        """Run a command within its rate limit, timing it; the outcome and its consistency token.

        ``by``: whose bucket it spends (api/limits.py): the character's id, or the client's
        address for ``create``. Every lane comes through here, so the limit holds on all.
        """
        began = time.perf_counter()
        code = "ok"
        try:
            await self.limits.check(name, by)
            with track_appends() as landed:
                call = act()
                outcome = await (call if tracing.TRACER is None else tracing.command(name, call))
        except DomainError as error:
            code = error.code
            raise
        except Exception as error:
            code = getattr(error, "code", "error")
            raise
        finally:
            self.metrics.commands.observe(name, time.perf_counter() - began)
            self.metrics.outcomes.add(code)
        self.metrics.appended.add("events", len(outcome.events))
        marks = token_for(landed, self.settings.partitions)
        return outcome, encode(marks)

    def result(self, outcome: Outcome, token: str) -> schemas.CommandResult:
        return schemas.CommandResult(
            player_view(self, outcome.player),
            [schemas.EventView(type(e).__name__, public_fields(e)) for e in outcome.events],
            [text for e in outcome.events if (text := narrate(self.world, e))],
            token,
        )


def player_view(context: ApiContext, state: PlayerState) -> schemas.Player:
    items = context.world.items
    return schemas.Player(
        state.player_id,
        state.name,
        state.room,
        state.level,
        state.xp,
        state.health,
        state.max_health,
        state.alive,
        [schemas.Item(i.item_id, i.item_key, items[i.item_key].name) for i in state.inventory],
        state.kills,
        state.deaths,
        list(state.achievements),
    )


def public_fields(event: object) -> dict[str, Any]:
    """An event's fields as JSON data, without the token hash."""
    fields: dict[str, Any] = msgspec.to_builtins(event)
    fields.pop("token_hash", None)
    return fields
