"""The one back-off every long-running part waits with (store/retry.py), as a model.

Whatever the sequence of failed and successful attempts and of the times between them: each wait
is within [step/2, step] of its doubling step (capped), an outage is announced once when it
begins, reminded at most once per ``remind_s``, and its end said once; the failure count is the
number of failures.
"""

from __future__ import annotations

import asyncio
import itertools
import logging

import pytest
from hypothesis import given
from hypothesis import strategies as st

from adventure_quest.store.errors import StoreUnavailableError
from adventure_quest.store.retry import Backoff, until_done

#: An attempt: it failed (True) or worked (False), and how long after the previous one it came.
attempts = st.lists(st.tuples(st.booleans(), st.floats(0, 100)), max_size=60)


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


class Records(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.lines: list[tuple[float, str]] = []
        self.clock = Clock()

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append((self.clock.now, record.getMessage()))


@given(attempts, st.floats(0, 1))
def test_waits_grow_within_their_jitter_and_each_outage_is_said_once(
    history: list[tuple[bool, float]], jitter: float
) -> None:
    records = Records()
    logger = logging.getLogger(f"test.retry.{id(records)}")
    logger.addHandler(records)
    logger.propagate = False
    logger.setLevel(logging.INFO)
    backoff = Backoff(
        "part", logger=logger, clock=records.clock, jitter=lambda: jitter, remind_s=60.0
    )
    streak = failures = outages = recoveries = 0
    try:
        for failed, gap in history:
            records.clock.now += gap
            if failed:
                streak += 1
                failures += 1
                outages += streak == 1
                delay = backoff.failed(StoreUnavailableError("down"))
                step = min(5.0, 0.05 * 2 ** (streak - 1))
                assert step / 2 <= delay <= step
                assert delay == pytest.approx(step / 2 + jitter * step / 2)
            else:
                recoveries += streak > 0
                streak = 0
                backoff.succeeded()
        assert backoff.failures == failures
        assert backoff.streak == streak
        said = [line for _, line in records.lines]
        assert sum("retrying with back-off" in line for line in said) == outages
        assert sum("recovered after" in line for line in said) == recoveries
        reminders = [t for t, line in records.lines if "still failing" in line]
        starts = [t for t, line in records.lines if "retrying with back-off" in line]
        moments = sorted(starts + reminders)
        for earlier, later in itertools.pairwise(moments):
            if later in reminders:  # a reminder comes remind_s after the last line, at least
                assert later - earlier >= 60.0
    finally:
        logger.removeHandler(records)


async def test_until_done_waits_out_transient_failures_and_stops_when_told() -> None:
    calls: list[int] = []

    async def flaky() -> str:
        calls.append(1)
        if len(calls) < 3:
            raise StoreUnavailableError("not yet")
        return "done"

    stop = asyncio.Event()
    backoff = Backoff("flaky", base_s=0.001)
    assert await until_done(flaky, backoff, stop, (StoreUnavailableError,)) == "done"
    assert (len(calls), backoff.failures, backoff.streak) == (3, 2, 0)

    async def never() -> str:
        raise StoreUnavailableError("down")

    asyncio.get_running_loop().call_later(0.05, stop.set)
    slow = Backoff("never", base_s=10.0, cap_s=10.0)  # a wait far longer than the test
    async with asyncio.timeout(2):
        assert await until_done(never, slow, stop, (StoreUnavailableError,)) is None

    async def broken() -> str:
        raise ValueError("a bug is not waited out")

    with pytest.raises(ValueError, match="bug"):
        await until_done(broken, Backoff("broken"), asyncio.Event(), (StoreUnavailableError,))
