"""A fast lane for the commonest request: a plain GET whose answer is in the cache.

Litestar's routing, parameter parsing and response building cost more than the cached answer
itself. This ASGI wrapper answers ``GET /rooms/{room}``, ``/players/{id}``,
``/players/{id}/achievements`` and ``/world`` straight from the cache when the request has no
query string and no consistency header, and the answer is cached; everything else (a miss, a
token, any other route) goes to the application unchanged. The bytes are the ones the full path
cached, so both lanes answer the same (tests/api/test_fast_reads.py). A cache that cannot be
reached is a miss here: the application answers, in the one error shape (503 ``unavailable``;
tests/api/test_service_outages.py).
"""

from __future__ import annotations

import time
from typing import Any

from adventure_quest.api.context import ApiContext
from adventure_quest.api.lanes import QUERIES
from adventure_quest.store.errors import StoreUnavailableError

Scope = dict[str, Any]
_HEADERS = [(b"content-type", b"application/json")]


class FastReads:
    """Wraps the ASGI application; see the module docstring."""

    def __init__(self, app: Any, context: ApiContext) -> None:
        self.app = app
        self.context = context
        self.rooms = set(context.world.rooms)

    def _key(self, path: str) -> tuple[str, str] | None:
        """(query name, cache key) of a path the fast lane may answer (api/lanes.py)."""
        for lane in QUERIES.values():
            if found := lane.path.match(path):
                argument = found[1] if lane.path.groups else ""
                if lane.name == "room" and argument not in self.rooms:
                    return None  # the route answers 404 room_not_found
                return lane.name, lane.key(argument)
        return None

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] == "http" and scope["method"] == "GET" and not scope["query_string"]:
            named = self._key(scope["path"])
            if named is not None and not any(k == b"aq-consistency" for k, _ in scope["headers"]):
                began = time.perf_counter()
                read = self.context.read
                try:
                    entry = await read.cache.backend.get(named[1])
                except StoreUnavailableError:
                    entry = None  # the application answers, in the error shape
                if entry is not None:
                    read.cache.stats.hits += 1
                    body = entry.body
                    await send(
                        {
                            "type": "http.response.start",
                            "status": 200,
                            "headers": [
                                *_HEADERS,
                                (b"content-length", str(len(body)).encode()),
                            ],
                        }
                    )
                    await send({"type": "http.response.body", "body": body})
                    self.context.metrics.queries.observe(named[0], time.perf_counter() - began)
                    return
        await self.app(scope, receive, send)
