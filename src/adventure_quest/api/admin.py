"""Admin endpoints (status, dead letters, rebuilds): they need the admin token."""

from __future__ import annotations

import asyncio
import time
from typing import Annotated, Any

import msgspec
from litestar import get, post
from litestar.handlers import HTTPRouteHandler
from litestar.params import Parameter

from adventure_quest.api import auth
from adventure_quest.api.context import ApiContext
from adventure_quest.api.errors import ApiError, responses
from adventure_quest.api.security import ADMIN
from adventure_quest.api.types import AnyRequest
from adventure_quest.projections.rebuild import rebuild

ProjectionName = Annotated[str, Parameter(max_length=64, description="A projection's name.")]
StreamFilter = Annotated[str | None, Parameter(max_length=200, required=False)]


class Rebuild(msgspec.Struct):
    """A rebuild started through the API, and how far it got."""

    projection: str
    state: str = "running"
    replayed: int = 0
    total: int = 0
    started_at: float = 0.0
    finished_at: float | None = None
    rows: int = 0
    error: str = ""


def routes(context: ApiContext) -> list[HTTPRouteHandler]:
    runner, letters = context.projections, context.dead_letters
    rebuilds: dict[str, Rebuild] = {}
    tasks: set[asyncio.Task[None]] = set()
    admin = responses(401, 403)

    def check(request: AnyRequest) -> None:
        auth.require_admin(context.settings.admin_token, auth.bearer(request))

    def known(name: str) -> None:
        try:
            runner.projection(name)
        except ValueError as error:
            raise ApiError(404, "projection_not_found", str(error)) from None

    @get(
        "/admin/status",
        responses=admin,
        tags=["admin"],
        operation_id="getStatus",
        summary="Relay and projection lag",
        security=ADMIN,
    )
    async def status(request: AnyRequest) -> dict[str, Any]:
        """Relay and projection lag (events, seconds, state) and dead letters."""
        check(request)
        return await context.status()

    @get(
        "/admin/dead-letters",
        responses=admin,
        tags=["admin"],
        operation_id="listDeadLetters",
        summary="Parked events",
        security=ADMIN,
    )
    async def dead_letters(
        request: AnyRequest, projection: StreamFilter = None
    ) -> list[dict[str, Any]]:
        """Events parked because a projection failed on them, in order."""
        check(request)
        return await letters.dead_letters(projection)

    @post(
        "/admin/dead-letters/{projection:str}/retry",
        responses=responses(401, 403, 404),
        tags=["admin"],
        status_code=200,
        operation_id="retryDeadLetters",
        summary="Apply parked events again",
        security=ADMIN,
    )
    async def retry(
        request: AnyRequest, projection: ProjectionName, stream_id: StreamFilter = None
    ) -> dict[str, int]:
        """Apply a projection's parked events again (optionally one stream's)."""
        check(request)
        known(projection)
        applied, parked = await letters.retry(projection, stream_id)
        await context.read.cache.backend.clear()
        return {"applied": applied, "still_parked": parked}

    @post(
        "/admin/dead-letters/{projection:str}/skip",
        responses=responses(401, 403, 404),
        tags=["admin"],
        status_code=200,
        operation_id="skipDeadLetters",
        summary="Drop parked events",
        security=ADMIN,
    )
    async def skip(
        request: AnyRequest, projection: ProjectionName, stream_id: StreamFilter = None
    ) -> dict[str, int]:
        """Drop a projection's parked events; the read model goes on without them."""
        check(request)
        known(projection)
        return {"skipped": await letters.skip(projection, stream_id)}

    @post(
        "/admin/projections/{projection:str}/rebuild",
        responses=responses(401, 403, 404, 409),
        tags=["admin"],
        status_code=202,
        operation_id="rebuildProjection",
        summary="Rebuild a read model",
        security=ADMIN,
    )
    async def start_rebuild(request: AnyRequest, projection: ProjectionName) -> Rebuild:
        """Rebuild a read model from the log into a shadow table and swap it in (no downtime)."""
        check(request)
        known(projection)
        running = rebuilds.get(projection)
        if running is not None and running.state == "running":
            raise ApiError(409, "rebuild_running", f"{projection} is being rebuilt already")
        job = rebuilds[projection] = Rebuild(projection, started_at=time.time())

        def advance(done: int, total: int) -> None:
            job.replayed, job.total = done, total

        async def work() -> None:
            try:
                result = await rebuild(runner, projection, advance)
                job.rows, job.state = result.rows, "done"
                await context.read.cache.backend.clear()
            except Exception as error:
                job.state, job.error = "failed", repr(error)
            finally:
                job.finished_at = time.time()

        task = asyncio.create_task(work())
        tasks.add(task)
        task.add_done_callback(tasks.discard)
        return job

    @get(
        "/admin/rebuilds/{projection:str}",
        responses=responses(401, 403, 404),
        tags=["admin"],
        operation_id="getRebuild",
        summary="How far a rebuild got",
        security=ADMIN,
    )
    async def rebuild_progress(request: AnyRequest, projection: ProjectionName) -> Rebuild:
        """How far the last rebuild of a read model got."""
        check(request)
        known(projection)
        job = rebuilds.get(projection)
        if job is None:
            raise ApiError(404, "no_rebuild", f"no rebuild of {projection} was started here")
        return job

    return [status, dead_letters, retry, skip, start_rebuild, rebuild_progress]
