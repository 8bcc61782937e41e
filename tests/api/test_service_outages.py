"""A backing service that goes away is answered in the one error shape on the fast lanes too.

Seen (issue 12): with Redis unreachable, ``GET /rooms/village_square`` (the fast read lane)
answered a plain-text 500 with a traceback, while every other route answered the documented
``503 unavailable`` JSON; a store outage inside the fast command lane's token check did the same.
The tests run a Redis server and a PostgreSQL server of their own on spare ports and stop them.
"""

from __future__ import annotations

import asyncio
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from adventure_quest.store.migrate import upgrade_store
from tests.api.server import create, error_code, free_port, live, settings_for
from tests.pg_replica import lone_server


@pytest.fixture
def private_redis(tmp_path: Path) -> Iterator[subprocess.Popen[bytes]]:
    """A redis-server on a spare port, without persistence; killed at the end, whatever happens."""
    port = free_port()
    args = ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", ""]
    server = subprocess.Popen(
        [*args, "--appendonly", "no", "--dir", str(tmp_path)], stdout=subprocess.DEVNULL
    )
    server.port = port  # type: ignore[attr-defined]
    try:
        client = redis.Redis(port=port)
        deadline = time.monotonic() + 10
        while True:
            try:
                client.ping()
                break
            except redis.ConnectionError:
                if time.monotonic() > deadline or server.poll() is not None:
                    raise
                time.sleep(0.05)
        client.close()
        yield server
    finally:
        server.kill()
        server.wait()


async def test_the_fast_read_lane_answers_503_json_when_redis_is_unreachable(
    tmp_path: Path, private_redis: subprocess.Popen[bytes]
) -> None:
    port = private_redis.port  # type: ignore[attr-defined]
    settings = settings_for(tmp_path, cache_url=f"redis://127.0.0.1:{port}/0")
    async with live(settings, socket=True) as client:  # what a client sees over the wire
        me, _, created = await create(client, "Outage")
        token = {"consistency": created["consistency"]}
        full = await client.get("/rooms/village_square", params=token)
        assert full.status_code == 200
        assert (await client.get("/rooms/village_square")).content == full.content  # cached

        private_redis.kill()
        await asyncio.to_thread(private_redis.wait)
        for path in ("/rooms/village_square", f"/players/{me}", "/world"):
            fast = await client.get(path)  # no query: the fast lane's path
            assert fast.status_code == 503, (path, fast.text)
            assert fast.headers["content-type"].startswith("application/json"), path
            assert error_code(fast) == "unavailable", path


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
