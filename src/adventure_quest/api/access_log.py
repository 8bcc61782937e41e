"""The access log: one line a request, whichever lane answered it.

It wraps the whole ASGI application (api/server.py), outside the fast lanes, because those
answer most requests without Litestar: a log kept by the framework would miss them. Each line
goes to the logger ``adventure_quest.access`` at INFO with the method, the path, the status,
the duration in milliseconds, the client's address and the request id (the ``X-Request-ID``
header a balancer or the client sent, if any). While a request is handled its id is also in
``request_id`` (a context variable), so every other line logged for it carries the id too
(bootstrap/logs.py writes it).

A disabled logger (``--no-access-log``, or a level above INFO) costs one level check a request:
the request goes straight to the application, nothing is timed or formatted.
"""

from __future__ import annotations

import logging
import time
from contextvars import ContextVar
from typing import Any

log = logging.getLogger("adventure_quest.access")

#: The id of the request being handled, when it came with one.
request_id: ContextVar[str | None] = ContextVar("aq_request_id", default=None)
#: Longer ids are cut: the header is the client's to fill.
MAX_REQUEST_ID = 128
#: The fields of an access line's record (JSON lines write them as fields of their own).
FIELDS = ("method", "path", "status", "duration_ms", "client")
_REQUEST_ID = b"x-request-id"


class AccessLog:
    """Wraps the ASGI application; see the module docstring."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http" or not log.isEnabledFor(logging.INFO):
            await self.app(scope, receive, send)
            return
        began = time.perf_counter()
        status = 0

        async def sending(message: dict[str, Any]) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        given = next((v for k, v in scope["headers"] if k == _REQUEST_ID), None)
        rid = given[:MAX_REQUEST_ID].decode("latin-1") if given else None
        token = request_id.set(rid)
        try:
            await self.app(scope, receive, sending)
        except Exception:
            status = status or 500  # what the server answers for an error that escaped
            raise
        finally:
            elapsed_ms = (time.perf_counter() - began) * 1000
            path, client = _path(scope), scope.get("client")
            host = client[0] if client else None
            # makeRecord and handle, not log.info: that would also walk the stack for the
            # caller's file and line, which an access line does without (a quarter of its cost).
            record = log.makeRecord(
                log.name,
                logging.INFO,
                __file__,
                0,
                "%s %s %s %.2f ms %s",
                (scope["method"], path, status or "-", elapsed_ms, host or "-"),
                None,
                extra={
                    "method": scope["method"],
                    "path": path,
                    "status": status or None,
                    "duration_ms": round(elapsed_ms, 3),
                    "client": host,
                },
            )
            log.handle(record)
            request_id.reset(token)


def _path(scope: dict[str, Any]) -> str:
    """The path as the client sent it, without the query string.

    ``raw_path``, not ``path``: the decoded path can hold a line break (``%0A``) that would
    forge a log line.
    """
    raw: bytes | None = scope.get("raw_path")
    if raw is None:
        return str(scope["path"]).encode("unicode_escape").decode("ascii")
    return raw.partition(b"?")[0].decode("latin-1")
