"""Rate limits: a flood of says or of creations gets what its token bucket allows, and not one
event more is written; the refusals are ``429 rate_limited`` with ``Retry-After``, on both
command lanes; other characters and other addresses are not held back; API processes that share
a Redis share the buckets, and commands go on when that Redis goes away.

Seen (issue 12): one client appended thousands of ``say`` events a second, and created
characters as fast, every event kept forever.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis
from hypothesis import given, settings
from hypothesis import strategies as st

from adventure_quest.api.limits import MemoryBuckets
from adventure_quest.app.aggregates import player_id_for
from adventure_quest.config import DEFAULT_RATE_LIMITS, Rate, parse_rate_limits
from tests.api.server import bearer, create, error_code, live, settings_for
from tests.services import RedisServer

SHARED_REDIS = "redis://127.0.0.1:6379/0"
#: The lanes of a command: the fast lane takes a plain well-formed request; a query string
#: sends the same request through the Litestar application (tests/api/test_fast_commands.py).
LANES = {"fast": "", "application": "?lane=application"}


@pytest.fixture
def prefix() -> Iterator[str]:
    """A Redis key prefix of this test's own on the shared server; its keys go at the end."""
    mine = f"aq:test:limits:{uuid.uuid4().hex[:8]}:"
    yield mine
    client = redis.Redis.from_url(SHARED_REDIS)
    try:
        for key in client.scan_iter(match=f"{mine}*", count=1000):
            client.delete(key)
    finally:
        client.close()


def caches(prefix: str) -> dict[str, dict[str, Any]]:
    return {
        "memory": {},
        "redis": {"cache_url": SHARED_REDIS, "cache_prefix": prefix},
    }


def from_address(client: httpx.AsyncClient, host: str) -> httpx.AsyncClient:
    """A client of the same in-process application whose connection comes from ``host``."""
    transport = client._transport
    assert isinstance(transport, httpx.ASGITransport)
    moved = httpx.ASGITransport(app=transport.app, client=(host, 40000))
    return httpx.AsyncClient(base_url=client.base_url, transport=moved, timeout=10)


def assert_rate_limited(answer: httpx.Response, most_s: float) -> int:
    """Check a 429 answer (shape, code, header); its ``Retry-After``, at most ``most_s``."""
    assert answer.status_code == 429, answer.text
    assert answer.headers["content-type"].startswith("application/json")
    assert error_code(answer) == "rate_limited"
    retry_after = answer.headers["retry-after"]
    assert retry_after.isdigit(), retry_after
    assert 1 <= int(retry_after) <= math.ceil(most_s), retry_after
    return int(retry_after)


async def said(client: httpx.AsyncClient, player_id: str) -> int:
    """How many PlayerSaid events the character's stream holds (its history, read whole)."""
    answer = await client.get(f"/players/{player_id}/events", params={"limit": 100})
    assert answer.status_code == 200, answer.text
    assert answer.json()["next_after"] is None  # one page: every event
    return sum(e["type"] == "PlayerSaid" for e in answer.json()["events"])


@pytest.mark.parametrize("lane", LANES)
@pytest.mark.parametrize("cache", ["memory", "redis"])
async def test_a_flood_of_says_gets_the_bucket_and_not_one_event_more(
    tmp_path: Path, prefix: str, lane: str, cache: str
) -> None:
    say = DEFAULT_RATE_LIMITS["say"]  # 5 a second, bursts of 10: the default is what holds
    async with live(settings_for(tmp_path, **caches(prefix)[cache])) as client:
        me, token, _ = await create(client, "Chatty")
        other, other_token, _ = await create(client, "Quiet")
        path = f"/players/{me}/say{LANES[lane]}"

        began = time.perf_counter()
        answers = [
            await client.post(path, json={"text": f"spam {n}"}, headers=bearer(token))
            for n in range(40)
        ]
        elapsed = time.perf_counter() - began
        accepted = [a for a in answers if a.status_code == 200]
        refused = [a for a in answers if a.status_code != 200]
        # The burst, and what refilled while the flood lasted: no more.
        assert say.burst <= len(accepted) <= say.burst + say.per_s * elapsed, elapsed
        assert all(a.status_code == 200 for a in answers[: say.burst])  # the burst came first
        for answer in refused:
            assert_rate_limited(answer, 1 / say.per_s)
        assert await said(client, me) == len(accepted)  # nothing refused was written

        # Another character's says, and this character's other commands, go through.
        for n in range(3):
            heard = await client.post(
                f"/players/{other}/say{LANES[lane]}",
                json={"text": f"hi {n}"},
                headers=bearer(other_token),
            )
            assert heard.status_code == 200, heard.text
        moved = await client.post(
            f"/players/{me}/move{LANES[lane]}", json={"direction": "n"}, headers=bearer(token)
        )
        assert moved.status_code == 200, moved.text

        # Retry-After is honest: once it has passed, the character may speak again.
        for _ in range(say.burst + 1):
            last = await client.post(path, json={"text": "more"}, headers=bearer(token))
            if last.status_code == 429:
                break
        await asyncio.sleep(assert_rate_limited(last, 1 / say.per_s))
        again = await client.post(path, json={"text": "again"}, headers=bearer(token))
        assert again.status_code == 200, again.text


async def test_a_request_that_is_not_the_characters_own_spends_nothing_of_its_bucket(
    tmp_path: Path,
) -> None:
    limits = parse_rate_limits("say=1/h:2")
    async with live(settings_for(tmp_path, rate_limits=limits)) as client:
        me, token, _ = await create(client, "Target")
        for _ in range(5):
            answer = await client.post(
                f"/players/{me}/say", json={"text": "x"}, headers=bearer("no")
            )
            assert answer.status_code == 403
        for _ in range(2):
            answer = await client.post(
                f"/players/{me}/say", json={"text": "x"}, headers=bearer(token)
            )
            assert answer.status_code == 200, answer.text


async def test_a_flood_of_creations_from_one_address_gets_the_bucket_and_writes_no_more(
    tmp_path: Path,
) -> None:
    rate = DEFAULT_RATE_LIMITS["create"]  # 10 a minute, bursts of 20
    async with live(settings_for(tmp_path)) as client:
        began = time.perf_counter()
        answers = [await client.post("/players", json={"name": f"Bot{n}"}) for n in range(30)]
        elapsed = time.perf_counter() - began
        accepted = [a for a in answers if a.status_code == 201]
        assert rate.burst <= len(accepted) <= rate.burst + rate.per_s * elapsed, elapsed
        assert all(a.status_code == 201 for a in answers[: rate.burst])
        for answer in answers[len(accepted) :]:
            assert_rate_limited(answer, 1 / rate.per_s)
        # A character's id follows from its name: a refused name has no stream at all.
        for n, answer in enumerate(answers):
            history = await client.get(f"/players/{player_id_for(f'Bot{n}')}/events")
            assert history.status_code == (200 if answer.status_code == 201 else 404), n

        async with from_address(client, "192.0.2.7") as elsewhere:
            made = await elsewhere.post("/players", json={"name": "Neighbour"})
            assert made.status_code == 201, made.text
        again = await client.post("/players", json={"name": "BotAgain"})
        assert_rate_limited(again, 1 / rate.per_s)


async def test_two_api_processes_sharing_a_redis_share_the_buckets(
    tmp_path: Path, prefix: str
) -> None:
    shared: dict[str, Any] = {
        "cache_url": SHARED_REDIS,
        "cache_prefix": prefix,
        "rate_limits": parse_rate_limits("create=1/h:3"),
    }
    async with (
        live(settings_for(tmp_path / "one", **shared)) as one,
        live(settings_for(tmp_path / "two", **shared)) as two,
    ):
        statuses = [
            (await server.post("/players", json={"name": f"Twin{n}"})).status_code
            for n, server in enumerate([one, two, one, two, one])
        ]
    assert statuses == [201, 201, 201, 429, 429]


async def test_commands_go_on_within_limits_of_their_own_when_the_limits_redis_goes_away(
    tmp_path: Path, redis_server: RedisServer, caplog: pytest.LogCaptureFixture
) -> None:
    limits = parse_rate_limits("say=1/h:3")
    settings = settings_for(tmp_path, cache_url=redis_server.url, rate_limits=limits)
    caplog.set_level(logging.WARNING, logger="adventure_quest.api.redis_limits")
    async with live(settings) as client:
        me, token, _ = await create(client, "Steady")

        async def statuses(count: int) -> list[int]:
            path = f"/players/{me}/say"
            return [
                (await client.post(path, json={"text": "hi"}, headers=bearer(token))).status_code
                for _ in range(count)
            ]

        assert await statuses(4) == [200, 200, 200, 429]  # the bucket in Redis
        await asyncio.to_thread(redis_server.kill)
        # No 5xx: this process's own buckets take over, and the limit still holds in it.
        assert await statuses(4) == [200, 200, 200, 429]
        unreachable = [r for r in caplog.records if "Redis is unreachable" in r.getMessage()]
        assert len(unreachable) == 1  # said once, not once a command

        await asyncio.to_thread(redis_server.start)  # empty: every bucket full again
        await asyncio.sleep(1.1)  # past the pause after a failure
        assert await statuses(1) == [200]
        assert any("Redis answers again" in r.getMessage() for r in caplog.records)
        found = redis.Redis(port=redis_server.port)
        try:
            assert found.exists(f"aq:cache:rl:say:{me}") == 1  # spent in Redis again
        finally:
            found.close()
        assert await said(client, me) == 7


async def test_the_openapi_document_gives_429_on_every_limited_route(tmp_path: Path) -> None:
    async with live(settings_for(tmp_path)) as client:
        document = (await client.get("/openapi.json")).json()
    limited = {
        (method, path)
        for path, methods in document["paths"].items()
        for method, operation in methods.items()
        if "429" in operation.get("responses", {})
    }
    commands = {"move", "take", "drop", "use", "attack", "say", "respawn"}
    assert limited == {("post", "/players")} | {
        ("post", f"/players/{{player_id}}/{verb}") for verb in commands
    }
    answer = document["paths"]["/players/{player_id}/say"]["post"]["responses"]["429"]
    assert "Retry-After" in answer["description"]


# -- the bucket itself, on a clock of the test's own -------------------------------------------


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def level(rate: Rate, accepted: list[float], now: float) -> float:
    """The tokens a bucket full at the start holds at ``now``, from the requests it served.

    A bucket that refills at ``r`` up to ``B`` and lost one token per request it served holds
    ``min(B, B + r * (now - a_i) - (requests served since a_i, a_i included))`` over every
    served request ``a_i`` (the last time it could have been full is just before one of them).
    """
    held = float(rate.burst)
    for i, at in enumerate(accepted):
        held = min(held, rate.burst + rate.per_s * (now - at) - (len(accepted) - i))
    return held


rates = st.builds(
    Rate,
    count=st.floats(min_value=0.01, max_value=1000),
    unit=st.sampled_from(["s", "m", "h"]),
    burst=st.integers(min_value=1, max_value=30),
)


@settings(max_examples=300, deadline=None)
@given(rate=rates, gaps=st.lists(st.floats(min_value=0, max_value=3), max_size=150))
def test_the_bucket_serves_at_most_burst_plus_rate_times_interval_and_refuses_only_when_empty(
    rate: Rate, gaps: list[float]
) -> None:
    clock = FakeClock()
    buckets = MemoryBuckets(clock=clock)
    tick = 1 / rate.per_s  # gaps in ticks: time for one token, whatever the rate's unit
    eps = 1e-6
    accepted: list[float] = []
    for gap in gaps:
        clock.now += gap * tick
        held = level(rate, accepted, clock.now)
        wait = buckets.spend("key", rate)
        if wait == 0:
            assert held >= 1 - eps, (held, accepted)
            accepted.append(clock.now)
        else:
            assert held < 1 + eps, (held, accepted)  # refused only when empty
            # The wait is the time to the next token, no more and no less.
            assert math.isclose(held + wait * rate.per_s, 1, abs_tol=eps), (held, wait)
    for i, first in enumerate(accepted):
        for j in range(i, len(accepted)):
            interval = accepted[j] - first
            assert j - i + 1 <= rate.burst + rate.per_s * interval + eps, (i, j, interval)


def test_the_buckets_in_memory_are_bounded_and_keep_the_busy_ones() -> None:
    clock = FakeClock()
    buckets = MemoryBuckets(capacity=50, clock=clock)
    rate = Rate(1, "h", 2)
    assert [buckets.spend("flooder", rate) > 0 for _ in range(3)] == [False, False, True]
    for n in range(10_000):
        buckets.spend(f"passer-by {n}", rate)
        if n % 40 == 0:
            assert buckets.spend("flooder", rate) > 0  # still empty: never pushed out
    assert len(buckets) == 50
