"""Query endpoints: GET over the read models (cached), a character's history and past state."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from typing import Annotated

import msgspec
from litestar import Response, get
from litestar.handlers import HTTPRouteHandler
from litestar.openapi import ResponseSpec
from litestar.params import Parameter

from adventure_quest.api import schemas
from adventure_quest.api.context import ApiContext, player_view, public_fields
from adventure_quest.api.errors import ApiError, responses
from adventure_quest.api.lanes import QUERIES
from adventure_quest.api.params import (
    ConsistencyHeader,
    ConsistencyQuery,
    PlayerId,
    PlayersAfter,
    RoomKey,
    WaitMs,
)
from adventure_quest.projections.ports import ReadDatabase
from adventure_quest.queries import views
from adventure_quest.queries.read_side import ROOM_PAGE, cache_key

JSON = "application/json"
HISTORY_PAGE = 100
#: Larger than any stream will grow, and exact as a JSON number.
MAX_VERSION = 10**12


def _documented(model: type[msgspec.Struct], *statuses: int) -> dict[int, ResponseSpec]:
    return {200: ResponseSpec(model, description="The answer."), **responses(412, *statuses)}


def routes(context: ApiContext) -> list[HTTPRouteHandler]:
    read_side = context.read

    async def answer(
        name: str,
        argument: str,
        read: Callable[[ReadDatabase], Awaitable[bytes]],
        token: str | None,
        wait_ms: int,
        *,
        cached: bool = True,
    ) -> Response[bytes]:
        began = time.perf_counter()
        try:
            wait_s = min(wait_ms, context.settings.max_wait_ms) / 1000
            key = QUERIES[name].key(argument)
            body = await read_side.answer(key, read, token, wait_s, cached=cached)
        finally:
            context.metrics.queries.observe(name, time.perf_counter() - began)
        return Response(body, media_type=JSON)

    @get(
        "/players/{player_id:str}",
        responses=_documented(views.PlayerDetails, 404),
        tags=["queries"],
        operation_id="getPlayer",
        summary="A character's details",
    )
    async def player(
        player_id: PlayerId,
        consistency: ConsistencyQuery = "",
        aq_consistency: ConsistencyHeader = "",
        wait_ms: WaitMs = 2000,
    ) -> Response[bytes]:
        """A character's details (read model ``player_details``)."""
        return await answer(
            "player",
            player_id,
            lambda db: read_side.player(db, player_id),
            consistency or aq_consistency,
            wait_ms,
        )

    @get(
        "/rooms/{room:str}",
        responses=_documented(views.RoomView, 404),
        tags=["queries"],
        operation_id="getRoom",
        summary="A room and everyone in it",
    )
    async def room(
        room: RoomKey,
        *,
        limit: Annotated[
            int, Parameter(ge=1, le=ROOM_PAGE, description="How many characters to list.")
        ] = ROOM_PAGE,
        after: PlayersAfter = "",
        consistency: ConsistencyQuery = "",
        aq_consistency: ConsistencyHeader = "",
        wait_ms: WaitMs = 2000,
    ) -> Response[bytes]:
        """A room: description, exits, items, monsters, how many characters are there, and a
        page of them by id (``next``: the ``after`` of the next page; the first is cached)."""
        if room not in context.world.rooms:
            raise ApiError(404, "room_not_found", f"there is no room {room!r}")
        token = consistency or aq_consistency
        if after:
            return await answer(
                "room",
                room,
                lambda db: read_side.room(db, room, after, limit),
                token,
                wait_ms,
                cached=False,
            )
        response = await answer("room", room, lambda db: read_side.room(db, room), token, wait_ms)
        if limit < ROOM_PAGE:
            view = msgspec.json.decode(response.content, type=views.RoomView)
            if len(view.players) > limit:
                ids = list(view.players)[:limit]
                page = {i: view.players[i] for i in ids}
                view = msgspec.structs.replace(view, players=page, next=ids[-1])
            response = Response(msgspec.json.encode(view), media_type=JSON)
        return response

    @get(
        "/leaderboard",
        responses=_documented(views.Leaderboard),
        tags=["queries"],
        operation_id="getLeaderboard",
        summary="The top characters",
    )
    async def leaderboard(
        limit: Annotated[int, Parameter(ge=1, le=100)] = 10,
        consistency: ConsistencyQuery = "",
        aq_consistency: ConsistencyHeader = "",
        wait_ms: WaitMs = 2000,
    ) -> Response[bytes]:
        """The top characters by level, then experience."""
        body = await read_side.answer(
            cache_key("leaderboard"),
            read_side.leaderboard,
            consistency or aq_consistency,
            min(wait_ms, context.settings.max_wait_ms) / 1000,
        )
        if limit < 100:
            board = msgspec.json.decode(body, type=views.Leaderboard)
            body = msgspec.json.encode(views.Leaderboard(board.players[:limit]))
        return Response(body, media_type=JSON)

    @get(
        "/players/{player_id:str}/achievements",
        responses=_documented(views.Achievements, 404),
        tags=["queries"],
        operation_id="getAchievements",
        summary="A character's achievements",
    )
    async def achievements(
        player_id: PlayerId,
        consistency: ConsistencyQuery = "",
        aq_consistency: ConsistencyHeader = "",
        wait_ms: WaitMs = 2000,
    ) -> Response[bytes]:
        """The achievements a character has unlocked, in unlock order."""
        return await answer(
            "achievements",
            player_id,
            lambda db: read_side.achievements(db, player_id),
            consistency or aq_consistency,
            wait_ms,
        )

    @get(
        "/world",
        responses=_documented(views.WorldStats),
        tags=["queries"],
        operation_id="getWorldStats",
        summary="Characters per room, events per minute",
    )
    async def world(
        consistency: ConsistencyQuery = "",
        aq_consistency: ConsistencyHeader = "",
        wait_ms: WaitMs = 2000,
    ) -> Response[bytes]:
        """Characters per room and events per minute (the last ten minutes)."""
        return await answer(
            "world", "", read_side.world_stats, consistency or aq_consistency, wait_ms
        )

    @get(
        "/players/{player_id:str}/events",
        responses=responses(404),
        tags=["history"],
        operation_id="listPlayerEvents",
        summary="A character's events",
    )
    async def history(
        player_id: PlayerId,
        after: Annotated[
            int, Parameter(ge=0, le=MAX_VERSION, description="Versions after this.")
        ] = 0,
        limit: Annotated[int, Parameter(ge=1, le=HISTORY_PAGE)] = 50,
    ) -> schemas.History:
        """A character's events, oldest first, a page at a time."""
        history = context.history
        stream = context.game.players.stream_id(player_id)
        events = await history.events(stream, after, limit)
        if not events and not await history.version(stream):
            raise ApiError(404, "player_not_found", f"no character {player_id!r}")
        page = [
            schemas.HistoryEvent(
                e.version,
                e.position,
                e.shard,
                e.event_type,
                e.schema_version,
                e.metadata.recorded_at,
                public_fields(history.decode(e)),
            )
            for e in events
        ]
        more = len(events) == limit and events[-1].version
        return schemas.History(player_id, page, more or None)

    @get(
        "/players/{player_id:str}/state",
        responses=responses(404),
        tags=["history"],
        operation_id="getPlayerState",
        summary="A character as it was (time travel)",
    )
    async def past_state(
        player_id: PlayerId,
        version: Annotated[int | None, Parameter(ge=0, le=MAX_VERSION)] = None,
        at_ms: Annotated[
            int | None,
            Parameter(ge=0, le=MAX_VERSION * 1000, description="A moment: Unix time in ms."),
        ] = None,
    ) -> schemas.PastState:
        """A character as it was at a version, or at a moment (time travel); now by default."""
        players = context.game.players
        stream = players.stream_id(player_id)
        if not await context.history.version(stream):
            raise ApiError(404, "player_not_found", f"no character {player_id!r}")
        moment = None if at_ms is None else at_ms / 1000
        loaded = await context.history.as_of(players, stream, version=version, moment=moment)
        return schemas.PastState(player_id, loaded.version, player_view(context, loaded.state))

    return [player, room, leaderboard, achievements, world, history, past_state]
