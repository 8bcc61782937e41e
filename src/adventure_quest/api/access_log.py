"""The access log: one line a request, whichever lane answered it.

It wraps the whole ASGI application (api/server.py), outside the fast lanes, because those
answer most requests without Litestar: a log kept by the framework would miss them. Each line
goes to the logger ``adventure_quest.access`` at INFO with the method, the path, the status,
the duration in milliseconds, the client's address and the request id (the ``X-Request-ID``
header a balancer or the client sent, if any). While a request is handled its id is also in
``request_id`` (a context variable), so every other line logged for it carries the id too
(bootstrap/logs.py writes it).

The lines are made by a writer that ``bootstrap/logs.py`` installs (``writer``) in the format
of every other line, and written in batches (at most a fifth of a second late, and always before
any other log line, so the log stays in order). With the access log off (``--no-access-log``,
or a level above INFO) there is no writer: one check a request, nothing timed or formatted.
"""

from __future__ import annotations

import logging
import re
import time
from contextvars import ContextVar
from typing import Any, Protocol

log = logging.getLogger("adventure_quest.access")

#: The id of the request being handled, when it came with one.
request_id: ContextVar[str | None] = ContextVar("aq_request_id", default=None)
#: A client's request id is kept when it is this tame (it goes into logs and headers); another
#: is left out (an error's answer then names one the server made: api/shield.py).
TAME_ID = re.compile(r"[A-Za-z0-9._:-]{1,64}")
#: The fields of an access line's record (JSON lines write them as fields of their own).
FIELDS = ("method", "path", "status", "duration_ms", "client")
_REQUEST_ID = b"x-request-id"


#: What a line tells: method, path, status (0: none sent), milliseconds, client, request id.
Line = tuple[str, str, int, float, str | None, str | None]


class Writer(Protocol):
    """Where access lines go: ``bootstrap/logs.py`` installs one when the access log is on."""

    def write(self, line: Line) -> None: ...


#: The writer of access lines, None while the access log is off (the requests pass untouched).
#: Not a logging call per request: making a LogRecord, filtering, locking and formatting it
#: cost about 7 us a request, a fifth of a cached read's whole cost (docs/benchmarks.md).
writer: Writer | None = None


class AccessLog:
    """Wraps the ASGI application; see the module docstring."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        lines = writer
        if lines is None or scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        began = time.perf_counter()
        status = 0

        async def sending(message: dict[str, Any]) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        rid = None
        for key, value in scope["headers"]:
            if key == _REQUEST_ID:
                given = value.decode("latin-1")
                rid = given if TAME_ID.fullmatch(given) else None
                break
        token = request_id.set(rid)
        try:
            await self.app(scope, receive, sending)
        except Exception:
            status = status or 500  # what the server answers for an error that escaped
            raise
        finally:
            client = scope.get("client")
            lines.write(
                (
                    scope["method"],
                    _path(scope),
                    status,
                    (time.perf_counter() - began) * 1000,
                    client[0] if client else None,
                    request_id.get(),
                )
            )
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
