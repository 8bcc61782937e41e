"""One trace per command: from its HTTP request through the append, the relay, the queue and
every read model, to the process managers' follow-up commands (adventure_quest/tracing.py).

A live embedded server (role all: relay, workers and managers in the test's process) traced by
the SDK's in-memory exporter; the links between spans made in different tasks are the ids
derived from the events' correlation and causation ids, as between processes.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import pytest
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

from adventure_quest import tracing
from adventure_quest.app.world_loader import load_world
from adventure_quest.bootstrap import otel
from adventure_quest.projections.catalog import projections
from tests.api.server import bearer, create, live, settings_for
from tests.domain.test_world import small_world

Spans = Sequence[ReadableSpan]


@pytest.fixture
def spans() -> Iterator[InMemorySpanExporter]:
    """Tracing on, every span kept in memory as it ends; off again after the test."""
    exporter = InMemorySpanExporter()
    with otel.installed(otel.provider("aq-test", SimpleSpanProcessor(exporter))):
        yield exporter


def two_rooms(path: Path) -> Path:
    """A hall and an attic: a character that walks into the attic has explored every room."""
    path.write_text(json.dumps(small_world()))
    return path


def attribute(span: ReadableSpan, key: str) -> object:
    assert span.attributes is not None
    return span.attributes.get(key)


def parent_id(span: ReadableSpan) -> int | None:
    return span.parent.span_id if span.parent is not None else None


def span_id(span: ReadableSpan) -> int:
    assert span.context is not None
    return int(span.context.span_id)


def trace_id(span: ReadableSpan) -> int:
    assert span.context is not None
    return int(span.context.trace_id)


def named(found: Spans, name: str) -> list[ReadableSpan]:
    return [span for span in found if span.name == name]


def one(found: Spans, name: str, **attributes: object) -> ReadableSpan:
    matching = [
        span
        for span in named(found, name)
        if all(attribute(span, key) == value for key, value in attributes.items())
    ]
    assert len(matching) == 1, (name, attributes, [s.name for s in found])
    return matching[0]


def children(found: Spans, parent: ReadableSpan) -> list[ReadableSpan]:
    return [span for span in found if parent_id(span) == span_id(parent)]


def in_trace(found: Spans, request: ReadableSpan) -> list[ReadableSpan]:
    return [span for span in found if trace_id(span) == trace_id(request)]


async def trace_when(
    spans: InMemorySpanExporter, done: Callable[[Spans], bool], timeout_s: float = 15.0
) -> Spans:
    """The spans ended so far, once ``done`` holds of them (the processing path is async)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    while True:
        found = spans.get_finished_spans()
        if done(found):
            return found
        if loop.time() > deadline:
            raise AssertionError(f"the trace never completed: {sorted(s.name for s in found)}")
        await asyncio.sleep(0.05)


PROJECTED = {f"project {p.name}" for p in projections(load_world())}


def fully_projected(found: Spans, request_name: str, follow_up: str, appended: str) -> bool:
    """Whether the trace of the request has ``follow_up``'s command, an event of type
    ``appended`` published, and every published event projected by every read model."""
    requests = named(found, request_name)
    if not requests:
        return False
    trace = in_trace(found, requests[-1])
    published = named(trace, "relay publish")
    delivered = named(trace, "queue deliver")
    return (
        any(span.name == f"command {follow_up}" for span in trace)
        and any(attribute(span, "aq.event_type") == appended for span in published)
        and len(delivered) == len(published)
        and all({c.name for c in children(trace, d)} == PROJECTED for d in delivered)
    )


async def test_a_move_is_one_trace_from_its_request_to_each_read_model_and_its_achievement(
    tmp_path: Path, spans: InMemorySpanExporter
) -> None:
    settings = settings_for(tmp_path, world_path=two_rooms(tmp_path / "world.json"))
    async with live(settings) as client:
        player_id, token, _ = await create(client, "Alice")
        move = f"/players/{player_id}/move"
        answer = await client.post(move, json={"direction": "north"}, headers=bearer(token))
        assert answer.status_code == 200, answer.text
        name = "POST /players/{player_id}/move"
        found = await trace_when(
            spans, lambda s: fully_projected(s, name, "unlock achievements", "AchievementUnlocked")
        )

    request = one(found, name)
    assert request.kind is SpanKind.SERVER
    assert request.parent is None
    assert attribute(request, "http.response.status_code") == 200
    correlation = attribute(request, tracing.CORRELATION_ID)
    assert isinstance(correlation, str)
    # The trace id is the correlation id's 128 bits: the id without its dashes, in hex.
    assert f"{trace_id(request):032x}" == correlation.replace("-", "")
    assert trace_id(request) == uuid.UUID(correlation).int
    trace = in_trace(found, request)
    for span in trace:
        assert attribute(span, tracing.CORRELATION_ID) == correlation, span.name
        assert attribute(span, tracing.CAUSATION_ID), span.name

    command = one(trace, "command move")
    assert parent_id(command) == span_id(request)
    assert attribute(command, tracing.CAUSATION_ID) == correlation
    append = one(trace, "append", **{tracing.CAUSATION_ID: correlation})
    assert parent_id(append) == span_id(command)
    assert attribute(append, tracing.STREAM_ID) == f"player-{player_id}"
    moved = one(trace, "relay publish", **{"aq.event_type": "PlayerMoved"})
    assert moved.kind is SpanKind.PRODUCER
    assert parent_id(moved) == span_id(command)
    assert attribute(moved, tracing.STREAM_ID) == f"player-{player_id}"
    delivery = one(children(trace, moved), "queue deliver")
    projected = sorted(children(trace, delivery), key=lambda span: span.name)
    assert {span.name for span in projected} == PROJECTED
    assert {attribute(span, tracing.EVENT_ID) for span in projected} == {
        attribute(moved, tracing.EVENT_ID)
    }
    # request -> command -> append -> relay publish -> project <each read model>, in time too
    began = [span.start_time or 0 for span in (request, command, append, moved, delivery)]
    assert began == sorted(began)
    assert all(began[-1] <= (span.start_time or 0) for span in projected)

    # The achievements manager handles the move in the same trace; its unlock names the move's
    # event as its cause, so the publication of the unlock hangs below the follow-up command.
    moved_id = attribute(moved, tracing.EVENT_ID)
    unlock = one(trace, "command unlock achievements", **{"aq.handled_event_id": moved_id})
    assert parent_id(unlock) == span_id(moved)
    assert attribute(unlock, tracing.CAUSATION_ID) == moved_id
    unlock_append = one(children(trace, unlock), "append")
    assert attribute(unlock_append, tracing.STREAM_ID) == f"player-{player_id}"
    unlocked = [
        span
        for span in named(trace, "relay publish")
        if attribute(span, "aq.event_type") == "AchievementUnlocked"
    ]
    assert len(unlocked) == 2  # explorer and cartographer, each projected everywhere
    for published in unlocked:
        assert parent_id(published) == span_id(unlock)
        assert attribute(published, tracing.CAUSATION_ID) == moved_id
        (delivered,) = children(trace, published)
        assert {span.name for span in children(trace, delivered)} == PROJECTED


async def test_both_lanes_and_the_hand_over_manager_trace_their_commands(
    tmp_path: Path, spans: InMemorySpanExporter
) -> None:
    settings = settings_for(tmp_path, world_path=two_rooms(tmp_path / "world.json"))
    async with live(settings) as client:
        player_id, token, _ = await create(client, "Alice")  # the application's route
        take = f"/players/{player_id}/take"
        taken = await client.post(take, json={"item": "lamp"}, headers=bearer(token))  # fast lane
        assert taken.status_code == 200, taken.text
        # A query string leaves the command to the application's route.
        move = f"/players/{player_id}/move"
        moved = await client.post(
            move, params={"via": "app"}, json={"direction": "north"}, headers=bearer(token)
        )
        assert moved.status_code == 200, moved.text
        take_name = "POST /players/{player_id}/take"
        found = await trace_when(
            spans, lambda s: fully_projected(s, take_name, "finish hand-over", "ItemPickedUp")
        )
        move_name = "POST /players/{player_id}/move"
        found = await trace_when(spans, lambda s: bool(named(s, move_name)))

    for name, verb in (("POST /players", "create"), (take_name, "take"), (move_name, "move")):
        request = one(found, name)
        assert request.kind is SpanKind.SERVER
        assert attribute(request, "http.route") == name.removeprefix("POST ")
        correlation = str(attribute(request, tracing.CORRELATION_ID))
        assert trace_id(request) == uuid.UUID(correlation).int
        (command,) = children(found, request)
        assert command.name == f"command {verb}"
        assert named(children(found, command), "append"), name
    assert attribute(one(found, "POST /players"), "http.response.status_code") == 201

    # The take's hand-over: the room hands the item over and the player receives it; the
    # hand-over manager sees the room's event and finishes it too, in the same trace.
    request = one(found, take_name)
    trace = in_trace(found, request)
    (command,) = children(trace, request)
    handed = one(children(trace, command), "append", **{tracing.STREAM_ID: "room-hall"})
    assert attribute(handed, "aq.repeat") is False
    picked = one(trace, "relay publish", **{"aq.event_type": "ItemPickedUp"})
    assert parent_id(picked) == span_id(command)
    finish = one(trace, "command finish hand-over")
    assert parent_id(finish) == span_id(picked)
    assert attribute(finish, "messaging.consumer.group.name") == "handovers"
    assert attribute(finish, tracing.CAUSATION_ID) == attribute(request, tracing.CORRELATION_ID)
    assert span_id(finish) != span_id(command)
    # The command and the manager both finish the hand-over, whichever comes first; the
    # player's stream records it once, the other append being told it is a repeat (the same
    # derived event ids), or deciding nothing.
    received = [
        span
        for span in named([*children(trace, command), *children(trace, finish)], "append")
        if attribute(span, tracing.STREAM_ID) == f"player-{player_id}"
    ]
    assert [attribute(span, "aq.repeat") for span in received].count(False) == 1


async def _noop() -> None:
    return None


def test_trace_and_span_ids_are_derived_from_the_ids_events_carry(
    spans: InMemorySpanExporter,
) -> None:
    command_id = "0190f2a4-1b2c-7d3e-8f40-123456789abc"
    assert tracing.trace_id_of(command_id) == 0x0190F2A41B2C7D3E8F40123456789ABC
    # An id that is no UUID (a test's own) still has a trace, the same every time.
    assert tracing.trace_id_of("cmd-1") == tracing.trace_id_of("cmd-1") != 0
    assert tracing.trace_id_of("cmd-1") != tracing.trace_id_of("cmd-2")
    derived = {
        tracing.command_span_id(command_id),
        tracing.relay_span_id(command_id),
        tracing.delivery_span_id(command_id),
    }
    assert len(derived) == 3
    assert all(0 < value < 2**64 for value in derived)


async def test_a_relayed_event_without_a_cause_starts_its_own_trace(
    spans: InMemorySpanExporter,
) -> None:
    from adventure_quest.store.envelope import Metadata, RecordedEvent

    def recorded(event_id: str, metadata: Metadata) -> RecordedEvent:
        return RecordedEvent(
            event_id, "world-clock", "world", 1, 1, "WorldTicked", 1, b"", metadata
        )

    tick = recorded("0190f2a4-1b2c-7d3e-8f40-000000000001", Metadata(actor="world-clock"))
    caused = recorded("0190f2a4-1b2c-7d3e-8f40-000000000002", Metadata("corr", "cause"))
    await tracing.relaying(_noop(), [tick, caused], "relay-shard-0")
    first, second = spans.get_finished_spans()
    assert (trace_id(first), first.parent) == (uuid.UUID(tick.event_id).int, None)
    assert span_id(first) == tracing.relay_span_id(tick.event_id)
    assert trace_id(second) == tracing.trace_id_of("corr")
    assert parent_id(second) == tracing.command_span_id("cause")
    assert attribute(second, "messaging.batch.message_count") == 2


async def test_a_failed_publication_marks_every_span_of_the_batch(
    spans: InMemorySpanExporter,
) -> None:
    from adventure_quest.store.envelope import Metadata, RecordedEvent

    async def refused() -> None:
        raise ConnectionError("broker gone")

    events = [
        RecordedEvent(str(uuid.uuid4()), "s-1", "s", n, n, "E", 1, b"", Metadata("c", "c"))
        for n in (1, 2)
    ]
    with pytest.raises(ConnectionError):
        await tracing.relaying(refused(), events, "relay-shard-0")
    ended = spans.get_finished_spans()
    assert len(ended) == 2
    assert all(not span.status.is_ok for span in ended)
    assert all(span.events[0].name == "exception" for span in ended)


def test_spans_refuse_to_start_while_tracing_is_off() -> None:
    assert tracing.TRACER is None
    with pytest.raises(RuntimeError, match="tracing is off"):
        tracing._start("x", SpanKind.INTERNAL, {})


async def test_an_answer_without_a_route_is_named_by_its_method_alone(
    tmp_path: Path, spans: InMemorySpanExporter
) -> None:
    async with live(settings_for(tmp_path)) as client:
        answer = await client.post("/nowhere", json={})
        assert answer.status_code in (404, 405)
    (request,) = [span for span in spans.get_finished_spans() if span.kind is SpanKind.SERVER]
    assert request.name == "POST"
    assert attribute(request, "url.path") == "/nowhere"
    assert tracing.CORRELATION_ID not in (request.attributes or {})
