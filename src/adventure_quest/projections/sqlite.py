"""SQLite read database (the embedded default): one file, WAL, one writer at a time."""

from __future__ import annotations

import asyncio
import sqlite3
import time
from collections.abc import AsyncIterator, Collection, Iterator, Sequence
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path
from typing import Any

from adventure_quest.projections import fencing, sql
from adventure_quest.projections.model import Generation, Row, Table, counted_once
from adventure_quest.store.errors import StoreSchemaError, StoreUnavailableError

_CHUNK = 500
#: How long a unit waits for another writer of the same file before giving up.
WRITE_LOCK_WAIT_S = 30.0


def _mark(_: int) -> str:
    return "?"


class SQLiteUnit:
    """A transaction on the writer connection."""

    def __init__(
        self, conn: sqlite3.Connection, versions: sql.Versions, generation: Generation
    ) -> None:
        self._conn = conn
        self._versions = versions
        self._generation = generation
        self._encoded: sql.Encoded = {}

    async def versions(self, projection: str, stream_ids: Sequence[str]) -> dict[str, int]:
        self._read_versions(stream_ids)
        return self._versions.of(projection, stream_ids)

    async def set_versions(self, projection: str, versions: dict[str, int]) -> None:
        self._read_versions(list(versions))
        self._versions.set(projection, versions)

    async def drop_versions(self, projection: str) -> None:
        self._versions.drop(projection)
        path = f'$."{projection}"'
        self._conn.execute(
            f"UPDATE {sql.VERSIONS_TABLE} SET versions = json_remove(versions, ?)"
            " WHERE json_type(versions, ?) IS NOT NULL",
            (path, path),
        )

    def _read_versions(self, stream_ids: Sequence[str]) -> None:
        missing = self._versions.missing(stream_ids)
        for start in range(0, len(missing), _CHUNK):
            chunk = missing[start : start + _CHUNK]
            rows = self._conn.execute(
                f"SELECT stream_id, versions FROM {sql.VERSIONS_TABLE}"
                f" WHERE stream_id IN ({', '.join('?' * len(chunk))})",
                chunk,
            )
            self._versions.loaded(chunk, rows.fetchall())

    async def fence(self, fences: Sequence[fencing.Fence]) -> None:
        fences = fencing.ordered(fences)
        if not fences:
            return
        params = [value for fence in fences for value in fence]
        accepted = self._conn.execute(sql.raise_fences(len(fences), _mark), params).fetchall()
        refused = fencing.refused(fences, accepted)
        if refused:
            pairs = [value for fence in refused for value in fence[:2]]
            rows = self._conn.execute(sql.recorded_fences(len(refused), _mark), pairs)
            raise fencing.Fenced(refused, {(g, p): t for g, p, t in rows.fetchall()})

    async def generation(self) -> Generation:
        return self._generation

    def finish(self) -> None:
        """Write what the unit changed of the applied versions (just before it commits)."""
        self._conn.executemany(
            f"INSERT INTO {sql.VERSIONS_TABLE} (stream_id, versions) VALUES (?, ?)"
            " ON CONFLICT (stream_id) DO UPDATE SET versions = excluded.versions",
            self._versions.changes(),
        )

    async def load(self, table: Table, keys: Sequence[str]) -> dict[str, Row]:
        found: dict[str, Row] = {}
        for start in range(0, len(keys), _CHUNK):
            chunk = list(keys[start : start + _CHUNK])
            query = sql.select_by_keys(table, len(chunk), _mark, loading=True)
            found.update(sql.to_rows(table, self._conn.execute(query, chunk), loading=True))
        return found

    async def write(self, table: Table, puts: dict[str, Row], deletes: Sequence[str]) -> None:
        if puts:
            params = sql.to_params(table, puts, self._encoded)
            self._conn.executemany(sql.upsert(table, _mark), params)
        if deletes:
            self._conn.executemany(
                f"DELETE FROM {table.name} WHERE {table.key} = ?", [(k,) for k in deletes]
            )


class SQLiteReadDatabase:
    """Read models in one SQLite file; ``sqlite:///PATH``."""

    def __init__(self, path: str) -> None:
        self.path = path
        if path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        self._conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        self._conn.execute("PRAGMA journal_mode=WAL")
        self._conn.execute("PRAGMA synchronous=NORMAL")
        self._conn.execute("PRAGMA busy_timeout=0")  # waits happen in _begin, off the loop
        # Queries read on their own connection: they see committed rows only, never a unit's.
        self._reader = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        self._reader.execute("PRAGMA busy_timeout=30000")
        self._lock = asyncio.Lock()
        #: Applied versions read and written by this handle's units (kept between them).
        self._versions = sql.Versions()

    async def create(self, tables: Sequence[Table]) -> None:
        async with self._lock:  # DDL takes the write lock like a unit: wait for it off the loop
            await self._begin()
            try:
                self._conn.execute(sql.VERSIONS_DDL)
                self._conn.execute(sql.GENERATION_DDL)
                self._conn.execute(sql.FENCES_DDL)
                old = self._conn.execute(
                    "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?",
                    (sql.OLD_VERSIONS_TABLE,),
                ).fetchone()
                if old is not None:
                    for statement in sql.migrate_versions("json_group_object(projection, version)"):
                        self._conn.execute(statement)
                for table in tables:
                    for statement in sql.create_statements(table):
                        self._conn.execute(statement)
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise
            self._conn.execute("COMMIT")

    @asynccontextmanager
    async def unit(self, scope: Collection[int] | None = None) -> AsyncIterator[SQLiteUnit]:
        """A unit; SQLite has one writer at a time, so ``scope`` changes nothing here."""
        async with self._lock:
            await self._begin()
            try:
                count = int(self._conn.execute(sql.NEXT_GENERATION).fetchone()[0]) - 1
                generation = counted_once(count)
                self._versions.begin(generation)
                unit = SQLiteUnit(self._conn, self._versions, generation)
                yield unit
                unit.finish()
                self._conn.execute("COMMIT")
            except BaseException:
                self._versions.clear()
                if self._conn.in_transaction:
                    self._conn.execute("ROLLBACK")
                raise
            self._versions.committed(generation)

    async def _begin(self) -> None:
        """Take the write lock without blocking the event loop while another writer holds it.

        The writer connection has no busy timeout: a busy database answers at once, and the
        wait happens here, between attempts, so the loop (and the other writer, when it runs in
        this same process) keeps going.
        """
        deadline = time.monotonic() + WRITE_LOCK_WAIT_S
        pause = 0.001
        while True:
            try:
                self._conn.execute("BEGIN IMMEDIATE")
                return
            except sqlite3.OperationalError as error:
                if "locked" not in str(error) or time.monotonic() > deadline:
                    raise StoreUnavailableError(
                        f"{self.path}: the read database stayed locked by another writer"
                        f" for {WRITE_LOCK_WAIT_S:.0f} s ({error})"
                    ) from error
            await asyncio.sleep(pause)
            pause = min(pause * 2, 0.05)

    async def get(self, table: Table, key: str) -> Row | None:
        with _missing_tables(self.path):
            record = self._reader.execute(sql.select_by_keys(table, 1, _mark), [key]).fetchone()
        return None if record is None else sql.to_rows(table, [record])[key]

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
        with _missing_tables(self.path):
            records = self._reader.execute(query, params).fetchall()
        return [{table.key: key, **row} for key, row in sql.to_rows(table, records).items()]

    async def count(self, table: Table, *, where: dict[str, Any] | None = None) -> int:
        query, params = sql.count(table, where or {}, _mark)
        with _missing_tables(self.path):
            (found,) = self._reader.execute(query, params).fetchone()
        return int(found)

    async def totals(
        self, table: Table, by: str, *, summed: str | None = None, limit: int | None = None
    ) -> dict[Any, int]:
        with _missing_tables(self.path):
            found = self._reader.execute(sql.totals(table, by, summed, limit)).fetchall()
        return {value: int(total) for value, total in found}

    async def close(self) -> None:
        self._reader.close()
        self._conn.close()


@contextmanager
def _missing_tables(path: str) -> Iterator[None]:
    try:
        yield
    except sqlite3.OperationalError as error:
        if "no such table" not in str(error):
            raise
        raise StoreSchemaError(
            f"{path} lacks a read-model table ({error}); create the tables with"
            " `aq db upgrade --read-db URL` (a starting worker creates them too)"
        ) from error
