"""PostgreSQL read database: a pool of connections, one writing unit at a time.

Units are serialized, as SQLite serializes them: projections read rows, change them and write
them back, and rows such as a room's view are shared by events of many streams, so two units
interleaving under READ COMMITTED would lose each other's updates. An asyncio lock keeps a
process's waiting units off the pool (readers still get connections) and a transaction-scoped
advisory lock does the same between processes. Readers never wait for a unit: they see the last
committed state.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager, suppress
from typing import Any, Final

import asyncpg
from asyncpg.pool import PoolConnectionProxy

from adventure_quest.projections import fencing, sql
from adventure_quest.projections.model import Row, Table
from adventure_quest.store.errors import StoreSchemaError
from adventure_quest.store.postgres.connect import check_url, translated, where

# Beside the store's APPEND_LOCK (0x41510001) and UPGRADE_LOCK (0x41510002): the database may be
# the store's own.
WRITER_LOCK: Final = 0x41510003

_SET_VERSIONS = (
    f"INSERT INTO {sql.VERSIONS_TABLE} (stream_id, versions)"
    " SELECT * FROM unnest($1::text[], $2::text[])"
    " ON CONFLICT (stream_id) DO UPDATE SET versions = excluded.versions"
)
# Keys are looked up by joining their array, not by ``= ANY(array)``: planning a lookup of
# hundreds of array elements cost more than doing it (the join took 40 % of the time, measured
# on batches of 500 keys).
_VERSIONS = (
    f"SELECT v.stream_id, v.versions FROM unnest($1::text[]) AS k(stream_id)"
    f" JOIN {sql.VERSIONS_TABLE} v ON v.stream_id = k.stream_id"
)
_DROP_VERSIONS = (
    f"UPDATE {sql.VERSIONS_TABLE} SET versions = (versions::jsonb - $1::text)::text"
    " WHERE versions::jsonb ? $1::text"
)

Connection = asyncpg.Connection | PoolConnectionProxy


@asynccontextmanager
async def _translated(dsn: str) -> AsyncIterator[None]:
    """``translated``, except that a missing table names the read database's own fix."""
    async with translated(dsn):
        try:
            yield
        except asyncpg.exceptions.UndefinedTableError as error:
            raise StoreSchemaError(
                f"{where(dsn)} lacks a read-model table ({error}); create the tables with"
                " `aq db upgrade --read-db URL` (a starting worker creates them too)"
            ) from error


def _mark(index: int) -> str:
    return f"${index}"


def _record(record: asyncpg.Record) -> tuple[Any, ...]:
    return tuple(record.values())


class PostgresUnit:
    """A transaction on one pooled connection; its statements run one at a time."""

    def __init__(self, conn: Connection, dsn: str, versions: sql.Versions, generation: int) -> None:
        self._conn = conn
        self._dsn = dsn
        self._versions = versions
        self._generation = generation
        self._encoded: sql.Encoded = {}
        # One connection runs one statement at a time; tasks sharing a unit take turns.
        self._turn = asyncio.Lock()

    async def versions(self, projection: str, stream_ids: Sequence[str]) -> dict[str, int]:
        await self._read_versions(stream_ids)
        return self._versions.of(projection, stream_ids)

    async def set_versions(self, projection: str, versions: dict[str, int]) -> None:
        await self._read_versions(list(versions))
        self._versions.set(projection, versions)

    async def drop_versions(self, projection: str) -> None:
        self._versions.drop(projection)
        async with self._turn, _translated(self._dsn):
            await self._conn.execute(_DROP_VERSIONS, projection)

    async def _read_versions(self, stream_ids: Sequence[str]) -> None:
        missing = self._versions.missing(stream_ids)
        if not missing:
            return
        async with self._turn, _translated(self._dsn):
            records = await self._conn.fetch(_VERSIONS, missing)
        self._versions.loaded(missing, [(record[0], record[1]) for record in records])

    async def fence(self, fences: Sequence[fencing.Fence]) -> None:
        fences = fencing.ordered(fences)
        if not fences:
            return
        params = [value for fence in fences for value in fence]
        async with self._turn, _translated(self._dsn):
            accepted = await self._conn.fetch(sql.raise_fences(len(fences), _mark), *params)
            refused = fencing.refused(fences, [(r[0], r[1]) for r in accepted])
            if refused:
                pairs = [value for fence in refused for value in fence[:2]]
                rows = await self._conn.fetch(sql.recorded_fences(len(refused), _mark), *pairs)
        if refused:
            raise fencing.Fenced(refused, {(r[0], r[1]): r[2] for r in rows})

    async def generation(self) -> int:
        return self._generation

    async def finish(self) -> None:
        """Write what the unit changed of the applied versions (just before it commits)."""
        changes = self._versions.changes()
        if changes:
            streams, versions = zip(*changes, strict=True)
            async with self._turn, _translated(self._dsn):
                await self._conn.execute(_SET_VERSIONS, list(streams), list(versions))

    async def load(self, table: Table, keys: Sequence[str]) -> dict[str, Row]:
        if not keys:
            return {}
        names = ", ".join(f"t.{name}" for name in [table.key, *sql.loaded_columns(table)])
        query = (
            f"SELECT {names} FROM unnest($1::text[]) AS k(key)"
            f" JOIN {table.name} t ON t.{table.key} = k.key"
        )
        async with self._turn, _translated(self._dsn):
            records = await self._conn.fetch(query, list(keys))
        return sql.to_rows(table, map(_record, records), loading=True)

    async def write(self, table: Table, puts: dict[str, Row], deletes: Sequence[str]) -> None:
        async with self._turn, _translated(self._dsn):
            if puts:
                await self._conn.executemany(
                    sql.upsert(table, _mark),
                    sql.to_params(table, puts, self._encoded),
                )
            if deletes:
                await self._conn.execute(
                    f"DELETE FROM {table.name} WHERE {table.key} = ANY($1::text[])", list(deletes)
                )


class PostgresReadDatabase:
    """Read models in a PostgreSQL database; ``postgresql://USER@HOST:PORT/DB``."""

    def __init__(self, dsn: str, *, pool_size: int = 4) -> None:
        self.dsn = check_url(dsn)
        self._pool_size = pool_size
        self._pool: asyncpg.Pool | None = None
        self._opening = asyncio.Lock()
        self._writer = asyncio.Lock()
        #: Applied versions read and written by this handle's units (kept between them).
        self._versions = sql.Versions()

    async def _connection_pool(self) -> asyncpg.Pool:
        async with self._opening:
            if self._pool is None:
                async with _translated(self.dsn):
                    self._pool = await asyncpg.create_pool(
                        self.dsn, min_size=1, max_size=self._pool_size, timeout=10
                    )
        return self._pool

    @asynccontextmanager
    async def _writing(self) -> AsyncIterator[Connection]:
        """A connection in a transaction holding the writer lock; commits unless the body raises."""
        pool = await self._connection_pool()
        async with self._writer:
            async with _translated(self.dsn):
                conn = await pool.acquire()
            try:
                async with _translated(self.dsn):
                    transaction = conn.transaction()
                    await transaction.start()
                    await conn.execute("SELECT pg_advisory_xact_lock($1)", WRITER_LOCK)
                try:
                    yield conn
                except BaseException:
                    # The body's error is the one to report; a connection that cannot roll back
                    # is broken, and releasing it below terminates it.
                    with suppress(Exception):
                        await transaction.rollback()
                    raise
                async with _translated(self.dsn):
                    await transaction.commit()
            finally:
                # A connection that cannot be reset is terminated by the pool; whatever
                # happened to the transaction is already decided (and reported) by now.
                with suppress(Exception):
                    await pool.release(conn)

    async def create(self, tables: Sequence[Table]) -> None:
        # Under the writer lock: concurrent CREATE ... IF NOT EXISTS can still collide.
        async with self._writing() as conn, _translated(self.dsn):
            await conn.execute(sql.VERSIONS_DDL)
            await conn.execute(sql.GENERATION_DDL)
            await conn.execute(sql.FENCES_DDL)
            if await conn.fetchval("SELECT to_regclass($1)", sql.OLD_VERSIONS_TABLE) is not None:
                for statement in sql.migrate_versions("json_object_agg(projection, version)::text"):
                    await conn.execute(statement)
            for table in tables:
                for statement in sql.create_statements(table):
                    await conn.execute(statement)

    @asynccontextmanager
    async def unit(self) -> AsyncIterator[PostgresUnit]:
        try:
            async with self._writing() as conn:
                async with _translated(self.dsn):
                    generation = int(await conn.fetchval(sql.NEXT_GENERATION)) - 1
                self._versions.begin(generation)
                unit = PostgresUnit(conn, self.dsn, self._versions, generation)
                yield unit
                await unit.finish()
        except BaseException:
            self._versions.clear()
            raise
        self._versions.committed(generation)

    async def get(self, table: Table, key: str) -> Row | None:
        pool = await self._connection_pool()
        async with _translated(self.dsn):
            record = await pool.fetchrow(sql.select_by_keys(table, 1, _mark), key)
        return None if record is None else sql.to_rows(table, [_record(record)])[key]

    async def select(
        self,
        table: Table,
        *,
        where: dict[str, Any] | None = None,
        order_by: Sequence[tuple[str, bool]] = (),
        limit: int | None = None,
    ) -> list[Row]:
        query, params = sql.select(table, where or {}, order_by, limit, _mark)
        pool = await self._connection_pool()
        async with _translated(self.dsn):
            records = await pool.fetch(query, *params)
        return [
            {table.key: key, **row}
            for key, row in sql.to_rows(table, map(_record, records)).items()
        ]

    async def count(self, table: Table, *, where: dict[str, Any] | None = None) -> int:
        query, params = sql.count(table, where or {}, _mark)
        pool = await self._connection_pool()
        async with _translated(self.dsn):
            return int(await pool.fetchval(query, *params))

    async def close(self) -> None:
        if self._pool is not None:
            pool, self._pool = self._pool, None
            await pool.close()
