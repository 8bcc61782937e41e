"""The HTTP server: the API application under uvicorn, on a socket this process binds.

The fast lanes (api/fast_commands.py, api/fast_reads.py) wrap the Litestar application, and the
access log (api/access_log.py) wraps them all; what else a process runs beside the API is the
composition root's business (bootstrap/serve.py). uvicorn logs through the process's logging
configuration (bootstrap/logs.py), not one of its own.
"""

from __future__ import annotations

import asyncio
import socket
from typing import Any

import uvicorn

from adventure_quest import tracing
from adventure_quest.api import access_log
from adventure_quest.api.access_log import AccessLog
from adventure_quest.api.app import create_app
from adventure_quest.api.context import ApiContext
from adventure_quest.api.fast_commands import FastCommands
from adventure_quest.api.fast_reads import FastReads
from adventure_quest.api.shield import Shield
from adventure_quest.api.traced import TracedRequests
from adventure_quest.config import SettingsError


class CannotListenError(SettingsError):
    """The HTTP server could not bind its address."""

    code = "cannot_listen"


def asgi_app(context: ApiContext) -> Any:
    """The API as one ASGI application: the fast lanes in front of the Litestar application,
    the shield that answers whatever escapes them in the error shape, the access log in front of
    them (it sees every request, whichever lane answers, a shielded 500 too) and, when tracing is
    on, the server spans around it all."""
    app: Any = Shield(FastCommands(FastReads(create_app(context), context), context))
    if access_log.writer is not None:  # logging is configured before the application is made
        app = AccessLog(app)
    return app if tracing.TRACER is None else TracedRequests(app)


async def serve_http(
    context: ApiContext, stop: asyncio.Event, started: asyncio.Event | None = None
) -> None:
    """Serve the API until ``stop`` is set; ``started`` is set once the socket listens."""
    settings = context.settings
    config = uvicorn.Config(
        asgi_app(context),
        host=settings.host,
        port=settings.port,
        lifespan="off",
        # No handlers, formats or levels of uvicorn's own: its records go through the root
        # logger like every other (bootstrap/logs.py); requests are logged by api/access_log.py.
        log_config=None,
        access_log=False,
        proxy_headers=False,
        server_header=False,
        loop="none",
        http="httptools",
        backlog=4096,
        timeout_keep_alive=30,
        timeout_graceful_shutdown=5,
    )
    server = uvicorn.Server(config)
    try:
        listening = socket.create_server((settings.host, settings.port), backlog=4096)
    except OSError as error:
        stop.set()
        raise CannotListenError(
            f"cannot listen on {settings.host}:{settings.port}: {error.strerror}"
        ) from None
    # _serve, not serve: serve() takes over SIGINT/SIGTERM and re-raises them on the way out,
    # while this process stops all its parts together on its own handlers.
    task = asyncio.create_task(server._serve(sockets=[listening]))
    while not server.started and not task.done():
        await asyncio.sleep(0.01)
    if started is not None:
        started.set()
    waiting = asyncio.create_task(stop.wait())
    await asyncio.wait([task, waiting], return_when=asyncio.FIRST_COMPLETED)
    server.should_exit = True
    waiting.cancel()
    await task
    stop.set()
