"""PostgreSQL read database: a pool of connections, units of many writers at once.

Units with a scope (a projection worker's: the queue partitions of its events) change rows of
those partitions only: every read model's rows follow the partitions (tests/projections/
test_partition_rows.py). Such a unit begins by counting itself in its partitions' rows of
``read_scope_generation``, which stay locked until it commits: units sharing a partition take
turns, units of disjoint scopes run at once, and nobody else changes the unit's rows meanwhile,
so it reads and writes them without row locks. It learns its partitions' counts before it, and
how many units without a scope committed: the caches kept between units (``GenerationCache``)
stay while other writers commit in other partitions.

Units without a scope (rebuilds, dead-letter administration, runners without partitions) may
change any row. They hold ``read_scope_generation`` in SHARE mode until they commit, so they
never overlap a scoped unit, and among themselves they lock, until they commit, every row they
read in order to change it and every row they write: an existing row by ``SELECT ... FOR
UPDATE`` (kept in the row itself, so a unit may lock any number of them), a key with no row yet
by a transaction-scoped advisory lock on a hash of the table and key (nobody inserts it
meanwhile; a unit that would take more than ``KEY_LOCKS_AT_MOST`` of them locks the table
against writes instead, since advisory locks fill PostgreSQL's shared lock table). The applied
versions are rows too, locked the same way. Two that lock shared rows in opposite orders
deadlock, PostgreSQL rolls one back, and its caller applies it again (projections/
conflicts.py). Keys are locked in sorted order within a statement, which makes that rare.

Units without a scope count themselves in ``read_generation`` (one row per server process
slot, so counting is no lock every writer takes) and see the count of every unit. One that
began trusting the caches (nobody else committed since this handle's last commit) checks, just
before it commits and holding every lock it took, that still nobody did, and is rolled back as a
conflict otherwise. Such a unit first tries to lock every table this handle knows in one
statement, without waiting (readers still read): when nobody else is writing them it then
reads and writes them without row locks, and whoever committed something it read before it
locked is caught by the check. When somebody is, it locks rows like every other unit.

Within one process a handle still runs one unit at a time (an asyncio lock): its units share the
handle's applied-versions cache. ``create`` takes the writer lock alone, units take it shared, so
no unit runs while tables are created or migrated. Readers never wait for a unit: they see the
last committed state.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import AsyncIterator, Collection, Iterable, Sequence
from contextlib import asynccontextmanager, suppress
from typing import Any, Final

import asyncpg
from asyncpg.pool import PoolConnectionProxy

from adventure_quest.projections import fencing, sql
from adventure_quest.projections.conflicts import UnitConflictError
from adventure_quest.projections.model import (
    ALL,
    UNSCOPED,
    Generation,
    Row,
    Table,
    counted_once,
)
from adventure_quest.store.errors import StoreSchemaError
from adventure_quest.store.postgres.connect import check_url, translated, where

# Beside the store's APPEND_LOCK (0x41510001) and UPGRADE_LOCK (0x41510002): the database may be
# the store's own. ``create`` takes it alone, every unit shared.
WRITER_LOCK: Final = 0x41510003
#: Advisory locks on absent keys one unit takes before it locks a table whole instead. The
#: shared lock table holds max_locks_per_transaction x max_connections (6,400 by default) for
#: the whole server; a batch of new characters would otherwise take thousands.
KEY_LOCKS_AT_MOST: Final = 256
#: Rows of ``read_generation`` the units count themselves in, chosen by server process id: two
#: units at once share one only by that id's remainder, and then merely take turns.
GENERATION_SLOTS: Final = 1024

_GENERATION = sql.GENERATION_TABLE
_SCOPES = sql.SCOPES_TABLE
#: Every unit committed: those without a scope and those with one.
_COUNTED = (
    f"SELECT (SELECT coalesce(sum(n), 0)::bigint FROM {_GENERATION})"
    f" + (SELECT coalesce(sum(n), 0)::bigint FROM {_SCOPES})"
)
#: A unit without a scope first holds the scopes' counts in SHARE mode until it commits: no
#: unit with a scope runs meanwhile (they hold them in ROW EXCLUSIVE mode), others without
#: one still do.
_UNSCOPED_LOCK = f"LOCK TABLE {_SCOPES} IN SHARE MODE"
#: Then it counts itself in its slot and learns the count before it (its statement's snapshot
#: does not see its own increment), taking the writer lock shared.
_BEGIN = (
    f"WITH counted AS (INSERT INTO {_GENERATION} (id, n)"
    f" VALUES (1 + pg_backend_pid() % {GENERATION_SLOTS}, 1)"
    f" ON CONFLICT (id) DO UPDATE SET n = {_GENERATION}.n + 1 RETURNING n)"
    f" SELECT ({_COUNTED}), pg_advisory_xact_lock_shared($1) FROM counted"
)
#: A unit with a scope takes the scopes' counts in ROW EXCLUSIVE mode and the writer lock
#: shared, in a statement of its own: the next one's snapshot then sees every unit without a
#: scope that it waited for.
_SCOPED_LOCKS = (
    f"LOCK TABLE {_SCOPES} IN ROW EXCLUSIVE MODE;"
    f" SELECT pg_advisory_xact_lock_shared({WRITER_LOCK})"
)
#: Then it counts itself in each partition of its scope, whose rows stay locked until it
#: commits (units sharing a partition take turns), and learns their counts before it and how
#: many units without a scope committed.
_SCOPED_BEGIN = (
    f"WITH counted AS (INSERT INTO {_SCOPES} (scope, n) SELECT s, 1 FROM unnest($1::int[]) AS s"
    f" ON CONFLICT (scope) DO UPDATE SET n = {_SCOPES}.n + 1 RETURNING scope, n - 1 AS n)"
    f" SELECT scope, n FROM counted UNION ALL"
    f" SELECT {UNSCOPED}, (SELECT coalesce(sum(n), 0)::bigint FROM {_GENERATION})"
)
#: Readers (plain SELECT) still read; every other writer of the table waits.
_EXCLUSIVE = "IN EXCLUSIVE MODE"
_LOCK_KEYS = (
    "SELECT pg_advisory_xact_lock(hashtextextended($1::text || '/' || k, 0))"
    " FROM unnest($2::text[]) AS k"
)

_SET_VERSIONS = (
    f"INSERT INTO {sql.VERSIONS_TABLE} (stream_id, versions)"
    " SELECT * FROM unnest($1::text[], $2::text[])"
    " ON CONFLICT (stream_id) DO UPDATE SET versions = excluded.versions"
)
_DROP_VERSIONS = (
    f"UPDATE {sql.VERSIONS_TABLE} SET versions = (versions::jsonb - $1::text)::text"
    " WHERE versions::jsonb ? $1::text"
)

Connection = asyncpg.Connection | PoolConnectionProxy


@asynccontextmanager
async def _translated(dsn: str) -> AsyncIterator[None]:
    """``translated``, except that a missing table names the read database's own fix, and a
    deadlock is a conflict (the unit is applied again)."""
    async with translated(dsn):
        try:
            yield
        except (
            asyncpg.exceptions.DeadlockDetectedError,
            asyncpg.exceptions.SerializationError,
        ) as error:
            raise UnitConflictError(f"{where(dsn)}: {error}") from error
        except asyncpg.exceptions.UndefinedTableError as error:
            raise StoreSchemaError(
                f"{where(dsn)} lacks a read-model table ({error}); create the tables with"
                " `aq db upgrade --read-db URL` (a starting worker creates them too)"
            ) from error


def _mark(index: int) -> str:
    return f"${index}"


def _record(record: asyncpg.Record) -> tuple[Any, ...]:
    return tuple(record.values())


@functools.lru_cache(maxsize=256)
def _reading(table: str, key: str, columns: tuple[str, ...]) -> str:
    """The rows of ``table`` with the keys of $1, not locked."""
    return _locking(table, key, columns).removesuffix(" FOR UPDATE OF t")


@functools.lru_cache(maxsize=256)
def _locking(table: str, key: str, columns: tuple[str, ...]) -> str:
    """The rows of ``table`` with the keys of $1, locked in the order of $1.

    Keys are looked up by joining their array, not by ``= ANY(array)``: planning a lookup of
    hundreds of array elements cost more than doing it (the join took 40 % of the time,
    measured on batches of 500 keys). Rows are locked after the sort, so in the array's order.
    """
    names = ", ".join(f"t.{name}" for name in (key, *columns))
    return (
        f"SELECT {names} FROM unnest($1::text[]) WITH ORDINALITY AS k(key, n)"
        f" JOIN {table} t ON t.{key} = k.key ORDER BY k.n FOR UPDATE OF t"
    )


class PostgresUnit:
    """A transaction on one pooled connection; its statements run one at a time."""

    def __init__(
        self,
        conn: Connection,
        dsn: str,
        versions: sql.Versions,
        generation: Generation,
        *,
        checked: bool,
        whole: set[str],
        tables: set[str],
        free: bool = False,
    ) -> None:
        self._conn = conn
        self._dsn = dsn
        self._versions = versions
        self._generation = generation
        #: Whether the unit must check before commit that nobody else committed (``finish``).
        self._checked = checked
        self._encoded: sql.Encoded = {}
        # One connection runs one statement at a time; tasks sharing a unit take turns.
        self._turn = asyncio.Lock()
        #: Per table, the keys this unit holds locked (their rows, or the keys themselves).
        self._held: dict[str, set[str]] = {}
        #: Tables locked whole (the handle's, as the unit began; any past ``KEY_LOCKS_AT_MOST``):
        #: nobody else writes them until this unit commits, so it reads and writes them freely.
        self._whole = whole
        #: The handle's tables: this unit adds those it reads and writes.
        self._tables = tables
        self._key_locks = 0
        #: A unit with a scope: nobody else changes its rows until it commits (their
        #: partitions' counts are locked), so it reads and writes them without row locks.
        self._free = free
        #: Tables this unit holds in ROW EXCLUSIVE mode since it locked keys of them.
        self._inserting: set[str] = set()

    async def versions(self, projection: str, stream_ids: Sequence[str]) -> dict[str, int]:
        await self._read_versions(stream_ids)
        return self._versions.of(projection, stream_ids)

    async def set_versions(self, projection: str, versions: dict[str, int]) -> None:
        await self._read_versions(list(versions))
        self._versions.set(projection, versions)

    async def drop_versions(self, projection: str) -> None:
        self._versions.drop(projection)
        await self._execute(_DROP_VERSIONS, projection)

    async def _read_versions(self, stream_ids: Sequence[str]) -> None:
        missing = self._versions.missing(stream_ids)
        if not missing:
            return
        records = await self._lock(sql.VERSIONS_TABLE, "stream_id", missing, ("versions",))
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

    async def generation(self) -> Generation:
        return self._generation

    async def finish(self) -> None:
        """Write what the unit changed of the applied versions (just before it commits).

        A unit that trusted the caches read rows from memory without locking them: holding
        every lock it took, it makes sure nobody else committed since it began (a count of one
        more: its own), or rolls back as a conflict.
        """
        changes = self._versions.changes()
        if changes:
            streams, versions = zip(*changes, strict=True)
            await self._hold(sql.VERSIONS_TABLE, "stream_id", streams)
            await self._execute(_SET_VERSIONS, list(streams), list(versions))
        if self._checked:
            async with self._turn, _translated(self._dsn):
                counted = await self._conn.fetchval(_COUNTED)
            if counted != self._generation.after()[ALL]:
                raise UnitConflictError(
                    f"another writer committed to {where(self._dsn)} while this unit used rows"
                    " kept from earlier units"
                )

    async def load(self, table: Table, keys: Sequence[str]) -> dict[str, Row]:
        if not keys:
            return {}
        records = await self._lock(table.name, table.key, keys, sql.loaded_columns(table))
        return sql.to_rows(table, map(_record, records), loading=True)

    async def write(self, table: Table, puts: dict[str, Row], deletes: Sequence[str]) -> None:
        await self._hold(table.name, table.key, [*puts, *deletes])
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

    async def _hold(self, table: str, key: str, keys: Iterable[str]) -> None:
        """Lock the keys this unit does not hold yet (rows kept in memory, rows never read)."""
        held = self._held.get(table, set())
        unheld = [k for k in keys if k not in held]
        self._tables.add(table)
        if unheld and table not in self._whole and not self._free:
            await self._lock(table, key, unheld, ())

    async def _lock(
        self, table: str, key: str, keys: Sequence[str], columns: tuple[str, ...]
    ) -> list[asyncpg.Record]:
        """The rows with these keys that exist, locked; the keys without one locked too.

        An absent key is looked up again once locked: a unit that held it may have inserted
        its row and committed meanwhile. A table locked whole is read as it is.
        """
        wanted = sorted(set(keys))
        self._tables.add(table)
        if self._free or table in self._whole:
            return await self._fetch(_reading(table, key, columns), wanted)
        query = _locking(table, key, columns)
        records = await self._fetch(query, wanted)
        held = self._held.setdefault(table, set())
        found = {record[0] for record in records}
        held.update(found)
        absent = [k for k in wanted if k not in found and k not in held]
        if not absent or table in self._whole:
            return records
        await self._lock_keys(table, absent)
        return records + await self._fetch(query, absent)

    async def _lock_keys(self, table: str, keys: list[str]) -> None:
        """Lock ``keys`` (sorted) by their hash, or the whole table past ``KEY_LOCKS_AT_MOST``.

        Whoever locks keys by hash holds the table in ROW EXCLUSIVE mode too, so that a unit
        locking the table instead waits for it. That one takes SHARE ROW EXCLUSIVE: it stops
        every write but not the locking reads of other units (stopping those too, every unit
        reading a table and then locking it whole would deadlock with every other doing so).
        """
        if self._key_locks + len(keys) > KEY_LOCKS_AT_MOST:
            await self._execute(f"LOCK TABLE {table} IN SHARE ROW EXCLUSIVE MODE")
            self._whole.add(table)
        else:
            if table not in self._inserting:
                await self._execute(f"LOCK TABLE {table} IN ROW EXCLUSIVE MODE")
                self._inserting.add(table)
            await self._execute(_LOCK_KEYS, table, keys)
            self._key_locks += len(keys)
        self._held.setdefault(table, set()).update(keys)

    async def _fetch(self, query: str, keys: list[str]) -> list[asyncpg.Record]:
        async with self._turn, _translated(self._dsn):
            return list(await self._conn.fetch(query, keys))

    async def _execute(self, statement: str, *args: Any) -> None:
        async with self._turn, _translated(self._dsn):
            await self._conn.execute(statement, *args)


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
        #: The tables made (``create``), read or written through this handle.
        self._tables: set[str] = set()

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
        """A connection in a transaction, this handle's only one; commits unless the body raises."""
        pool = await self._connection_pool()
        async with self._writer:
            async with _translated(self.dsn):
                conn = await pool.acquire()
            try:
                async with _translated(self.dsn):
                    transaction = conn.transaction()
                    await transaction.start()
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

    async def _alone(self, conn: Connection) -> set[str]:
        """The tables this handle knows, if it can lock them all at once without waiting.

        Only a unit that trusts its caches tries (nobody committed since this handle did: a
        worker alone, usually); one that waited for them while another unit held some would
        deadlock with it.
        """
        tables = sorted(self._tables)
        if not tables:
            return set()
        async with _translated(self.dsn):
            try:
                await conn.execute(
                    f"SAVEPOINT aq_alone; LOCK TABLE {', '.join(tables)} {_EXCLUSIVE} NOWAIT;"
                    " RELEASE SAVEPOINT aq_alone"
                )
            except asyncpg.exceptions.LockNotAvailableError:
                await conn.execute("ROLLBACK TO SAVEPOINT aq_alone")
                return set()
        return set(tables)

    async def create(self, tables: Sequence[Table]) -> None:
        # Under the writer lock, alone: concurrent CREATE ... IF NOT EXISTS can still collide,
        # and no unit may read versions while they move to the new layout.
        async with self._writing() as conn, _translated(self.dsn):
            await conn.execute("SELECT pg_advisory_xact_lock($1)", WRITER_LOCK)
            await conn.execute(sql.VERSIONS_DDL)
            await conn.execute(sql.GENERATION_DDL)
            await conn.execute(sql.SCOPES_DDL)
            await conn.execute(sql.FENCES_DDL)
            if await conn.fetchval("SELECT to_regclass($1)", sql.OLD_VERSIONS_TABLE) is not None:
                for statement in sql.migrate_versions("json_object_agg(projection, version)::text"):
                    await conn.execute(statement)
            for table in tables:
                for statement in sql.create_statements(table):
                    await conn.execute(statement)
        self._tables |= {sql.VERSIONS_TABLE, *(table.name for table in tables)}

    @asynccontextmanager
    async def unit(self, scope: Collection[int] | None = None) -> AsyncIterator[PostgresUnit]:
        try:
            async with self._writing() as conn:
                if scope:
                    generation = await self._scoped(conn, sorted(set(scope)))
                    self._versions.begin(generation)
                    unit = PostgresUnit(
                        conn,
                        self.dsn,
                        self._versions,
                        generation,
                        checked=False,
                        whole=set(),
                        tables=self._tables,
                        free=True,
                    )
                else:
                    async with _translated(self.dsn):
                        await conn.execute(_UNSCOPED_LOCK)
                        generation = counted_once(int(await conn.fetchval(_BEGIN, WRITER_LOCK)))
                    trusted = self._versions.trusts(generation)
                    self._versions.begin(generation)
                    whole = await self._alone(conn) if trusted else set()
                    unit = PostgresUnit(
                        conn,
                        self.dsn,
                        self._versions,
                        generation,
                        checked=trusted,
                        whole=whole,
                        tables=self._tables,
                    )
                yield unit
                await unit.finish()
        except BaseException:
            self._versions.clear()
            raise
        self._versions.committed(generation)

    async def _scoped(self, conn: Connection, scope: list[int]) -> Generation:
        """Count a unit with a scope in it (see ``_SCOPED_BEGIN``)."""
        async with _translated(self.dsn):
            await conn.execute(_SCOPED_LOCKS)
            records = await conn.fetch(_SCOPED_BEGIN, scope)
        return Generation({r[0]: int(r[1]) for r in records}, frozenset(scope))

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
        after: str | None = None,
    ) -> list[Row]:
        query, params = sql.select(table, where or {}, order_by, limit, _mark, after=after)
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

    async def totals(
        self, table: Table, by: str, *, summed: str | None = None, limit: int | None = None
    ) -> dict[Any, int]:
        pool = await self._connection_pool()
        async with _translated(self.dsn):
            found = await pool.fetch(sql.totals(table, by, summed, limit))
        return {value: int(total) for value, total in found}

    async def close(self) -> None:
        if self._pool is not None:
            pool, self._pool = self._pool, None
            await pool.close()
