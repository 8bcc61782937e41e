"""The event-store contract: every adapter passes the same tests (invariants 2 and 3)."""

from __future__ import annotations

import asyncio
import uuid

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from msgspec.structs import replace

from adventure_quest.store.envelope import (
    ANY,
    NO_STREAM,
    AppendResult,
    Metadata,
    NewEvent,
    RecordedEvent,
)
from adventure_quest.store.errors import ConcurrencyError, InvalidAppendError, StoreClosedError
from adventure_quest.store.ports import EventStore, GlobalLog
from adventure_quest.store.sharding import shard_of
from tests.conftest import StoreFactory

FIXTURE_OK = settings(
    suppress_health_check=[HealthCheck.function_scoped_fixture], deadline=None, max_examples=40
)


def event(
    n: int = 0, correlation_id: str = "", causation_id: str = "", actor: str = ""
) -> NewEvent:
    metadata = Metadata(correlation_id, causation_id, actor)
    return NewEvent("Happened", b'{"n":%d}' % n, 1, metadata)


async def read_log(log: GlobalLog, page: int = 1000) -> list[RecordedEvent]:
    seen: list[RecordedEvent] = []
    while batch := await log.read_all(seen[-1].position if seen else 0, page):
        seen += batch
    return seen


async def read_everything(store: EventStore, page: int = 1000) -> list[RecordedEvent]:
    """Every shard's log, one after the other."""
    return [event for log in store.logs() for event in await read_log(log, page)]


async def total_head(store: EventStore) -> int:
    return sum([await log.head() for log in store.logs()])


async def test_first_append_to_a_new_stream_starts_at_version_one(make_store: StoreFactory) -> None:
    store = make_store()
    result = await store.append("player-a", NO_STREAM, [event(1), event(2)])
    assert (result.version, result.position) == (2, 2)
    recorded = await store.read_stream("player-a")
    assert [e.version for e in recorded] == [1, 2]
    assert [e.position for e in recorded] == [1, 2]
    assert recorded == await read_everything(store)
    assert recorded[0].stream_type == "player"
    assert recorded[1].payload == b'{"n":2}'
    assert await store.stream_version("player-a") == 2
    assert await total_head(store) == 2


async def test_an_appends_answer_names_the_shard_whose_log_holds_its_events(
    make_store: StoreFactory,
) -> None:
    """A consistency token is computed from this answer (app/tracking.py), not by hashing the
    stream id again: the shard it names must be where the events are."""

    store = make_store()
    logs = store.logs()
    used = set()
    for n in range(12):
        stream = f"player-{n}"
        result = await store.append(stream, NO_STREAM, [event(n)])
        [recorded] = await store.read_stream(stream)
        assert result.shard == recorded.shard == logs[result.shard].shard
        page = await logs[result.shard].read_all(result.position - 1, 1)
        assert [(e.stream_id, e.position) for e in page] == [(stream, result.position)]
        again = await store.append(stream, 1, [replace(event(n), event_id=recorded.event_id)])
        assert (again.repeat, again.shard) == (True, result.shard)
        used.add(result.shard)
    count = len(logs)
    assert used == set(range(count))  # twelve streams reach every shard


async def test_append_at_a_stale_version_is_refused_and_writes_nothing(
    make_store: StoreFactory,
) -> None:
    store = make_store()
    await store.append("s-1", NO_STREAM, [event()])
    with pytest.raises(ConcurrencyError) as caught:
        await store.append("s-1", NO_STREAM, [event()])
    assert (caught.value.expected, caught.value.actual) == (0, 1)
    with pytest.raises(ConcurrencyError):
        await store.append("s-1", 3, [event()])
    assert await store.stream_version("s-1") == 1
    assert await total_head(store) == 1


async def test_expected_any_appends_whatever_the_version(make_store: StoreFactory) -> None:
    store = make_store()
    await store.append("s-1", ANY, [event()])
    result = await store.append("s-1", ANY, [event(), event()])
    assert result.version == 3


async def test_metadata_is_kept_and_recorded_time_is_stamped(make_store: StoreFactory) -> None:
    store = make_store()
    new = event(correlation_id="c1", causation_id="k1", actor="player-x")
    await store.append("s-1", NO_STREAM, [new])
    (recorded,) = await store.read_stream("s-1")
    assert recorded.event_id == new.event_id
    assert recorded.metadata.correlation_id == "c1"
    assert recorded.metadata.causation_id == "k1"
    assert recorded.metadata.actor == "player-x"
    assert recorded.metadata.recorded_at > 1_700_000_000


async def test_read_stream_honours_from_and_to_versions(make_store: StoreFactory) -> None:
    store = make_store()
    await store.append("s-1", NO_STREAM, [event(n) for n in range(10)])
    await store.append("s-2", NO_STREAM, [event(99)])
    middle = await store.read_stream("s-1", 3, 5)
    assert [e.version for e in middle] == [3, 4, 5]
    assert [e.version for e in await store.read_stream("s-1", 8)] == [8, 9, 10]
    assert await store.read_stream("s-1", 11) == []
    assert await store.read_stream("nobody") == []
    assert await store.stream_version("nobody") == 0


async def test_read_by_ids_finds_a_streams_events_however_far_back(
    make_store: StoreFactory,
) -> None:
    """What a decision with derived ids recorded is found by those ids (Repository.update(once=)):
    in version order, only the stream's own, unknown and malformed ids found nowhere."""

    store = make_store()
    first = [replace(event(n), event_id=str(uuid.uuid4())) for n in range(3)]
    await store.append("s-1", NO_STREAM, first)
    other = replace(event(7), event_id=str(uuid.uuid4()))
    await store.append("s-2", NO_STREAM, [other])
    for n in range(20):  # far behind the stream's head, in more than one append
        await store.append("s-1", ANY, [event(n) for _ in range(10)])
    ids = [first[2].event_id, str(uuid.uuid4()), first[0].event_id, other.event_id, "x"]
    found = await store.read_by_ids("s-1", ids)
    assert [(e.event_id, e.version) for e in found] == [
        (first[0].event_id, 1),
        (first[2].event_id, 3),
    ]
    assert found == [e for e in await store.read_stream("s-1", 1, 3) if e in found]
    assert await store.read_by_ids("s-2", ids) == await store.read_stream("s-2")
    assert await store.read_by_ids("nobody", ids) == []
    assert await store.read_by_ids("s-1", []) == []


async def test_global_log_pages_from_a_position(make_store: StoreFactory) -> None:
    store = make_store()
    for n in range(30):
        await store.append(f"s-{n % 5}", ANY, [event(n)])
    assert await total_head(store) == 30
    for log in store.logs():
        whole = await log.read_all(0, 1000)
        head = await log.head()
        assert [e.position for e in whole] == list(range(1, head + 1))
        assert all(e.shard == log.shard for e in whole)
        assert await log.read_all(0, 3) == whole[:3]
        assert await log.read_all(3, 100) == whole[3:]
        assert await log.read_all(head) == []


async def test_a_waiting_reader_wakes_when_an_event_is_appended(make_store: StoreFactory) -> None:
    store = make_store()
    await store.append("s-1", NO_STREAM, [event()])
    heads = [await log.head() for log in store.logs()]
    log = store.logs()[heads.index(1)]

    async def later() -> None:
        await asyncio.sleep(0.05)
        await store.append("s-1", 1, [event()])

    writer = asyncio.create_task(later())
    started = asyncio.get_running_loop().time()
    assert await log.wait_for(1, timeout=5.0) == 2
    assert asyncio.get_running_loop().time() - started < 1.0
    await writer
    # Nothing new: the wait ends at its timeout with the unchanged head.
    assert await log.wait_for(2, timeout=0.05) == 2


@pytest.mark.parametrize(
    ("stream_id", "expected", "events"),
    [
        ("", NO_STREAM, 1),
        ("x" * 201, NO_STREAM, 1),
        ("bad\nid", NO_STREAM, 1),
        ("s-1", -2, 1),
        ("s-1", NO_STREAM, 0),
    ],
)
async def test_malformed_append_is_refused_and_writes_nothing(
    make_store: StoreFactory, stream_id: str, expected: int, events: int
) -> None:
    store = make_store()
    with pytest.raises(InvalidAppendError):
        await store.append(stream_id, expected, [event() for _ in range(events)])
    assert await total_head(store) == 0


async def test_retrying_a_committed_append_returns_its_result_without_duplicates(
    make_store: StoreFactory,
) -> None:
    store = make_store()
    batch = [event(1), event(2)]
    first = await store.append("s-1", NO_STREAM, batch)
    again = await store.append("s-1", NO_STREAM, batch)
    assert (first.repeat, again) == (False, replace(first, repeat=True))
    assert await total_head(store) == 2
    # Ids are unique per shard's log: reuse them on another stream of the same shard.
    shards = len(store.logs())
    neighbour = next(
        f"s-{n}" for n in range(2, 1000) if shard_of(f"s-{n}", shards) == shard_of("s-1", shards)
    )
    with pytest.raises(InvalidAppendError):
        await store.append(neighbour, NO_STREAM, [batch[0]])


async def test_closed_store_refuses_appends(make_store: StoreFactory) -> None:
    store = make_store()
    await store.close()
    with pytest.raises(StoreClosedError):
        await store.append("s-1", NO_STREAM, [event()])


async def test_of_concurrent_appends_with_the_same_expected_version_exactly_one_wins(
    make_store: StoreFactory,
) -> None:
    store = make_store()
    await store.append("s-1", NO_STREAM, [event()])
    outcomes = await asyncio.gather(
        *(store.append("s-1", 1, [event(n)]) for n in range(50)), return_exceptions=True
    )
    winners = [o for o in outcomes if not isinstance(o, BaseException)]
    losers = [o for o in outcomes if isinstance(o, BaseException)]
    assert len(winners) == 1
    assert all(isinstance(o, ConcurrencyError) for o in losers)
    assert await store.stream_version("s-1") == 2


async def test_a_conflicting_append_fails_alone_while_the_rest_of_its_batch_commits(
    make_store: StoreFactory,
) -> None:
    store = make_store()
    calls = [store.append(f"s-{n}", NO_STREAM, [event(n)]) for n in range(20)]
    calls.append(store.append("s-3", 5, [event()]))  # wrong version, queued with the rest
    outcomes = await asyncio.gather(*calls, return_exceptions=True)
    assert isinstance(outcomes[-1], ConcurrencyError)
    assert not any(isinstance(o, BaseException) for o in outcomes[:-1])
    assert await total_head(store) == 20


async def test_many_concurrent_writers_on_one_stream_leave_versions_without_holes(
    make_store: StoreFactory,
) -> None:
    store = make_store()
    writers, each = 16, 10

    async def writer(number: int) -> int:
        conflicts = 0
        for n in range(each):
            while True:
                version = await store.stream_version("hot-1")
                await asyncio.sleep(0)  # let the other writers read the same version
                try:
                    await store.append("hot-1", version, [event(number * 100 + n)])
                    break
                except ConcurrencyError:
                    conflicts += 1
        return conflicts

    conflicts = await asyncio.gather(*(writer(n) for n in range(writers)))
    recorded = await store.read_stream("hot-1")
    assert [e.version for e in recorded] == list(range(1, writers * each + 1))
    assert sorted(e.payload for e in recorded) == sorted(
        b'{"n":%d}' % (w * 100 + n) for w in range(writers) for n in range(each)
    )
    assert sum(conflicts) > 0  # the writers really did race


appends = st.lists(
    st.tuples(
        st.sampled_from(["a-1", "b-2", "c-3", "d-4"]),
        st.sampled_from(["right", "wrong", "any"]),
        st.integers(1, 4),
    ),
    min_size=1,
    max_size=30,
)


@FIXTURE_OK
@given(plan=appends, page=st.integers(1, 7), concurrent=st.booleans())
async def test_log_and_streams_stay_gap_free_and_ordered(
    make_store: StoreFactory, plan: list[tuple[str, str, int]], page: int, concurrent: bool
) -> None:
    """Invariants 2 and 3 against a model, sequential or all appends in flight at once.

    Sequentially the model knows each stream's version, so the outcome of every append is
    known too: at the right version (``NO_STREAM`` for a stream not yet written) and at ``ANY``
    it lands right after the model's version; at a wrong one (a version the stream is not at,
    among them an exact version of a stream that does not exist) it is refused with a
    ConcurrencyError and writes nothing. Concurrently only the invariants are checked: which
    appends lose their race is not known in advance.
    """

    store = make_store()
    model: dict[str, int] = {}

    async def attempt(stream: str, how: str, count: int) -> None:
        current = model.get(stream, 0) if not concurrent else await store.stream_version(stream)
        expected = {"right": current, "wrong": current + 7, "any": ANY}[how]
        head = 0 if concurrent else await total_head(store)
        outcome: AppendResult | ConcurrencyError
        try:
            outcome = await store.append(stream, expected, [event() for _ in range(count)])
        except ConcurrencyError as refused:
            outcome = refused
        if isinstance(outcome, ConcurrencyError):
            if not concurrent:
                assert how == "wrong", f"{how} append at {expected} onto {current} refused"
                assert (outcome.expected, outcome.actual) == (expected, current)
                assert await store.stream_version(stream) == current
                assert await total_head(store) == head
            return
        result = outcome
        if not concurrent:
            assert how != "wrong", f"append at {expected} onto version {current} was accepted"
            assert (result.version, result.repeat) == (current + count, False)
            assert await total_head(store) == head + count
        model[stream] = max(model.get(stream, 0), result.version)

    if concurrent:
        await asyncio.gather(*(attempt(*step) for step in plan))
    else:
        for step in plan:
            await attempt(*step)
    for shard_log in store.logs():
        positions = [e.position for e in await read_log(shard_log, page)]
        assert positions == list(range(1, await shard_log.head() + 1))
    log = await read_everything(store, page)
    assert await total_head(store) == len(log)
    for stream, version in model.items():
        versions = [e.version for e in log if e.stream_id == stream]
        assert versions == list(range(1, version + 1))
        assert [e.version for e in await store.read_stream(stream)] == versions
    assert len({e.event_id for e in log}) == len(log)
