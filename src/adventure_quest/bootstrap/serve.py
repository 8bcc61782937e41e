"""``aq serve``: the parts a role runs, wired and run together until stopped.

Role ``all`` (the default, embedded) runs the API, the relays, the projection workers, the
process managers and the world clock in one process. ``api``, ``relay`` and ``worker`` run one
part each against shared PostgreSQL, NATS and Redis, so each part scales as its own process;
each opens only what it runs (bootstrap/roles.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import os
import secrets
import signal
import sys
from collections.abc import Awaitable, Callable
from typing import Any

import msgspec

from adventure_quest.api.context import ApiContext
from adventure_quest.api.limits import RateLimits
from adventure_quest.api.metrics import process_registry
from adventure_quest.api.server import asgi_app, serve_http
from adventure_quest.bootstrap import logs
from adventure_quest.bootstrap.metrics_server import serving_metrics
from adventure_quest.bootstrap.parts import Parts
from adventure_quest.bootstrap.roles import Job, processing_jobs, run_together
from adventure_quest.bootstrap.runtime import quieter_garbage_collection
from adventure_quest.bootstrap.tracing import traced
from adventure_quest.config import Settings
from adventure_quest.processing.groups import GROUP
from adventure_quest.processing.status import read_status, relayed_logs
from adventure_quest.queries.cache import QueryCache
from adventure_quest.queries.consistency import Watch, progress_of
from adventure_quest.queries.feed import RoomFeed
from adventure_quest.queries.invalidation import invalidator
from adventure_quest.queries.read_side import ReadSide


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


def readiness(parts: Parts, *, queue: bool) -> dict[str, Callable[[], Awaitable[object]]]:
    """What /readyz checks: every backing service the role uses, by name.

    ``queue``: the process also relays or projects (role ``all``), so the queue is one of them;
    an API alone uses it only for lag status, which is not what it serves.
    """
    logs, db, cache = parts.event_store().logs(), parts.read_database(), parts.cache()

    async def event_store() -> None:
        await asyncio.gather(*(log.head() for log in logs))

    checks: dict[str, Callable[[], Awaitable[object]]] = {
        "event_store": event_store,
        "read_database": lambda: progress_of(db),
    }
    for number, replica in enumerate(parts.replicas()):
        checks[f"read_replica_{number}"] = functools.partial(progress_of, replica)
    checks["cache"] = lambda: cache.generation(READY_KEY)
    if queue:
        checks["queue"] = parts.queue().ready
    return checks


#: The cache key /readyz reads (nothing is ever stored under it).
READY_KEY = "aq:readyz"


async def api_context(parts: Parts, *, queue: bool = False) -> ApiContext:
    """The API's handlers' world: the write side, the read side, the feed, admin and status.

    Lag status needs the checkpoint stores and the queue: they are opened the first time it is
    asked for (``/admin/status``, ``/metrics``), not when the API starts (unless the process
    relays or projects too: ``queue``, and /readyz checks it).
    """
    write = parts.write_side()
    read = ReadSide(
        parts.read_database(), parts.replicas(), QueryCache(parts.cache()), Watch(), parts.world
    )
    runner = await parts.runner(create_tables=False)
    letters = await parts.dead_letters()

    async def status() -> dict[str, Any]:
        relayed = relayed_logs(parts.event_store().logs(), parts.checkpoints())
        return await read_status(relayed, parts.queue(), letters.count, group=GROUP, interval_s=0)

    return ApiContext(
        parts.settings,
        game=write.game,
        history=write.history,
        read=read,
        feed=RoomFeed(write.game, parts.event_store().logs()),
        logs=parts.event_store().logs(),
        projections=runner,
        dead_letters=letters,
        status=status,
        readiness=readiness(parts, queue=queue),
        registry=process_registry(),
        limits=RateLimits(parts.settings.rate_limits, parts.rate_buckets()),
    )


async def serve(
    settings: Settings,
    role: str = "all",
    partitions: str = "all",
    *,
    started: asyncio.Event | None = None,
    stop: asyncio.Event | None = None,
    parts: Parts | None = None,
    in_process: Callable[[Any], None] | None = None,
) -> None:
    """Run the parts of ``role`` until ``stop`` is set (or SIGINT/SIGTERM).

    ``parts``: where to open them (a test passes its own to see what was opened).
    ``in_process``: given, the API binds no socket: this is called with its ASGI application
    (tests drive it through an in-process transport).
    """
    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
            loop.add_signal_handler(signum, stop.set)
    async with contextlib.AsyncExitStack() as stack:
        stack.enter_context(traced(settings, role))  # before the parts: see bootstrap/tracing
        if parts is None:
            parts = await stack.enter_async_context(Parts(settings))
        jobs: list[Job] = []
        consumers: list[Job] = []
        described = []
        if role in ("all", "relay", "worker"):
            processing = await processing_jobs(
                parts,
                partitions,
                relays=role in ("all", "relay"),
                workers=role in ("all", "worker"),
                stop=stop,
            )
            jobs += processing.first
            consumers += processing.last
            described.append(processing.described)
            if stop.is_set():  # stopped while waiting for the read database
                return
        context = None
        if role in ("all", "api"):
            context = await api_context(parts, queue=role == "all")
            http_context = context
            if in_process is None:
                jobs.append(lambda stop: serve_http(http_context, stop, started))
                described.append(f"API on http://{settings.host}:{settings.port}")
            else:
                in_process(asgi_app(context))
                described.append("API in process")
                if started is not None:
                    started.set()
            jobs.append(context.feed.run)
        elif started is not None:
            started.set()
        runner = None
        if role in ("all", "worker"):
            runner = await parts.runner(create_tables=True)
            watch = context.watch if context is not None else None
            runner.committed.append(invalidator(parts.cache(), watch))
        quieter_garbage_collection()
        shown = ", ".join(described)
        print(f"aq serve ({role}): {shown}; Ctrl-C stops", file=sys.stderr, flush=True)
        # An API serves /metrics itself; a relay or a worker alone on a port of its own.
        port = settings.metrics_port if role in ("relay", "worker") else 0
        relays = parts.relays() if role == "relay" else []
        try:
            with serving_metrics(settings.host, port, relays, runner):
                await run_together(jobs, stop, last=consumers)
        finally:
            logs.flush_access()  # the last requests' lines, before the process moves on
