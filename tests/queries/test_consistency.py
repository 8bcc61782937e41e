"""Consistency tokens as pure functions: building, writing, reading and comparing them; and
waiting for a read model to reach one, against an in-memory stand-in for its progress table."""

from __future__ import annotations

import asyncio
import time
from typing import Any, cast

import pytest

from adventure_quest.api.errors import outcome_of
from adventure_quest.messaging.ports import partition_of
from adventure_quest.projections import progress
from adventure_quest.projections.model import Row, Table
from adventure_quest.projections.ports import ReadDatabase
from adventure_quest.queries.consistency import (
    MAX_ENTRIES,
    Marks,
    Watch,
    decode,
    encode,
    progress_of,
    reached,
    token_for,
)
from adventure_quest.queries.errors import InvalidTokenError
from adventure_quest.store.sharding import shard_of

# -- token_for ------------------------------------------------------------------------------


def test_a_single_shard_and_partition_keeps_the_highest_position_of_the_command() -> None:
    landed = {"player-a": (0, 7), "room-b": (0, 12), "room-c": (0, 3)}
    assert token_for(landed, 1) == {(0, 0): 12}


def test_no_appends_make_an_empty_token() -> None:
    assert token_for({}, 16) == {}


def test_each_stream_counts_under_the_shard_the_store_named_and_its_partition() -> None:
    streams = [f"room-{n}" for n in range(40)]
    partitions = [partition_of(s, 16) for s in streams]
    first, *_ = streams
    alike = next(s for s, p in zip(streams[1:], partitions[1:], strict=True) if p == partitions[0])
    other = next(s for s, p in zip(streams, partitions, strict=True) if p != partitions[0])
    p_first, p_other = partition_of(first, 16), partition_of(other, 16)
    assert token_for({first: (1, 5), alike: (1, 9), other: (0, 4)}, 16) == {
        (1, p_first): 9,
        (0, p_other): 4,
    }
    assert token_for({first: (1, 9), alike: (1, 5)}, 16) == {(1, p_first): 9}
    # One partition, two shards: two entries.
    assert token_for({first: (0, 9), alike: (1, 5)}, 16) == {(0, p_first): 9, (1, p_first): 5}


def test_the_shard_is_the_stores_answer_not_a_hash_of_the_stream_id() -> None:
    stream = "room-a"
    hashed = shard_of(stream, 4)
    elsewhere = (hashed + 1) % 4
    assert token_for({stream: (elsewhere, 3)}, 16) == {(elsewhere, partition_of(stream, 16)): 3}


def test_applied_events_and_a_commands_appends_count_under_one_mark() -> None:
    """The writer's token and the readers' progress use the same mark for the same event."""
    for n in range(50):
        stream, shard = f"player-{n}", n % 3
        assert set(token_for({stream: (shard, 10)}, 16)) == {progress.mark_of(shard, stream, 16)}


# -- encode and decode ----------------------------------------------------------------------


def test_a_token_is_written_as_sorted_shard_partition_position_entries() -> None:
    assert encode({(1, 0): 5, (0, 12): 3, (0, 2): 40}) == "0.2:40,0.12:3,1.0:5"
    assert encode({}) == ""


def test_a_written_token_reads_back_as_the_same_marks() -> None:
    marks = {(0, 2): 40, (0, 12): 3, (1, 0): 5, (9999, 9999): 10**18 - 1}
    assert decode(encode(marks)) == marks


def test_reading_keeps_the_highest_position_of_a_repeated_entry_and_skips_empty_ones() -> None:
    assert decode(" 0.1:5 , ,0.1:9,0.1:2,1.3:1,") == {(0, 1): 9, (1, 3): 1}
    assert decode("") == {}


def test_a_token_of_the_most_entries_allowed_is_read() -> None:
    text = ",".join(f"0.{n}:1" for n in range(MAX_ENTRIES))
    assert len(decode(text)) == MAX_ENTRIES == 64


@pytest.mark.parametrize(
    "text",
    [
        "garbage",
        "0.0:1,x",
        "0:1",
        "0.0.0:1",
        "0.0:",
        "-1.0:1",
        "12345.0:1",  # a shard of five digits
        "0.0:1234567890123456789",  # a position of nineteen digits
        ",".join(f"0.{n}:1" for n in range(MAX_ENTRIES + 1)),
    ],
)
def test_a_token_that_cannot_be_read_is_refused(text: str) -> None:
    with pytest.raises(InvalidTokenError) as caught:
        decode(text)
    assert caught.value.code == "invalid_consistency_token"
    assert outcome_of(caught.value) == (400, "invalid_consistency_token", caught.value.message)
    assert caught.value.message.startswith(("cannot read ", "at most 64 entries"))


def test_a_token_names_the_entry_it_cannot_read_and_says_how_entries_are_written() -> None:
    with pytest.raises(
        InvalidTokenError, match=r"cannot read 'x': entries are shard\.partition:position"
    ):
        decode("0.0:1,x")
    with pytest.raises(InvalidTokenError, match="at most 64 entries"):
        decode(",".join(f"0.{n}:1" for n in range(MAX_ENTRIES + 1)))


def test_a_position_of_zero_reads_as_zero() -> None:
    assert decode("0.0:0") == {(0, 0): 0}


# -- reached --------------------------------------------------------------------------------


def test_an_empty_token_is_always_reached() -> None:
    assert reached({}, {})
    assert reached({}, {(0, 1): 3})


def test_a_mark_is_reached_at_or_past_its_position_and_not_before() -> None:
    assert reached({(0, 1): 5}, {(0, 1): 5})
    assert reached({(0, 1): 5}, {(0, 1): 6, (0, 2): 1})
    assert not reached({(0, 1): 5}, {(0, 1): 4})


def test_every_mark_must_be_reached() -> None:
    wanted = {(0, 1): 5, (1, 3): 2}
    assert reached(wanted, {(0, 1): 5, (1, 3): 2})
    assert not reached(wanted, {(0, 1): 5, (1, 3): 1})
    assert not reached(wanted, {(0, 1): 4, (1, 3): 9})


def test_a_partition_with_no_recorded_progress_has_reached_nothing() -> None:
    assert not reached({(0, 7): 1}, {})
    assert not reached({(0, 7): 1}, {(0, 6): 100, (1, 7): 100})
    assert not reached(decode("0.7:1"), {(0, 1): 3})


# -- waiting: Watch.until -------------------------------------------------------------------


class Progress:
    """The progress table of a read model, written by hand; counts how often it is read."""

    def __init__(self, marks: Marks | None = None) -> None:
        self.rows: list[Row] = []
        self.reads = 0
        self.set(marks or {})

    def set(self, marks: Marks) -> None:
        self.rows = [
            {"shard": shard, "partition": partition, "position": position}
            for (shard, partition), position in marks.items()
        ]

    async def select(self, table: Table, **_: Any) -> list[Row]:
        assert table == progress.APPLIED
        self.reads += 1
        return list(self.rows)

    @property
    def db(self) -> ReadDatabase:
        return cast(ReadDatabase, self)


async def within(seconds: float, coroutine: Any) -> Any:
    async with asyncio.timeout(seconds):
        return await coroutine


async def test_progress_is_read_from_the_applied_positions_table() -> None:
    table = Progress({(0, 1): 4, (1, 0): 2})
    assert await progress_of(table.db) == {(0, 1): 4, (1, 0): 2}


async def test_a_token_already_reached_is_answered_with_the_progress_at_once() -> None:
    table = Progress({(0, 1): 5, (0, 2): 1})
    have = await within(1, Watch(poll_s=10).until(table.db, {(0, 1): 5}, time.monotonic() + 10))
    assert have == {(0, 1): 5, (0, 2): 1}
    assert table.reads == 1


async def test_a_token_not_reached_by_the_deadline_is_none_and_the_wait_ends_at_the_deadline() -> (
    None
):
    table = Progress({(0, 1): 4})
    started = time.monotonic()
    assert await within(2, Watch(poll_s=10).until(table.db, {(0, 1): 5}, started + 0.1)) is None
    assert 0.1 <= time.monotonic() - started < 1
    past = Progress({(0, 1): 4})
    assert await within(1, Watch(poll_s=10).until(past.db, {(0, 1): 5}, time.monotonic())) is None
    assert past.reads == 1


async def test_a_batch_committed_in_this_process_wakes_the_waiter_without_polling() -> None:
    table = Progress({(0, 1): 4})
    watch = Watch(poll_s=10)

    async def waiter() -> Marks | None:
        waiting = asyncio.create_task(watch.until(table.db, {(0, 1): 5}, time.monotonic() + 10))
        await asyncio.sleep(0.01)
        watch.notify()  # a batch that does not reach the token: the waiter reads and waits on
        await asyncio.sleep(0.01)
        assert not waiting.done()
        table.set({(0, 1): 5})
        watch.notify()
        return await waiting

    assert await within(2, waiter()) == {(0, 1): 5}
    assert table.reads == 3


async def test_a_batch_committed_by_another_process_is_seen_by_polling_soon() -> None:
    table = Progress({(0, 1): 4})

    async def waiter() -> Marks | None:
        waiting = asyncio.create_task(Watch().until(table.db, {(0, 1): 5}, time.monotonic() + 10))
        await asyncio.sleep(0.02)
        table.set({(0, 1): 7})  # no notify: another process applied it
        return await waiting

    started = time.monotonic()
    assert await within(2, waiter()) == {(0, 1): 7}
    assert time.monotonic() - started < 0.5


async def test_polling_backs_off_from_the_first_interval_to_fifty_milliseconds() -> None:
    table = Progress({(0, 1): 4})
    assert (
        await within(3, Watch(poll_s=0.01).until(table.db, {(0, 1): 5}, time.monotonic() + 0.5))
        is None
    )
    # Waits of 10, 20, 40, then 50 ms, up to the deadline: about a dozen reads (not 50, nor 5).
    assert 8 <= table.reads <= 16
