"""PostgreSQL pool sizes are settings of each process (issue 12, item 7).

They were fixed (8 per event store shard, 4 for the read database): a deployment could not fit
its processes under the server's max_connections. ``store_pool_size`` (AQ_STORE_POOL_SIZE) and
``read_pool_size`` (AQ_READ_POOL_SIZE) size them; under a burst of concurrent requests the
read database sees no more connections from the process than its pool allows.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import asyncpg
import pytest

from adventure_quest.bootstrap.parts import Parts
from adventure_quest.config import Settings, SettingsError, load_settings
from adventure_quest.store.migrate import upgrade_store
from tests.api.server import create, live, settings_for
from tests.postgres import scratch_database, url


async def connections_to(database_url: str) -> int:
    name = database_url.rsplit("/", 1)[1]
    admin = await asyncpg.connect(url("postgres"))
    try:
        count: int = await admin.fetchval(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = $1", name
        )
    finally:
        await admin.close()
    return count


def test_the_pool_sizes_come_from_the_environment_and_are_checked() -> None:
    env = {"AQ_STORE_POOL_SIZE": "3", "AQ_READ_POOL_SIZE": "2"}
    settings = load_settings(env)
    assert (settings.store_pool_size, settings.read_pool_size) == (3, 2)
    assert (Settings().store_pool_size, Settings().read_pool_size) == (8, 4)
    for bad in ("0", "1001"):
        with pytest.raises(SettingsError, match=r"read_pool_size must be 1\.\.1000"):
            load_settings({"AQ_READ_POOL_SIZE": bad})


async def test_a_process_opens_no_more_read_connections_than_its_pool_holds(
    tmp_path: Path,
) -> None:
    store, read = await scratch_database("pool_store"), await scratch_database("pool_read")
    await upgrade_store(store)
    settings = settings_for(
        tmp_path, store_url=store, read_db_url=read, store_pool_size=2, read_pool_size=2
    )
    async with Parts(settings) as parts:
        assert parts.read_database()._pool_size == 2  # type: ignore[attr-defined]
        assert parts.event_store()._pool_size == 2  # type: ignore[attr-defined]
        assert parts.snapshots()._pool_size == 1  # type: ignore[attr-defined]
    async with live(settings) as client:
        me, _, created = await create(client, "Crowd")
        token = {"consistency": created["consistency"]}
        # Token queries go to the read database every time (no cache answers them).
        answers = await asyncio.gather(
            *(client.get(f"/players/{me}", params=token) for _ in range(60))
        )
        assert {a.status_code for a in answers} == {200}
        assert await connections_to(read) <= 2
