"""A backing service that goes away, under the fast lanes.

Seen (issue 12): with Redis unreachable, ``GET /rooms/village_square`` (the fast read lane)
answered a plain-text 500 with a traceback, while every other route answered the documented
``503 unavailable`` JSON; a store outage inside the fast command lane's token check did the same.
Now queries go on past a cache that is gone (answered, fresh, from the read database, and not
stored), and a store outage is ``503 unavailable`` JSON on every lane. The tests run a Redis
server and a PostgreSQL server of their own on spare ports and stop them.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from adventure_quest.store.migrate import upgrade_store
from tests.api.server import create, error_code, live, settings_for
from tests.pg_replica import lone_server
from tests.prometheus_text import sample
from tests.services import RedisServer


async def test_queries_are_answered_from_the_read_database_while_redis_is_unreachable(
    tmp_path: Path, redis_server: RedisServer, caplog: pytest.LogCaptureFixture
) -> None:
    settings = settings_for(tmp_path, cache_url=redis_server.url)
    async with live(settings, socket=True) as client:  # what a client sees over the wire
        me, _, created = await create(client, "Outage")
        token = {"consistency": created["consistency"]}
        full = await client.get("/rooms/village_square", params=token)
        assert full.status_code == 200
        assert (await client.get("/rooms/village_square")).content == full.content  # cached

        await asyncio.to_thread(redis_server.kill)
        for path in ("/rooms/village_square", f"/players/{me}", "/world"):
            fast = await client.get(path)  # no query: the fast lane's path, then the app's
            assert fast.status_code == 200, (path, fast.text)
            assert fast.headers["content-type"].startswith("application/json"), path
            read = await client.get(path, params=token)  # straight from the read database
            assert fast.json() == read.json(), path
        # Said once, not per query.
        said = [r for r in caplog.records if "answering from the read database" in r.message]
        assert len(said) == 1
        assert sample((await client.get("/metrics")).text, "aq_cache_bypassed_total") >= 3


async def test_the_fast_command_lane_answers_503_json_when_the_store_is_unreachable(
    tmp_path: Path,
) -> None:
    with lone_server() as server:
        url = server.url("postgres")
        settings = settings_for(tmp_path, store_url=url, aggregate_cache_size=0)
        await upgrade_store(url)
        async with live(settings, socket=True) as client:
            me, token, _ = await create(client, "Outage")
            headers = {"Authorization": f"Bearer {token}"}
            said = await client.post(f"/players/{me}/say", json={"text": "hi"}, headers=headers)
            assert said.status_code == 200, said.text

            await asyncio.to_thread(server.stop)
            # The fast lane checks the token against the store first: it is gone.
            said = await client.post(f"/players/{me}/say", json={"text": "hi"}, headers=headers)
            assert said.status_code == 503, said.text
            assert said.headers["content-type"].startswith("application/json")
            assert error_code(said) == "unavailable"
