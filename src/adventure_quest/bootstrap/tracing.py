"""Tracing turned on, or left off, from the settings (``AQ_TRACING``; docs/operations.md).

Off, nothing happens here and OpenTelemetry is not imported. On, the SDK is wired
(bootstrap/otel.py) and installed for the time the process runs (``traced``), under a service
name per role unless ``OTEL_SERVICE_NAME`` names one. It must be on before the write side is
wired: a traced request's command takes the request's id (bootstrap/write.py).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Final

from adventure_quest.config import Settings, SettingsError

#: The service name of each role's traces, when OTEL_SERVICE_NAME is not set (``process``:
#: ``aq process``, relays and workers in one process).
SERVICE_NAMES: Final = {
    "all": "aq-all",
    "api": "aq-api",
    "relay": "aq-relay",
    "worker": "aq-worker",
    "process": "aq-process",
}


class TracingUnavailableError(SettingsError):
    """Tracing is turned on, but the OpenTelemetry packages (the ``otel`` extra) are missing."""

    code = "tracing_unavailable"


def check(settings: Settings) -> None:
    """Refuse tracing turned on without OpenTelemetry installed, before anything starts."""
    if settings.tracing == "off":
        return
    try:
        from adventure_quest.bootstrap import otel  # noqa: F401 - whether the SDK imports

        if settings.tracing == "otlp":
            from opentelemetry.exporter.otlp.proto.http import trace_exporter  # noqa: F401
    except ImportError:
        raise TracingUnavailableError(
            f"tracing is on (AQ_TRACING={settings.tracing}) but OpenTelemetry is not installed:"
            " install adventure-quest[otel]"
        ) from None


@contextmanager
def traced(settings: Settings, role: str) -> Iterator[None]:
    """Trace inside the block as the settings say (nothing at all when tracing is off)."""
    if settings.tracing == "off":
        yield
        return
    check(settings)
    from adventure_quest.bootstrap import otel

    name = settings.service_name or SERVICE_NAMES[role]
    with otel.installed(otel.provider(name, otel.processor(settings.tracing))):
        yield
