"""Command endpoints: POST, one per game command, each acting for one character."""

from __future__ import annotations

from litestar import Response, post
from litestar.handlers import HTTPRouteHandler
from litestar.params import JSONBody

from adventure_quest.api import auth, schemas
from adventure_quest.api.context import ApiContext
from adventure_quest.api.errors import responses
from adventure_quest.api.lanes import COMMANDS
from adventure_quest.api.params import PlayerId
from adventure_quest.api.security import PLAYER
from adventure_quest.api.types import AnyRequest


def routes(context: ApiContext) -> list[HTTPRouteHandler]:
    game = context.game

    async def act(
        request: AnyRequest, player_id: str, name: str, body: object
    ) -> Response[schemas.CommandResult]:
        await auth.require_player(game, auth.bearer(request), player_id)
        command = COMMANDS[name].call
        outcome, token = await context.command(
            name, lambda: command(game, player_id, body), by=player_id
        )
        return Response(context.result(outcome, token), headers={"AQ-Consistency": token})

    acting = responses(401, 403, 404, 409, 429)

    @post(
        "/players",
        status_code=201,
        responses=responses(409, 429),
        tags=["commands"],
        operation_id="createPlayer",
        summary="Create a character",
        description="Answers with the character's secret token: keep it, it is shown once.",
    )
    async def create(
        request: AnyRequest, data: JSONBody[schemas.CreateCharacter]
    ) -> Response[schemas.Created]:
        token = auth.new_token()
        # The address the connection comes from: no proxy header is trusted (api/server.py).
        address = request.client.host if request.client else "unknown"
        outcome, consistency = await context.command(
            "create", lambda: game.create_character(data.name, auth.hash_token(token)), by=address
        )
        done = context.result(outcome, consistency)
        body = schemas.Created(done.player, done.events, done.messages, consistency, token)
        return Response(body, status_code=201, headers={"AQ-Consistency": consistency})

    @post(
        "/players/{player_id:str}/move",
        responses=acting,
        tags=["commands"],
        status_code=200,
        operation_id="movePlayer",
        summary="Walk through an exit",
        security=PLAYER,
    )
    async def move(
        request: AnyRequest, player_id: PlayerId, data: JSONBody[schemas.Move]
    ) -> Response[schemas.CommandResult]:
        """Walk through an exit (north, south, east, west, up, down, or n, s, e, w, u, d)."""
        return await act(request, player_id, "move", data)

    @post(
        "/players/{player_id:str}/take",
        responses=acting,
        tags=["commands"],
        status_code=200,
        operation_id="takeItem",
        summary="Pick up an item",
        security=PLAYER,
    )
    async def take(
        request: AnyRequest, player_id: PlayerId, data: JSONBody[schemas.Take]
    ) -> Response[schemas.CommandResult]:
        """Pick up an item lying in the room."""
        return await act(request, player_id, "take", data)

    @post(
        "/players/{player_id:str}/drop",
        responses=acting,
        tags=["commands"],
        status_code=200,
        operation_id="dropItem",
        summary="Put down an item",
        security=PLAYER,
    )
    async def drop(
        request: AnyRequest, player_id: PlayerId, data: JSONBody[schemas.Drop]
    ) -> Response[schemas.CommandResult]:
        """Put down an item you carry."""
        return await act(request, player_id, "drop", data)

    @post(
        "/players/{player_id:str}/use",
        responses=acting,
        tags=["commands"],
        status_code=200,
        operation_id="useItem",
        summary="Use an item",
        security=PLAYER,
    )
    async def use(
        request: AnyRequest, player_id: PlayerId, data: JSONBody[schemas.Use]
    ) -> Response[schemas.CommandResult]:
        """Use (eat, drink) an item you carry."""
        return await act(request, player_id, "use", data)

    @post(
        "/players/{player_id:str}/attack",
        responses=acting,
        tags=["commands"],
        status_code=200,
        operation_id="attackMonster",
        summary="Strike a monster",
        security=PLAYER,
    )
    async def attack(
        request: AnyRequest, player_id: PlayerId, data: JSONBody[schemas.Attack]
    ) -> Response[schemas.CommandResult]:
        """Strike a monster in the room."""
        return await act(request, player_id, "attack", data)

    @post(
        "/players/{player_id:str}/say",
        responses=acting,
        tags=["commands"],
        status_code=200,
        operation_id="sayToRoom",
        summary="Speak to the room",
        security=PLAYER,
    )
    async def say(
        request: AnyRequest, player_id: PlayerId, data: JSONBody[schemas.Say]
    ) -> Response[schemas.CommandResult]:
        """Say something to everyone in the room."""
        return await act(request, player_id, "say", data)

    @post(
        "/players/{player_id:str}/respawn",
        responses=acting,
        tags=["commands"],
        status_code=200,
        operation_id="respawnPlayer",
        summary="Come back to life",
        security=PLAYER,
    )
    async def respawn(request: AnyRequest, player_id: PlayerId) -> Response[schemas.CommandResult]:
        """Come back to life in the village (only when dead)."""
        await auth.require_player(game, auth.bearer(request), player_id)
        outcome, token = await context.command(
            "respawn", lambda: game.respawn(player_id), by=player_id
        )
        return Response(context.result(outcome, token), headers={"AQ-Consistency": token})

    return [create, move, take, drop, use, attack, say, respawn]
