"""Each role opens only what it runs (the table in bootstrap/roles.py), against a real NATS.

Every role runs in this test's process through ``serve`` with its own ``Parts``, so what it
opened can be read back; what is visible from outside is checked too: whether the read
database's file exists and holds the read-model tables, whether anything listens on the port.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import sqlite3
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from adventure_quest.bootstrap.parts import (
    CACHE,
    CHECKPOINTS,
    EVENT_STORE,
    QUEUE,
    RATE_LIMITS,
    READ_DATABASE,
    READ_TABLES,
    RELAYS,
    SNAPSHOTS,
    Parts,
)
from adventure_quest.bootstrap.serve import serve
from adventure_quest.config import Settings
from adventure_quest.store.sqlite.events import SQLiteEventStore
from tests.api.server import settings_for
from tests.api.test_roles import drop_stream
from tests.conftest import run

ADMIN = {"Authorization": "Bearer admin-secret"}
WRITE_SIDE = {EVENT_STORE, SNAPSHOTS}
RELAY = {EVENT_STORE, CHECKPOINTS, QUEUE, RELAYS}
WORKER = {*WRITE_SIDE, QUEUE, READ_DATABASE, READ_TABLES, CACHE}
API = {*WRITE_SIDE, READ_DATABASE, CACHE, RATE_LIMITS}


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    """Embedded stores in ``tmp_path``, a NATS stream of this test's own (deleted after)."""
    stream = f"AQPARTS{uuid.uuid4().hex[:8].upper()}"
    return settings_for(tmp_path, queue_url=f"nats://127.0.0.1:4222/{stream}")


@pytest.fixture(autouse=True)
def _drop_the_stream(settings: Settings) -> object:
    yield
    run(drop_stream(settings.queue_url.rsplit("/", 1)[1]))


def read_tables(path: Path) -> set[str]:
    with contextlib.closing(sqlite3.connect(path)) as db:
        return {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}


def listening(port: int) -> bool:
    with socket.socket() as probe:
        return probe.connect_ex(("127.0.0.1", port)) == 0


@contextlib.asynccontextmanager
async def serving(settings: Settings, role: str) -> AsyncIterator[Parts]:
    """``serve`` of ``role`` until the block ends; yields its parts once it started."""
    started, stop = asyncio.Event(), asyncio.Event()
    async with Parts(settings) as parts:
        server = asyncio.create_task(serve(settings, role, started=started, stop=stop, parts=parts))
        waiter = asyncio.create_task(started.wait())
        await asyncio.wait([server, waiter], return_when=asyncio.FIRST_COMPLETED)
        if server.done():
            waiter.cancel()
            server.result()
        try:
            yield parts
        finally:
            stop.set()
            await server


async def test_a_relay_opens_the_logs_the_checkpoints_and_the_queue_and_no_read_database(
    settings: Settings,
) -> None:
    async with serving(settings, "relay") as parts:
        assert not listening(settings.port)
        opened = set(parts.opened)
    assert opened == RELAY
    assert not (settings.data_dir / "read.sqlite").exists()
    assert not any(settings.data_dir.glob("read*"))


async def test_a_worker_creates_the_read_tables_and_runs_no_relay_and_no_http(
    settings: Settings,
) -> None:
    async with serving(settings, "worker") as parts:
        assert not listening(settings.port)
        opened = set(parts.opened)
    assert opened == WORKER
    assert {"player_details", "room_view", "applied_positions"} <= read_tables(
        Path(settings.read_database_url.removeprefix("sqlite:///"))
    )


async def test_an_api_opens_no_queue_and_creates_no_table_and_says_how_to_create_them(
    settings: Settings,
) -> None:
    async with serving(settings, "api") as parts:
        opened = set(parts.opened)
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{settings.port}") as client:
            ready = await client.get("/readyz")
        after = set(parts.opened)
    assert opened == API
    assert after == API  # /readyz opened nothing more
    assert ready.status_code == 503
    assert "aq db upgrade" in ready.json()["checks"]["read_database"]
    assert read_tables(Path(settings.read_database_url.removeprefix("sqlite:///"))) == set()


async def test_an_api_opens_the_checkpoints_and_the_queue_once_lag_status_is_asked_for(
    settings: Settings,
) -> None:
    async def upgrade() -> None:  # what `aq db upgrade` does to the read database
        async with Parts(settings) as parts:
            await parts.runner(create_tables=True)

    await upgrade()
    async with serving(settings, "api") as parts:
        before = set(parts.opened)
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{settings.port}") as client:
            ready = (await client.get("/readyz")).status_code
            status = await client.get("/admin/status", headers=ADMIN)
        assert status.status_code == 200, status.text
        assert status.json()["dead_letters"] == 0
        relays, after = len(status.json()["relays"]), set(parts.opened)
    assert before == API
    assert ready == 200
    assert relays == 1
    assert after == API | {CHECKPOINTS, QUEUE}  # no relay is made to read where one got to


async def test_all_in_one_process_opens_every_part_once(settings: Settings) -> None:
    async with serving(settings, "all") as parts:
        assert listening(settings.port)
        opened = parts.opened
    assert sorted(opened) == sorted(API | RELAY | WORKER)  # each once


async def test_the_stream_cache_size_reaches_the_event_store(tmp_path: Path) -> None:
    """``AQ_STREAM_CACHE_SIZE`` had no effect under ``aq serve`` and ``aq process``."""
    settings = settings_for(tmp_path, stream_cache_size=7)

    async with serving(settings, "all") as parts:
        store = parts.event_store()
        assert isinstance(store, SQLiteEventStore)
        capacity = store.cached_versions.capacity
    assert capacity == 7
