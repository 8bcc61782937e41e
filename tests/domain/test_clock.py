"""The world clock's decisions as pure functions: which ticks are due, and the state they leave."""

from __future__ import annotations

from adventure_quest.domain import clock
from adventure_quest.domain.clock import MAX_CATCH_UP, ClockState, due, evolve
from adventure_quest.domain.events import PlayerMoved, WorldTicked


def test_a_clock_that_never_ticked_is_at_tick_zero() -> None:
    assert ClockState() == ClockState(0, 0.0)
    assert clock.CLOCK_STREAM == "world-clock"


def test_the_first_tick_is_due_at_once_whatever_the_time() -> None:
    assert due(ClockState(), 1000.5, 60) == [WorldTicked(1, 1000.5)]
    assert due(ClockState(), 0.0, 60) == [WorldTicked(1, 0.0)]


def test_nothing_is_due_before_a_period_has_passed_since_the_last_tick() -> None:
    assert due(ClockState(3, 100.0), 159.9, 60) == []
    assert due(ClockState(3, 100.0), 100.0, 60) == []


def test_the_next_tick_is_due_exactly_one_period_after_the_last() -> None:
    assert due(ClockState(3, 100.0), 160.0, 60) == [WorldTicked(4, 160.0)]
    assert due(ClockState(3, 100.0), 219.0, 60) == [WorldTicked(4, 160.0)]


def test_a_clock_that_was_down_appends_every_missed_tick_in_order_at_its_due_time() -> None:
    assert due(ClockState(3, 100.0), 280.0, 60) == [
        WorldTicked(4, 160.0),
        WorldTicked(5, 220.0),
        WorldTicked(6, 280.0),
    ]


def test_catching_up_stops_at_the_most_ticks_per_decision_and_goes_on_from_there() -> None:
    assert MAX_CATCH_UP == 100
    first = due(ClockState(1, 0.0), 1000.0, 1)
    assert len(first) == MAX_CATCH_UP
    assert first[0] == WorldTicked(2, 1.0)
    assert first[-1] == WorldTicked(101, 100.0)
    state = ClockState()
    for event in first:
        state = evolve(state, event)
    assert state == ClockState(101, 100.0)
    assert due(state, 1000.0, 1)[0] == WorldTicked(102, 101.0)
    assert len(due(ClockState(1, 0.0), float(MAX_CATCH_UP), 1)) == MAX_CATCH_UP


def test_events_other_than_ticks_leave_the_clock_alone() -> None:
    assert evolve(ClockState(4, 12.5), PlayerMoved("hall", "yard", "north")) == ClockState(4, 12.5)


def test_a_tick_moves_the_clock_to_that_tick_and_its_time() -> None:
    assert evolve(ClockState(4, 12.5), WorldTicked(5, 72.5)) == ClockState(5, 72.5)
