"""``aq serve``: the HTTP API under uvicorn, with the processing parts its role runs.

Role ``all`` (the default, embedded) runs the API, the relays, the projection workers, the
process managers and the world clock in one process. ``api``, ``relay`` and ``worker`` run one
part each against shared PostgreSQL, NATS and Redis, so each part scales as its own process.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import secrets
import signal
import socket
import sys
from collections.abc import Callable, Sequence, Set

import msgspec
import uvicorn

from adventure_quest.api.app import create_app
from adventure_quest.api.cache import CacheBackend, QueryCache, open_cache
from adventure_quest.api.context import ApiContext
from adventure_quest.api.fast_commands import FastCommands
from adventure_quest.api.fast_reads import FastReads
from adventure_quest.api.queries import cache_keys
from adventure_quest.app.worlds import load_world
from adventure_quest.config import Settings, SettingsError
from adventure_quest.processing import Processing
from adventure_quest.projections.model import RowKey
from adventure_quest.projections.ports import ReadDatabase
from adventure_quest.projections.urls import open_read_database
from adventure_quest.roles import Job, processing_jobs
from adventure_quest.runtime import quieter_garbage_collection
from adventure_quest.store.envelope import RecordedEvent

log = logging.getLogger(__name__)


class CannotListenError(SettingsError):
    """The HTTP server could not bind its address."""

    code = "cannot_listen"


def admin_token(settings: Settings) -> Settings:
    """The settings with an admin token: the configured one, or one kept in the data directory."""
    if settings.admin_token:
        return settings
    path = settings.data_dir / "admin-token"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(descriptor, "w") as file:
            file.write(secrets.token_urlsafe(32) + "\n")
    return msgspec.structs.replace(settings, admin_token=path.read_text().strip())


Listener = Callable[[Sequence[RecordedEvent], Set[RowKey]], None]


def invalidator(cache: CacheBackend, context: ApiContext | None) -> Listener:
    """A runner listener: drop the cached answers a commit changed, wake token waiters."""
    pending: set[asyncio.Task[None]] = set()

    def committed(events: Sequence[RecordedEvent], changed: Set[RowKey]) -> None:
        keys = cache_keys(changed)
        if keys:
            task = asyncio.ensure_future(_invalidate(cache, keys))
            pending.add(task)
            task.add_done_callback(pending.discard)
        if context is not None:
            context.watch.notify()

    return committed


async def _invalidate(cache: CacheBackend, keys: set[str]) -> None:
    try:
        await cache.invalidate(keys)
    except Exception as error:  # the TTL is the safety net; say so
        log.warning("cache invalidation failed (answers may be old until the TTL): %s", error)


async def serve(
    settings: Settings,
    role: str = "all",
    partitions: str = "all",
    *,
    started: asyncio.Event | None = None,
    stop: asyncio.Event | None = None,
) -> None:
    """Run the parts of ``role`` until ``stop`` is set (or SIGINT/SIGTERM)."""
    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
            loop.add_signal_handler(signum, stop.set)
    world = load_world(settings.world_path)
    async with contextlib.AsyncExitStack() as stack:
        processing = await stack.enter_async_context(Processing.open(settings, world))
        backend = open_cache(settings.cache_url, settings.cache_ttl_s, settings.cache_prefix)
        stack.push_async_callback(backend.close)
        replicas: list[ReadDatabase] = []
        for url in settings.read_replicas:
            replica = open_read_database(url)
            stack.push_async_callback(replica.close)
            replicas.append(replica)
        context = None
        jobs: list[Job] = []
        described = []
        if role in ("all", "relay", "worker"):
            more, text = processing_jobs(
                processing,
                partitions,
                relays=role in ("all", "relay"),
                workers=role in ("all", "worker"),
            )
            jobs += more
            described.append(text)
        if role in ("all", "api"):
            context = ApiContext(settings, processing, QueryCache(backend), replicas)
            jobs.append(lambda stop: _http(context, stop, started))
            jobs.append(context.feed.run)
            described.append(f"API on http://{settings.host}:{settings.port}")
        elif started is not None:
            started.set()
        if role in ("all", "worker"):
            processing.runner.committed.append(invalidator(backend, context))
        quieter_garbage_collection()
        shown = ", ".join(described)
        print(f"aq serve ({role}): {shown}; Ctrl-C stops", file=sys.stderr, flush=True)
        await run_together(jobs, stop)


async def run_together(jobs: Sequence[Job], stop: asyncio.Event) -> None:
    """Run every job until ``stop``; when one fails, stop the others, then raise its error."""
    tasks = [asyncio.ensure_future(job(stop)) for job in jobs]
    await asyncio.wait(tasks, return_when=asyncio.FIRST_EXCEPTION)
    stop.set()
    results = await asyncio.gather(*tasks, return_exceptions=True)
    for result in results:
        if isinstance(result, BaseException):
            raise result


async def _http(context: ApiContext, stop: asyncio.Event, started: asyncio.Event | None) -> None:
    settings = context.settings
    config = uvicorn.Config(
        FastCommands(FastReads(create_app(context), context), context),
        host=settings.host,
        port=settings.port,
        lifespan="off",
        log_level="warning",
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
