"""Operations endpoints: /metrics (Prometheus), /healthz, /readyz, /openapi.json and /docs."""

from __future__ import annotations

import contextlib
import json
import resource
from pathlib import Path

import msgspec
from litestar import Response, get
from litestar.handlers import HTTPRouteHandler
from litestar.openapi import ResponseSpec

from adventure_quest.api import docs_page, schemas
from adventure_quest.api.context import ApiContext
from adventure_quest.api.types import AnyRequest
from adventure_quest.processing.status import prometheus
from adventure_quest.queries.consistency import progress_of


def routes(context: ApiContext) -> list[HTTPRouteHandler]:
    @get(
        "/metrics",
        tags=["operations"],
        media_type="text/plain; version=0.0.4",
        operation_id="getMetrics",
        summary="Prometheus metrics",
    )
    async def metrics() -> str:
        """Prometheus text: command and query latency, appends, lag, cache, dead letters."""
        status = await context.status()
        stats = context.read.cache.stats
        lines = [
            *context.metrics.lines(),
            "# HELP aq_cache_hits_total Query answers served from the cache.",
            "# TYPE aq_cache_hits_total counter",
            f"aq_cache_hits_total {stats.hits}",
            "# HELP aq_cache_misses_total Query answers not in the cache (or too old).",
            "# TYPE aq_cache_misses_total counter",
            f"aq_cache_misses_total {stats.misses}",
            "# HELP aq_cache_hit_ratio Hits over lookups since start.",
            "# TYPE aq_cache_hit_ratio gauge",
            f"aq_cache_hit_ratio {stats.hit_ratio:.4f}",
            "# HELP aq_replica_fallbacks_total Token queries a replica could not serve in time.",
            "# TYPE aq_replica_fallbacks_total counter",
            f"aq_replica_fallbacks_total {context.read.fallbacks}",
            "# HELP aq_feed_subscribers Open room feeds.",
            "# TYPE aq_feed_subscribers gauge",
            f"aq_feed_subscribers {context.feed.subscribers}",
            *memory_lines(),
        ]
        return "\n".join(lines) + "\n" + prometheus(status)

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


def memory_lines() -> list[str]:
    """Resident memory now and at its peak (Linux /proc; elsewhere the peak only)."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    now = 0
    with contextlib.suppress(OSError):
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                now = int(line.split()[1]) * 1024
            elif line.startswith("VmHWM:"):  # the same count as VmRSS, so peak >= now
                peak = int(line.split()[1]) * 1024
    return [
        "# HELP process_resident_memory_bytes Resident memory size in bytes.",
        "# TYPE process_resident_memory_bytes gauge",
        f"process_resident_memory_bytes {now}",
        "# HELP aq_process_peak_resident_memory_bytes Peak resident memory size in bytes.",
        "# TYPE aq_process_peak_resident_memory_bytes gauge",
        f"aq_process_peak_resident_memory_bytes {peak}",
    ]
