"""Connecting to PostgreSQL, and turning driver errors into store errors with clear fixes."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from urllib.parse import urlsplit

import asyncpg
from asyncpg.pool import PoolConnectionProxy

from adventure_quest.store.errors import (
    StoreSchemaError,
    StoreUnavailableError,
    StoreUrlError,
    parse_url,
)
from adventure_quest.store.postgres.schema import SCHEMA_VERSION

_UNAVAILABLE = (
    OSError,
    TimeoutError,
    asyncpg.PostgresConnectionError,
    asyncpg.InterfaceError,
    asyncpg.exceptions.InternalClientError,
    asyncpg.exceptions.AdminShutdownError,
    asyncpg.exceptions.CannotConnectNowError,
    asyncpg.exceptions.CrashShutdownError,
    asyncpg.exceptions.TooManyConnectionsError,
)


def where(dsn: str) -> str:
    """``host:port/database`` of a DSN, without credentials, for messages."""
    parts = urlsplit(dsn)
    return f"{parts.hostname or 'localhost'}:{parts.port or 5432}{parts.path or '/'}"


def check_url(dsn: str) -> str:
    """Refuse a PostgreSQL URL that cannot be parsed."""
    parts = parse_url(dsn)
    if parts.scheme not in ("postgresql", "postgres") or not parts.path.strip("/"):
        raise StoreUrlError(
            f"cannot parse store URL {dsn!r}: expected postgresql://USER@HOST:PORT/DATABASE"
        )
    return dsn


@contextlib.asynccontextmanager
async def translated(dsn: str) -> AsyncIterator[None]:
    """Map driver errors: connection trouble is retryable, a missing schema names the fix."""
    try:
        yield
    except asyncpg.exceptions.InvalidCatalogNameError as error:
        raise StoreUnavailableError(
            f"database {where(dsn)} does not exist; create it (createdb) and run "
            f"`aq db upgrade --store {dsn}`",
            retryable=False,
        ) from error
    except (
        asyncpg.exceptions.UndefinedTableError,
        asyncpg.exceptions.UndefinedFunctionError,
    ) as error:
        raise StoreSchemaError(
            f"{where(dsn)} has no Adventure Quest schema ({error}); "
            f"run `aq db upgrade --store {dsn}`"
        ) from error
    except asyncpg.exceptions.InvalidAuthorizationSpecificationError as error:
        raise StoreUnavailableError(
            f"PostgreSQL at {where(dsn)} refused the login: {error}", retryable=False
        ) from error
    except _UNAVAILABLE as error:
        raise StoreUnavailableError(
            f"lost or could not reach PostgreSQL at {where(dsn)} ({type(error).__name__}: "
            f"{error}); is the server running? The operation can be retried."
        ) from error


async def schema_version(conn: asyncpg.Connection | PoolConnectionProxy) -> int:
    """The schema version recorded in the database; 0 when it has none."""
    exists = await conn.fetchval("SELECT to_regclass('aq_schema_migrations') IS NOT NULL")
    if not exists:
        return 0
    return int(await conn.fetchval("SELECT coalesce(max(version), 0) FROM aq_schema_migrations"))


async def connect_pool(dsn: str, size: int) -> asyncpg.Pool:
    """A connection pool to a database whose schema is current; raises a clear error if not."""
    check_url(dsn)
    async with translated(dsn):
        pool = await asyncpg.create_pool(dsn, min_size=1, max_size=size, timeout=10)
        try:
            async with pool.acquire() as conn:
                version = await schema_version(conn)
        except BaseException:
            await pool.close()
            raise
    if version == 0:
        await pool.close()
        raise StoreSchemaError(
            f"{where(dsn)} has no Adventure Quest schema; run `aq db upgrade --store {dsn}`"
        )
    if version != SCHEMA_VERSION:
        await pool.close()
        newer = version > SCHEMA_VERSION
        raise StoreSchemaError(
            f"{where(dsn)} has schema version {version}, this code needs {SCHEMA_VERSION}; "
            + ("upgrade Adventure Quest" if newer else f"run `aq db upgrade --store {dsn}`")
        )
    return pool


async def upgrade(dsn: str) -> list[int]:
    """Apply the migrations the database lacks, in order; returns the versions applied."""
    from adventure_quest.store.postgres.schema import MIGRATIONS, MIGRATIONS_TABLE, UPGRADE_LOCK

    check_url(dsn)
    applied: list[int] = []
    async with translated(dsn):
        conn = await asyncpg.connect(dsn, timeout=10)
        try:
            # Lock first: even CREATE TABLE IF NOT EXISTS races with a concurrent upgrader.
            await conn.execute("SELECT pg_advisory_lock($1)", UPGRADE_LOCK)
            await conn.execute(MIGRATIONS_TABLE)
            current = await schema_version(conn)
            if current > SCHEMA_VERSION:
                raise StoreSchemaError(
                    f"{where(dsn)} has schema version {current}, newer than this code's "
                    f"{SCHEMA_VERSION}; upgrade Adventure Quest"
                )
            for version in range(current + 1, SCHEMA_VERSION + 1):
                async with conn.transaction():
                    await conn.execute(MIGRATIONS[version - 1])
                    await conn.execute(
                        "INSERT INTO aq_schema_migrations (version) VALUES ($1)", version
                    )
                applied.append(version)
        finally:
            await conn.close()
    return applied
