"""Consistency tokens as pure functions: building, writing, reading and comparing them."""

from __future__ import annotations

import pytest

from adventure_quest.api.consistency import MAX_ENTRIES, decode, encode, reached, token_for
from adventure_quest.api.errors import ApiError
from adventure_quest.messaging.ports import partition_of
from adventure_quest.store.sharding import shard_of


def mark_of(stream_id: str, shards: int, partitions: int) -> tuple[int, int]:
    return shard_of(stream_id, shards), partition_of(stream_id, partitions)


# -- token_for ------------------------------------------------------------------------------


def test_a_single_shard_and_partition_keeps_the_highest_position_of_the_command() -> None:
    assert token_for({"player-a": 7, "room-b": 12, "room-c": 3}, 1, 1) == {(0, 0): 12}


def test_no_appends_make_an_empty_token() -> None:
    assert token_for({}, 2, 16) == {}


def test_each_stream_lands_on_its_shard_and_partition() -> None:
    streams = [f"room-{n}" for n in range(40)]
    marks = [mark_of(s, 2, 16) for s in streams]
    first, *_ = streams
    alike = next(s for s, m in zip(streams[1:], marks[1:], strict=True) if m == marks[0])
    other = next(s for s, m in zip(streams, marks, strict=True) if m != marks[0])
    assert token_for({first: 5, alike: 9, other: 4}, 2, 16) == {
        mark_of(first, 2, 16): 9,
        mark_of(other, 2, 16): 4,
    }
    assert token_for({first: 9, alike: 5}, 2, 16) == {mark_of(first, 2, 16): 9}


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
    with pytest.raises(ApiError) as caught:
        decode(text)
    assert caught.value.code == "invalid_consistency_token"


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
