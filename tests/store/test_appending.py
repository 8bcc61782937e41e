"""The append rules every adapter shares, as pure functions: no store is opened."""

from __future__ import annotations

import pytest

from adventure_quest.store.appending import (
    MAX_EVENTS_PER_APPEND,
    MAX_STREAM_ID_LENGTH,
    check_expected,
    settle_reused_ids,
    validate_append,
)
from adventure_quest.store.envelope import ANY, NO_STREAM, AppendResult, NewEvent
from adventure_quest.store.errors import ConcurrencyError, InvalidAppendError

ONE = [NewEvent("Happened", b"{}")]


@pytest.mark.parametrize("actual", [0, 1, 7])
def test_any_is_satisfied_by_every_version(actual: int) -> None:
    check_expected("s-1", ANY, actual)


def test_no_stream_is_satisfied_by_a_stream_that_does_not_exist() -> None:
    check_expected("s-1", NO_STREAM, 0)


@pytest.mark.parametrize("actual", [1, 2, 50])
def test_no_stream_is_refused_on_a_stream_that_exists(actual: int) -> None:
    with pytest.raises(ConcurrencyError) as caught:
        check_expected("s-1", NO_STREAM, actual)
    assert (caught.value.stream_id, caught.value.expected, caught.value.actual) == (
        "s-1",
        NO_STREAM,
        actual,
    )


@pytest.mark.parametrize("expected", [1, 2, 7])
def test_an_exact_version_is_refused_on_a_stream_that_does_not_exist(expected: int) -> None:
    with pytest.raises(ConcurrencyError) as caught:
        check_expected("s-1", expected, NO_STREAM)
    assert (caught.value.expected, caught.value.actual) == (expected, 0)


@pytest.mark.parametrize("version", [1, 2, 10_000])
def test_an_exact_version_the_stream_is_at_is_satisfied(version: int) -> None:
    check_expected("s-1", version, version)


@pytest.mark.parametrize(("expected", "actual"), [(1, 2), (3, 2), (2, 1), (8, 1)])
def test_an_exact_version_the_stream_is_not_at_is_refused(expected: int, actual: int) -> None:
    with pytest.raises(ConcurrencyError) as caught:
        check_expected("s-1", expected, actual)
    assert (caught.value.expected, caught.value.actual) == (expected, actual)


def test_the_limits_are_the_documented_ones() -> None:
    assert (MAX_STREAM_ID_LENGTH, MAX_EVENTS_PER_APPEND) == (200, 10_000)


def test_a_stream_id_of_exactly_the_maximum_length_is_accepted() -> None:
    validate_append("x" * 200, NO_STREAM, ONE)


def test_a_stream_id_one_character_too_long_is_refused() -> None:
    with pytest.raises(InvalidAppendError, match="invalid stream id"):
        validate_append("x" * 201, NO_STREAM, ONE)


def test_an_append_of_exactly_the_maximum_number_of_events_is_accepted() -> None:
    validate_append("s-1", NO_STREAM, ONE * 10_000)


def test_an_append_of_one_event_too_many_is_refused() -> None:
    with pytest.raises(InvalidAppendError, match="append of 10001 events exceeds 10000"):
        validate_append("s-1", NO_STREAM, ONE * 10_001)


@pytest.mark.parametrize("expected", [ANY, NO_STREAM, 1, 5])
def test_every_kind_of_expected_version_is_a_valid_append(expected: int) -> None:
    validate_append("s-1", expected, ONE)


@pytest.mark.parametrize("expected", [ANY - 1, -5])
def test_an_expected_version_below_any_is_refused(expected: int) -> None:
    with pytest.raises(InvalidAppendError, match=f"invalid expected version {expected}"):
        validate_append("s-1", expected, ONE)


def test_an_append_of_no_events_is_refused() -> None:
    with pytest.raises(InvalidAppendError, match="append to 's-1' has no events"):
        validate_append("s-1", NO_STREAM, [])


@pytest.mark.parametrize("stream_id", ["", "room\n1", "a\x00b"])
def test_an_empty_or_unprintable_stream_id_is_refused(stream_id: str) -> None:
    with pytest.raises(InvalidAppendError, match="invalid stream id"):
        validate_append(stream_id, NO_STREAM, ONE)


# -- settle_reused_ids ----------------------------------------------------------------------

A, B, C = (NewEvent("Happened", b"{}", event_id=i) for i in ("id-a", "id-b", "id-c"))


def test_a_repeat_of_the_same_append_answers_where_its_last_event_landed() -> None:
    found = {"id-a": ("s-1", 4, 40), "id-b": ("s-1", 5, 41)}
    assert settle_reused_ids("s-1", [A, B], found) == AppendResult("s-1", 5, 41, repeat=True)


def test_a_shorter_second_attempt_answers_where_the_recorded_ids_landed_highest() -> None:
    found = {"id-a": ("s-1", 4, 40), "id-b": ("s-1", 6, 43), "id-c": ("s-1", 5, 42)}
    assert settle_reused_ids("s-1", [A, C, B], found) == AppendResult("s-1", 6, 43, repeat=True)
    assert settle_reused_ids("s-1", [A], {"id-a": ("s-1", 3, 9)}) == AppendResult(
        "s-1", 3, 9, repeat=True
    )


def test_a_repeat_answers_the_shard_of_the_store_that_found_it() -> None:
    found = {"id-a": ("s-1", 4, 40)}
    assert settle_reused_ids("s-1", [A], found, shard=3) == AppendResult(
        "s-1", 4, 40, repeat=True, shard=3
    )


def test_ids_of_the_repeat_recorded_on_other_streams_do_not_count() -> None:
    found = {"id-a": ("s-1", 4, 40), "id-b": ("s-2", 9, 90)}
    assert settle_reused_ids("s-1", [A, B], found) == AppendResult("s-1", 4, 40, repeat=True)


@pytest.mark.parametrize(
    "found",
    [
        {"id-b": ("s-1", 5, 41)},  # the first id is new: not a repeat
        {"id-a": ("s-2", 4, 40)},  # the first id is another stream's
        {"id-a": ("s-2", 4, 40), "id-b": ("s-1", 5, 41)},
    ],
)
def test_any_other_reuse_of_event_ids_is_refused(found: dict[str, tuple[str, int, int]]) -> None:
    with pytest.raises(InvalidAppendError, match="event ids of this append to 's-1' are already"):
        settle_reused_ids("s-1", [A, B], found)
