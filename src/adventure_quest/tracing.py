"""Traces: one per command, from its HTTP request to every read model its events changed.

Off by default, and then free: ``TRACER`` is None, each place that could make a span checks
that first (one attribute load), and OpenTelemetry is never imported. The composition root
(bootstrap/tracing.py) installs a tracer when ``AQ_TRACING`` asks for one; the functions below
then make the spans, with OpenTelemetry's API.

The trace travels with the events in what their metadata already holds, so nothing is added to
what is stored and any process can pick it up: a trace's id is the correlation id (the UUID's
128 bits: the id without its dashes, in hex), and a span whose parent lives in another process
or task names it by an id derived from the event:

- ``command <verb>`` has the span id ``command_span_id(causation id)`` of the events it appends;
- ``relay publish``: one span per event (``relay_span_id``), a child of the event's command;
- ``queue deliver``: one per event in the projection worker (``delivery_span_id``), a child of
  the event's publication; ``project <name>``: one per event and read model, a child of that;
- a process manager's follow-up command is a child of the publication of the event it handles;
  one that names that event as its cause (achievements, respawns) has that cause's
  ``command_span_id``, so the spans of what it appends hang below it in turn.

Spans get those ids from ``chosen_ids``, which the SDK's id generator asks (bootstrap/otel.py).
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Awaitable, Iterator, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from typing import TYPE_CHECKING, Any, Final, TypeVar

from adventure_quest.store.envelope import AppendResult, NewEvent, RecordedEvent
from adventure_quest.store.uuid7 import uuid7

if TYPE_CHECKING:
    from opentelemetry.trace import Span, SpanContext, SpanKind, Tracer

T = TypeVar("T")

#: The tracer spans are made with; None (the default) is tracing turned off.
TRACER: Tracer | None = None

CORRELATION_ID: Final = "aq.correlation_id"
CAUSATION_ID: Final = "aq.causation_id"
EVENT_ID: Final = "aq.event_id"
STREAM_ID: Final = "aq.stream_id"


def install(tracer: Tracer | None) -> None:
    """Turn tracing on with ``tracer``, or off (None). Before the write side is wired: a traced
    request's command takes its id from the request (``command_id``, bootstrap/write.py)."""
    global TRACER  # noqa: PLW0603 - the one switch every call site reads
    TRACER = tracer


# -- ids derived from the events' metadata ----------------------------------------------------


def trace_id_of(correlation_id: str) -> int:
    """The trace of a correlation id: the UUID's 128 bits (a digest when it is no UUID)."""
    try:
        value = uuid.UUID(correlation_id).int
    except ValueError:
        value = 0
    return value or int.from_bytes(_digest("trace", correlation_id, 16))


def trace_of(recorded: RecordedEvent) -> int:
    """An event's trace: its correlation id's, or its own id's when it has none (a world-clock
    tick, whose respawns take its id as their correlation id)."""
    return trace_id_of(recorded.metadata.correlation_id or recorded.event_id)


def command_span_id(cause_id: str) -> int:
    """The span of the command whose events name ``cause_id`` as their causation id."""
    return _span_id("command", cause_id)


def relay_span_id(event_id: str) -> int:
    """The span of an event's publication by the relay."""
    return _span_id("relay", event_id)


def delivery_span_id(event_id: str) -> int:
    """The span of an event's delivery to the projection worker."""
    return _span_id("deliver", event_id)


def _span_id(kind: str, of: str) -> int:
    return int.from_bytes(_digest(kind, of, 8)) or 1


def _digest(kind: str, of: str, size: int) -> bytes:
    return hashlib.blake2b(f"{kind}\x1f{of}".encode(), digest_size=size).digest()


_chosen: ContextVar[tuple[int, int]] = ContextVar("aq_chosen_ids", default=(0, 0))


def chosen_ids() -> tuple[int, int]:
    """The (trace id, span id) the span being started must have; 0 where the SDK picks."""
    return _chosen.get()


# -- the spans ----------------------------------------------------------------------------------


class Request:
    """A traced HTTP request, and the id its command takes (once: ``command_id``)."""

    def __init__(self, span: Span, method: str, command_id: str) -> None:
        self.span = span
        self.method = method
        self.command_id = command_id
        self.taken = False

    def answered(self, status: int, route: str) -> None:
        """Name the span after the route that answered (never the path: ids are in it)."""
        from opentelemetry.trace import StatusCode

        if route:
            self.span.update_name(f"{self.method} {route}")
            self.span.set_attribute("http.route", route)
        self.span.set_attribute("http.response.status_code", status)
        if status >= 500:
            self.span.set_status(StatusCode.ERROR)
        if self.taken:
            _set_ids(self.span, self.command_id, self.command_id)


_request: ContextVar[Request | None] = ContextVar("aq_traced_request", default=None)


@contextmanager
def request(method: str, path: str) -> Iterator[Request]:
    """The server span of one HTTP request, the root of its command's trace.

    The command's id is chosen here, before the command runs, so that the trace can begin with
    the request: the game takes it (``command_id``) as the command's correlation id.
    """
    from opentelemetry import trace

    command_id = uuid7()
    attributes = {"http.request.method": method, "url.path": path}
    span = _start(method, _kind().SERVER, attributes, root=trace_id_of(command_id))
    traced = Request(span, method, command_id)
    token = _request.set(traced)
    try:
        with trace.use_span(span, end_on_exit=True):
            yield traced
    finally:
        _request.reset(token)


def command_id() -> str:
    """A new command's id: the traced request's, the first time it is asked; else a UUIDv7."""
    traced = _request.get()
    if traced is None or traced.taken:
        return uuid7()
    traced.taken = True
    return traced.command_id


async def command(verb: str, call: Awaitable[T]) -> T:
    """Run a command of the API in its span, ``command <verb>``."""
    from opentelemetry import trace

    traced = _request.get()
    span_id = command_span_id(traced.command_id) if traced is not None else 0
    span = _start(f"command {verb}", _kind().INTERNAL, {"aq.command": verb}, span_id=span_id)
    with trace.use_span(span, end_on_exit=True):
        try:
            return await call
        finally:
            if traced is not None and traced.taken:
                _set_ids(span, traced.command_id, traced.command_id)


async def appending(
    call: Awaitable[AppendResult], stream_id: str, events: Sequence[NewEvent]
) -> AppendResult:
    """Run a store append in its span, ``append``, a child of the command making it."""
    from opentelemetry import trace

    metadata = events[0].metadata if events else None
    attributes: dict[str, Any] = {STREAM_ID: stream_id, "aq.events": len(events)}
    if metadata is not None:
        attributes |= {
            CORRELATION_ID: metadata.correlation_id,
            CAUSATION_ID: metadata.causation_id,
        }
    span = _start("append", _kind().INTERNAL, attributes)
    with trace.use_span(span, end_on_exit=True):
        result = await call
        span.set_attributes(
            {
                "aq.version": result.version,
                "aq.position": result.position,
                "aq.shard": result.shard,
                "aq.repeat": result.repeat,
            }
        )
        return result


async def relaying(call: Awaitable[None], events: Sequence[RecordedEvent], relay: str) -> None:
    """Run a relay's publication of a batch, with one span per event, each in its own trace.

    A batch holds events of many commands: one span per event, each a child of its command,
    rather than one span of the batch linked to every trace, so each trace tells its whole
    story by itself. Every span lasts as long as the batch's publication.
    """
    kind = _kind().PRODUCER
    spans = [
        _start(
            "relay publish",
            kind,
            {**_about(recorded), "aq.relay": relay, "messaging.batch.message_count": len(events)},
            parent=_cause(recorded),
            root=trace_of(recorded),
            span_id=relay_span_id(recorded.event_id),
        )
        for recorded in events
    ]
    await _during(call, spans)


async def delivering(call: Awaitable[T], events: Sequence[RecordedEvent], group: str) -> T:
    """Run the handling of a fetched batch (until acknowledged), one span per event."""
    kind = _kind().CONSUMER
    spans = [
        _start(
            "queue deliver",
            kind,
            {**_about(recorded), "messaging.consumer.group.name": group},
            parent=_remote(trace_of(recorded), relay_span_id(recorded.event_id)),
            span_id=delivery_span_id(recorded.event_id),
        )
        for recorded in events
    ]
    return await _during(call, spans)


async def projecting(call: Awaitable[T], projection: str, events: Sequence[RecordedEvent]) -> T:
    """Run a read model's application of a batch, one span per event, ``project <name>``."""
    kind = _kind().INTERNAL
    spans = [
        _start(
            f"project {projection}",
            kind,
            {**_about(recorded), "aq.projection": projection},
            parent=_remote(trace_of(recorded), delivery_span_id(recorded.event_id)),
        )
        for recorded in events
    ]
    return await _during(call, spans)


async def follow_up(
    name: str,
    handled: RecordedEvent,
    call: Awaitable[T],
    *,
    correlation_id: str,
    causation_id: str,
    group: str,
) -> T:
    """Run a process manager's command, ``command <name>``, in the trace of the event it
    handles (a child of that event's publication).

    Its events name ``causation_id`` as their cause. When that is the handled event, this span
    has that cause's id (``command_span_id``): their publications are its children. Otherwise
    (a hand-over's finish names the hand-over, the id of the command that began it) the span
    with that id is the original command's, so this one gets an id of its own.
    """
    from opentelemetry import trace

    attributes = {
        "aq.command": name,
        CORRELATION_ID: correlation_id,
        CAUSATION_ID: causation_id,
        "aq.handled_event_id": handled.event_id,
        "messaging.consumer.group.name": group,
    }
    span = _start(
        f"command {name}",
        _kind().CONSUMER,
        attributes,
        parent=_remote(trace_of(handled), relay_span_id(handled.event_id)),
        span_id=command_span_id(causation_id) if causation_id == handled.event_id else 0,
    )
    with trace.use_span(span, end_on_exit=True):
        return await call


# -- making them --------------------------------------------------------------------------------


def _kind() -> type[SpanKind]:
    from opentelemetry.trace import SpanKind

    return SpanKind


def _start(
    name: str,
    kind: SpanKind,
    attributes: dict[str, Any],
    *,
    parent: SpanContext | None = None,
    root: int = 0,
    span_id: int = 0,
) -> Span:
    """Start a span: a child of ``parent``, else a root in trace ``root``, else a child of the
    current span; with span id ``span_id`` unless 0."""
    from opentelemetry import context, trace

    tracer = TRACER
    if tracer is None:
        raise RuntimeError("tracing is off: nothing may start a span")
    if parent is not None:
        where: context.Context | None = trace.set_span_in_context(trace.NonRecordingSpan(parent))
    else:
        where = context.Context() if root else None
    token = _chosen.set((root, span_id))
    try:
        return tracer.start_span(name, where, kind, attributes)
    finally:
        _chosen.reset(token)


def _remote(trace_id: int, span_id: int) -> SpanContext:
    """A span of the trace made elsewhere (another process or task), named by its ids."""
    from opentelemetry.trace import SpanContext, TraceFlags

    sampled = TraceFlags(TraceFlags.SAMPLED)
    return SpanContext(trace_id, span_id, is_remote=True, trace_flags=sampled)


def _cause(recorded: RecordedEvent) -> SpanContext | None:
    """The span of the command that appended ``recorded``; None when it names no cause."""
    cause = recorded.metadata.causation_id
    return _remote(trace_of(recorded), command_span_id(cause)) if cause else None


def _about(recorded: RecordedEvent) -> dict[str, Any]:
    metadata = recorded.metadata
    return {
        EVENT_ID: recorded.event_id,
        "aq.event_type": recorded.event_type,
        STREAM_ID: recorded.stream_id,
        "aq.version": recorded.version,
        "aq.position": recorded.position,
        "aq.shard": recorded.shard,
        CORRELATION_ID: metadata.correlation_id,
        CAUSATION_ID: metadata.causation_id,
    }


def _set_ids(span: Span, correlation_id: str, causation_id: str) -> None:
    span.set_attributes({CORRELATION_ID: correlation_id, CAUSATION_ID: causation_id})


async def _during(call: Awaitable[T], spans: Sequence[Span]) -> T:
    """Await ``call``, then end ``spans`` (marked as failed by whatever it raised)."""
    try:
        return await call
    except BaseException as error:
        _failed(spans, error)
        raise
    finally:
        for span in spans:
            span.end()


def _failed(spans: Sequence[Span], error: BaseException) -> None:
    from opentelemetry.trace import Status, StatusCode

    status = Status(StatusCode.ERROR, f"{type(error).__name__}: {error}")
    for span in spans:
        span.record_exception(error)
        span.set_status(status)
