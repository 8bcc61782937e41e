"""``GET /players/{id}/feed``: what happens in the character's room, as Server-Sent Events."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import msgspec
from litestar import get
from litestar.handlers import HTTPRouteHandler
from litestar.response import ServerSentEvent, ServerSentEventMessage

from adventure_quest.api import auth
from adventure_quest.api.context import ApiContext
from adventure_quest.api.errors import responses
from adventure_quest.api.params import PlayerId
from adventure_quest.api.security import PLAYER
from adventure_quest.api.types import AnyRequest
from adventure_quest.queries.feed import Subscription

KEEP_ALIVE_S = 15.0


def routes(context: ApiContext) -> list[HTTPRouteHandler]:
    feed = context.feed

    async def stream(subscription: Subscription) -> AsyncIterator[ServerSentEventMessage]:
        closed = asyncio.ensure_future(feed.closed.wait())
        try:
            yield ServerSentEventMessage(
                event="welcome", data=msgspec.json.encode({"room": subscription.room}).decode()
            )
            while not feed.closed.is_set():
                waiting = asyncio.ensure_future(subscription.notices.get())
                done, _ = await asyncio.wait(
                    [waiting, closed], timeout=KEEP_ALIVE_S, return_when=asyncio.FIRST_COMPLETED
                )
                if waiting not in done:
                    waiting.cancel()
                    if not done:
                        yield ServerSentEventMessage(comment="keep-alive")
                    continue
                if subscription.missed:
                    missed, subscription.missed = subscription.missed, 0
                    yield ServerSentEventMessage(event="missed", data=str(missed))
                notice = waiting.result()
                yield ServerSentEventMessage(
                    event=notice.kind, data=msgspec.json.encode(notice).decode()
                )
        finally:
            closed.cancel()
            feed.unsubscribe(subscription)

    @get(
        "/players/{player_id:str}/feed",
        responses=responses(401, 403, 404),
        tags=["notifications"],
        media_type="text/event-stream",
        operation_id="streamRoomFeed",
        summary="What happens in the character's room, live",
        security=PLAYER,
    )
    async def room_feed(request: AnyRequest, player_id: PlayerId) -> ServerSentEvent:
        """Arrivals, departures, fights, speech and items in the character's room, live.

        A stream of Server-Sent Events (``event:`` the kind, ``data:`` JSON); it follows the
        character from room to room. Needs the character's token.
        """
        await auth.require_player(context.game, auth.bearer(request), player_id)
        subscription = await feed.subscribe(player_id)
        return ServerSentEvent(stream(subscription))

    return [room_feed]
