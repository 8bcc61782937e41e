"""The outermost layer of the API: an error nothing else answered is still a JSON error.

Every route maps its errors through ``errors.handle`` and the fast lanes through
``errors.outcome_of``; whatever escapes them (a bug, on any lane) reaches this wrapper, which
answers in the one error shape: a backing-service failure ``503 unavailable``, anything else
``500 internal`` with a request id that is also in the log line of the error (and in the
``x-request-id`` header). The id is the client's own ``x-request-id`` when it sent a sane one,
else a new one. Nothing is added to a request that succeeds: the id is made only on failure.
"""

from __future__ import annotations

import logging
from typing import Any

import msgspec

from adventure_quest.api import schemas
from adventure_quest.api.errors import internal, outcome_of, request_id

log = logging.getLogger(__name__)
_encode = msgspec.json.Encoder().encode


class Shield:
    """Wraps the whole ASGI application; see the module docstring."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        try:
            await self.app(scope, receive, send)
        except Exception as error:
            if scope["type"] != "http":
                raise
            await self._answer(scope, send, error)

    async def _answer(self, scope: dict[str, Any], send: Any, error: Exception) -> None:
        rid = request_id(scope["headers"])
        known = outcome_of(error)
        if known is None:
            status, body = 500, _encode(internal(scope["method"], scope["path"], rid, error))
        else:
            status, code, message = known
            body = _encode(schemas.ErrorBody(schemas.ErrorDetail(code, message)))
        headers = [
            (b"content-type", b"application/json"),
            (b"content-length", str(len(body)).encode()),
            (b"x-request-id", rid.encode()),
        ]
        try:
            await send({"type": "http.response.start", "status": status, "headers": headers})
        except Exception:
            # The answer had begun before the error: it cannot be replaced, only cut short
            # (the server closes the connection); the error is in the log either way.
            if known is None:
                return
            log.error("%s %s failed after answering", scope["method"], scope["path"])
            return
        await send({"type": "http.response.body", "body": body})
