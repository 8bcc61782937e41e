"""The event-store contract for repeats: an append whose first event id is already recorded on its
stream writes nothing and says so, however much was appended since (docs/handover.md).

This is what makes a hand-over's finish exactly once whatever the lag: its event ids are derived
from the hand-over, so a second attempt, one event later or a million, proposes the same first id.
"""

from __future__ import annotations

import asyncio

import pytest
from hypothesis import given
from hypothesis import strategies as st

from adventure_quest.store.envelope import NO_STREAM, NewEvent
from adventure_quest.store.errors import ConcurrencyError, InvalidAppendError
from adventure_quest.store.uuid7 import derived_id
from tests.conftest import StoreFactory
from tests.contract.test_event_store_contract import FIXTURE_OK, event, read_everything, total_head


def once(key: str, stream_id: str, count: int = 1, n: int = 0) -> list[NewEvent]:
    """``count`` events whose ids are derived from ``key`` (as a hand-over's finish has)."""
    return [
        NewEvent("Finished", b'{"n":%d}' % (n + i), 1, event_id=derived_id(key, stream_id, i))
        for i in range(count)
    ]


def test_derived_ids_are_stable_distinct_and_valid_uuids() -> None:
    first = derived_id("0190c3c2-6a4e-7a2b-9c1d-0123456789ab", "player-a", 0)
    assert first == derived_id("0190c3c2-6a4e-7a2b-9c1d-0123456789ab", "player-a", 0)
    assert first.startswith("0190c3c2-6a4e-8")  # the hand-over's time kept, version 8
    assert first[19] in "89ab"  # the RFC 9562 variant
    others = {
        derived_id("0190c3c2-6a4e-7a2b-9c1d-0123456789ab", "player-a", 1),
        derived_id("0190c3c2-6a4e-7a2b-9c1d-0123456789ab", "room-a", 0),
        derived_id("0190c3c2-6a4e-7a2b-9c1d-0123456789ac", "player-a", 0),
        derived_id("not a uuid", "player-a", 0),
    }
    assert first not in others
    assert len(others) == 4


async def test_a_repeat_long_after_writes_nothing_and_says_where_the_first_landed(
    make_store: StoreFactory,
) -> None:
    store = make_store()
    await store.append("p-1", NO_STREAM, [event()])
    first = await store.append("p-1", 1, once("h", "p-1"))
    for n in range(100):  # the stream moves on: the repeat comes at its current version
        await store.append("p-1", 2 + n, [event(n)])
    again = await store.append("p-1", 102, once("h", "p-1"))
    assert (again.version, again.position, again.repeat) == (2, first.position, True)
    stale = await store.append("p-1", 5, once("h", "p-1"))  # and at a stale version
    assert stale == again
    assert await store.stream_version("p-1") == 102
    assert await total_head(store) == 102


@pytest.mark.parametrize(("first_time", "second_time"), [(1, 3), (3, 1), (2, 2)])
async def test_a_repeat_that_decides_more_or_fewer_events_is_still_a_repeat(
    make_store: StoreFactory, first_time: int, second_time: int
) -> None:
    store = make_store()
    first = await store.append("p-1", NO_STREAM, once("h", "p-1", first_time))
    await store.append("p-1", first_time, [event()])
    again = await store.append("p-1", first_time + 1, once("h", "p-1", second_time, n=9))
    recorded = min(first_time, second_time)
    assert (again.version, again.repeat) == (recorded, True)
    assert again.position == first.position - first_time + recorded
    assert await store.stream_version("p-1") == first_time + 1


async def test_ids_reused_other_than_by_a_repeat_are_refused_and_write_nothing(
    make_store: StoreFactory,
) -> None:
    store = make_store()
    await store.append("p-1", NO_STREAM, once("h", "p-1", 2))
    later_id_reused = [event(), once("h", "p-1", 2)[1]]
    with pytest.raises(InvalidAppendError):
        await store.append("p-1", 2, later_id_reused)
    assert await store.stream_version("p-1") == 2
    assert await total_head(store) == 2


async def test_a_repeat_in_a_group_commit_leaves_the_others_committed(
    make_store: StoreFactory,
) -> None:
    store = make_store()
    await store.append("p-1", NO_STREAM, once("h", "p-1"))
    calls = [store.append(f"s-{n}", NO_STREAM, [event(n)]) for n in range(10)]
    calls.insert(5, store.append("p-1", 1, once("h", "p-1")))  # at the current version
    calls.append(store.append("s-3", 7, [event()]))  # and a real conflict
    outcomes = await asyncio.gather(*calls, return_exceptions=True)
    repeat = outcomes.pop(5)
    assert not isinstance(repeat, BaseException)
    assert (repeat.version, repeat.repeat) == (1, True)
    assert isinstance(outcomes.pop(), ConcurrencyError)
    assert all(not isinstance(o, BaseException) and not o.repeat for o in outcomes)
    assert await total_head(store) == 11


@FIXTURE_OK
@given(
    plan=st.lists(
        st.tuples(st.sampled_from(["p-1", "p-2", "r-3"]), st.integers(0, 9), st.integers(1, 3)),
        min_size=1,
        max_size=40,
    ),
    concurrent=st.booleans(),
)
async def test_each_keyed_decision_is_recorded_once_whenever_it_is_attempted_again(
    make_store: StoreFactory, plan: list[tuple[str, int, int]], concurrent: bool
) -> None:
    """Keys attempted again and again, at any distance, alone or all in flight at once."""

    store = make_store()

    async def attempt(stream: str, key: int, count: int) -> None:
        while True:
            version = await store.stream_version(stream)
            try:
                await store.append(stream, version, once(f"k{key}", stream, count))
                return
            except ConcurrencyError:
                continue

    if concurrent:
        await asyncio.gather(*(attempt(*step) for step in plan))
    else:
        for step in plan:
            await attempt(*step)
    log = await read_everything(store)
    first_ids = {derived_id(f"k{key}", stream, 0) for stream, key, _ in plan}
    assert {e.event_id for e in log if e.event_id in first_ids} == first_ids
    assert len({e.event_id for e in log}) == len(log)
    for stream in {stream for stream, _, _ in plan}:
        versions = [e.version for e in log if e.stream_id == stream]
        assert versions == list(range(1, len(versions) + 1))
        starts = [e for e in log if e.stream_id == stream and e.event_id in first_ids]
        assert len(starts) == len({key for s, key, _ in plan if s == stream})
