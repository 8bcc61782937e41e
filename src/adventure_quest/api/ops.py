"""Operations endpoints: /metrics (Prometheus), /healthz, /readyz, /openapi.json and /docs."""

from __future__ import annotations

import json

import msgspec
from litestar import Response, get
from litestar.handlers import HTTPRouteHandler
from litestar.openapi import ResponseSpec
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from adventure_quest.api import docs_page, schemas
from adventure_quest.api.context import ApiContext
from adventure_quest.api.types import AnyRequest
from adventure_quest.queries.consistency import progress_of


def routes(context: ApiContext) -> list[HTTPRouteHandler]:
    @get("/metrics", tags=["operations"], media_type=CONTENT_TYPE_LATEST)
    async def metrics() -> Response[bytes]:
        """Prometheus text: command and query latency, appends, lag, cache, dead letters."""
        context.metrics.lag.status = await context.status()
        # Rendered with no await since the status was set: a concurrent scrape cannot swap it.
        body = generate_latest(context.metrics.registry)
        # The header whole: given as a media type, Litestar would add a second charset to it.
        return Response(body, headers={"content-type": CONTENT_TYPE_LATEST})

    @get("/healthz", tags=["operations"])
    async def healthz() -> schemas.Health:
        """The process is up."""
        return schemas.Health("ok")

    @get(
        "/readyz",
        tags=["operations"],
        responses={
            503: ResponseSpec(schemas.Health, description="Not ready: a backing service failed.")
        },
    )
    async def readyz() -> Response[schemas.Health]:
        """The event store and read database answer (503 otherwise)."""
        checks: dict[str, str] = {}
        try:
            for log in context.logs:
                await log.head()
            checks["event_store"] = "ok"
        except Exception as error:
            checks["event_store"] = f"failed: {error}"
        try:
            await progress_of(context.read.primary)
            checks["read_database"] = "ok"
        except Exception as error:
            checks["read_database"] = f"failed: {error}"
        ready = all(v == "ok" for v in checks.values())
        return Response(
            schemas.Health("ok" if ready else "unavailable", checks),
            status_code=200 if ready else 503,
        )

    @get("/openapi.json", include_in_schema=False)
    async def openapi(request: AnyRequest) -> Response[bytes]:
        return Response(_document(request), media_type="application/json")

    @get("/docs", include_in_schema=False, media_type="text/html")
    async def docs(request: AnyRequest) -> str:
        return docs_page.render(json.loads(_document(request)))

    return [metrics, healthz, readyz, openapi, docs]


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
