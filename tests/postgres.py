"""The PostgreSQL the service tests use: 127.0.0.1:5432 (or AQ_TEST_POSTGRES), never mocked.

Two databases are created (dropped first) once per test run and migrated with the project's own
migrations; each store a test opens starts from empty tables. An unreachable server fails the
tests that need it: it is never a reason to skip them.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Coroutine
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import asyncpg

from adventure_quest.store.postgres.connect import upgrade

SERVER = os.environ.get("AQ_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432")
# Named after this process, so test runs side by side (a developer's and CI's) never collide.
DATABASES = (f"aq_test_{os.getpid()}_0", f"aq_test_{os.getpid()}_1")
_prepared: list[bool] = []


def url(database: str) -> str:
    return f"{SERVER}/{database}"


async def _prepare() -> None:
    admin = await asyncpg.connect(url("postgres"), timeout=10)
    try:
        for database in DATABASES:
            await admin.execute(f"DROP DATABASE IF EXISTS {database} WITH (FORCE)")
            await admin.execute(f"CREATE DATABASE {database}")
    finally:
        await admin.close()
    for database in DATABASES:
        await upgrade(url(database))


async def _empty(count: int) -> None:
    for database in DATABASES[:count]:
        conn = await asyncpg.connect(url(database), timeout=10)
        try:
            # Checkpoints too: positions start again at 1, and a relay must not skip them.
            await conn.execute("TRUNCATE aq_events, aq_snapshots, aq_checkpoints")
        finally:
            await conn.close()


def _run_aside(coroutine: Coroutine[Any, Any, None]) -> None:
    """Run set-up on its own loop in a thread: callers may be inside a running loop."""
    with ThreadPoolExecutor(1) as pool:
        pool.submit(asyncio.run, coroutine).result()


_scratch: list[str] = []


async def scratch_database(name: str) -> str:
    """The URL of a new, empty database (no schema) for this run, dropped when the run ends."""
    database = f"aq_test_{os.getpid()}_{name}"
    admin = await asyncpg.connect(url("postgres"), timeout=10)
    try:
        await admin.execute(f"DROP DATABASE IF EXISTS {database} WITH (FORCE)")
        await admin.execute(f"CREATE DATABASE {database}")
    finally:
        await admin.close()
    _scratch.append(database)
    return url(database)


async def _drop(databases: list[str]) -> None:
    admin = await asyncpg.connect(url("postgres"), timeout=10)
    try:
        for database in databases:
            await admin.execute(f"DROP DATABASE IF EXISTS {database} WITH (FORCE)")
    finally:
        await admin.close()


def drop_all() -> None:
    """Remove this run's databases (called once the session ends)."""
    databases = [*DATABASES[: 2 if _prepared else 0], *_scratch]
    if databases:
        _run_aside(_drop(databases))


def fresh(count: int) -> list[str]:
    """URLs of ``count`` migrated databases with empty tables."""
    if not _prepared:
        _run_aside(_prepare())
        _prepared.append(True)
    _run_aside(_empty(count))
    return [url(database) for database in DATABASES[:count]]
