"""The OpenTelemetry SDK wired for the game's traces; imported only once tracing is on.

bootstrap/tracing.py imports this module when ``AQ_TRACING`` turns tracing on, so a process
that does not trace never imports OpenTelemetry, and the base install runs without it.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from importlib.metadata import version

from opentelemetry.sdk.resources import SERVICE_NAME, Resource
from opentelemetry.sdk.trace import SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import (
    BatchSpanProcessor,
    ConsoleSpanExporter,
    SimpleSpanProcessor,
)
from opentelemetry.sdk.trace.id_generator import RandomIdGenerator

from adventure_quest import tracing


class ChosenIds(RandomIdGenerator):
    """Random ids, except where the span being started must have derived ones
    (``tracing.chosen_ids``): that is how a span made in one process is the parent of spans
    made in another."""

    def generate_trace_id(self) -> int:
        return tracing.chosen_ids()[0] or super().generate_trace_id()

    def generate_span_id(self) -> int:
        return tracing.chosen_ids()[1] or super().generate_span_id()

    def is_trace_id_random(self) -> bool:
        return not tracing.chosen_ids()[0]  # a derived trace id is not the W3C random kind


def provider(service_name: str, *processors: SpanProcessor) -> TracerProvider:
    """A tracer provider for ``service_name`` (the resource's ``service.name``), exporting
    through ``processors``; it samples what the SDK's defaults do (``OTEL_TRACES_SAMPLER``)."""
    made = TracerProvider(
        resource=Resource.create({SERVICE_NAME: service_name}), id_generator=ChosenIds()
    )
    for processor in processors:
        made.add_span_processor(processor)
    return made


def processor(mode: str) -> SpanProcessor:
    """How ``AQ_TRACING`` exports: ``console`` prints each span to standard output as it ends;
    ``otlp`` sends them in batches over OTLP/HTTP, to ``OTEL_EXPORTER_OTLP_ENDPOINT`` (or
    ``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT``; the exporter reads them, default localhost:4318)."""
    if mode == "console":  # standard output as it is now (the exporter's default is at import)
        return SimpleSpanProcessor(ConsoleSpanExporter(out=sys.stdout))
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

    return BatchSpanProcessor(OTLPSpanExporter())


@contextmanager
def installed(made: TracerProvider) -> Iterator[None]:
    """Trace with ``made`` inside the block; then tracing is off again and what is left is
    exported (the provider shut down)."""
    tracing.install(made.get_tracer("adventure_quest", version("adventure-quest")))
    try:
        yield
    finally:
        tracing.install(None)
        made.shutdown()
