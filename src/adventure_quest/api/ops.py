"""Operations endpoints: /metrics (Prometheus), /healthz, /readyz, /openapi.json and /docs."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Awaitable, Callable
from typing import Any

import msgspec
from litestar import Response, get
from litestar.handlers import HTTPRouteHandler
from litestar.openapi import ResponseSpec
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from adventure_quest.api import docs_page, schemas
from adventure_quest.api.context import ApiContext
from adventure_quest.api.types import AnyRequest
from adventure_quest.store.errors import StoreError

log = logging.getLogger(__name__)


def routes(context: ApiContext) -> list[HTTPRouteHandler]:
    @get(
        "/metrics",
        tags=["operations"],
        media_type=CONTENT_TYPE_LATEST,
        operation_id="getMetrics",
        summary="Prometheus metrics",
    )
    async def metrics() -> Response[bytes]:
        """Prometheus text: command and query latency, appends, lag, cache, dead letters."""
        try:
            status: dict[str, Any] | None = await context.status()
        except StoreError as error:  # the API's own figures are served all the same
            log.warning("/metrics: no lag status: %s", error)
            status = None
        context.metrics.lag.status = status
        # Rendered with no await since the status was set: a concurrent scrape cannot swap it.
        body = generate_latest(context.metrics.registry)
        # The header whole: given as a media type, Litestar would add a second charset to it.
        return Response(body, headers={"content-type": CONTENT_TYPE_LATEST})

    @get("/healthz", tags=["operations"], operation_id="getHealth", summary="Liveness")
    async def healthz() -> schemas.Health:
        """The process is up."""
        return schemas.Health("ok")

    @get(
        "/readyz",
        tags=["operations"],
        operation_id="getReadiness",
        summary="Readiness",
        responses={
            503: ResponseSpec(schemas.Health, description="Not ready: a backing service failed.")
        },
    )
    async def readyz() -> Response[schemas.Health]:
        """Every backing service this process uses answers (503 naming the failing ones)."""
        names = list(context.readiness)
        results = await asyncio.gather(*(_check(context.readiness[n]) for n in names))
        checks = dict(zip(names, results, strict=True))
        failing = [name for name, result in checks.items() if result != "ok"]
        if not failing:
            return Response(schemas.Health("ok", checks))
        return Response(schemas.Health("unavailable", checks, failing=failing), status_code=503)

    @get("/openapi.json", include_in_schema=False)
    async def openapi(request: AnyRequest) -> Response[bytes]:
        return Response(_document(request), media_type="application/json")

    @get("/docs", include_in_schema=False, media_type="text/html")
    async def docs(request: AnyRequest) -> str:
        return docs_page.render(json.loads(_document(request)))

    return [metrics, healthz, readyz, openapi, docs]


#: The longest a readiness check may take before it counts as failed.
CHECK_TIMEOUT_S = 2.0


async def _check(probe: Callable[[], Awaitable[object]]) -> str:
    """ "ok", or why the service failed (a probe that hangs fails after CHECK_TIMEOUT_S)."""
    try:
        async with asyncio.timeout(CHECK_TIMEOUT_S):
            await probe()
    except TimeoutError:
        return f"failed: no answer within {CHECK_TIMEOUT_S:g} s"
    except Exception as error:
        return f"failed: {error}"
    return "ok"


def _document(request: AnyRequest) -> bytes:
    document = request.app.openapi_schema.to_schema()
    components = document.get("components", {}).get("schemas", {})
    for name in schemas.REQUEST_BODIES:
        if name in components:  # they refuse fields they do not know: say so
            components[name]["additionalProperties"] = False
    for path in document.get("paths", {}).values():
        for operation in path.values():
            for parameter in operation.get("parameters", []):
                schema = parameter.get("schema", {})
                integer = schema.get("type") == "integer" or any(
                    alt.get("type") == "integer" for alt in schema.get("oneOf", [])
                )
                # Litestar leaves out `ge=0` (a falsy bound); every integer parameter here is
                # non-negative, so the document says so.
                if integer and "minimum" not in schema:
                    schema["minimum"] = 0
    return msgspec.json.encode(document)
