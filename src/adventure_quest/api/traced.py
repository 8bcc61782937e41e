"""The server span of every POST request (the commands, and the admin actions) when tracing is
on: the API's outermost layer then (api/server.py), and absent when it is off.

A request that runs a command is the root of that command's trace (``tracing.request``); the
span is named after the route that answered (``POST /players/{player_id}/move``), which is the
Litestar route's template, or the fast command lane's route for a command it ran itself.
"""

from __future__ import annotations

from typing import Any

from adventure_quest import tracing
from adventure_quest.api.lanes import COMMAND_PATH


class TracedRequests:
    """Wraps the ASGI application; see the module docstring."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http" or scope["method"] != "POST":
            await self.app(scope, receive, send)
            return
        status = 0

        async def sending(message: dict[str, Any]) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        with tracing.request(scope["method"], scope["path"]) as request:
            await self.app(scope, receive, sending)
            request.answered(status, route_of(scope))


def route_of(scope: dict[str, Any]) -> str:
    """The template of the route that answered; "" when none did (a 404)."""
    template: str = scope.get("path_template", "")
    if template:
        return template
    found = COMMAND_PATH.match(scope["path"])
    return f"/players/{{player_id}}/{found[2]}" if found else ""
