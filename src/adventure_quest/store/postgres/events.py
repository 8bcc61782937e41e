"""PostgreSQL event store (``postgresql://…``): group commit through one server-side function.

Appends from many tasks queue up; a flusher sends everything queued in one call of
``aq_append`` (store/postgres/schema.py), which checks versions, skips retried event ids, inserts,
notifies listeners and commits, in one round trip and one WAL flush. Two flushers alternate, so
one batch travels while the other commits. Commits are serialized per shard by an advisory lock
held to commit, which is what makes the global log gap-safe (docs/postgres.md).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import AsyncIterator, Sequence
from typing import Any, Final

import asyncpg
from asyncpg.pool import PoolConnectionProxy

from adventure_quest.store.appending import validate_append
from adventure_quest.store.envelope import (
    AppendResult,
    ExpectedVersion,
    NewEvent,
    RecordedEvent,
)
from adventure_quest.store.errors import (
    ConcurrencyError,
    InvalidAppendError,
    StoreClosedError,
    StoreError,
)
from adventure_quest.store.postgres.connect import connect_pool, translated
from adventure_quest.store.postgres.schema import NOTIFY_CHANNEL
from adventure_quest.store.rows import (
    LOG_COLUMNS,
    STREAM_COLUMNS,
    encode_metadata,
    log_events,
    stream_events,
)
from adventure_quest.store.tailing import HeadSignal

MAX_EVENTS_PER_CALL: Final = 5_000
MAX_REQUESTS_PER_CALL: Final = 1_000
FLUSHERS: Final = 2
#: How long closing waits for connections to finish politely before cutting them off.
CLOSE_TIMEOUT_S: Final = 10.0

_INT_MAX = (1 << 31) - 1


class _Append:
    __slots__ = ("events", "expected", "future", "stream_id")

    def __init__(
        self,
        stream_id: str,
        expected: ExpectedVersion,
        events: Sequence[NewEvent],
        future: asyncio.Future[AppendResult],
    ) -> None:
        self.stream_id = stream_id
        self.expected = expected
        self.events = events
        self.future = future


class PostgresEventStore:
    """One shard's event store in PostgreSQL; durable on acknowledge (synchronous commit)."""

    def __init__(self, dsn: str, *, shard: int = 0, pool_size: int = 8) -> None:
        self.dsn = dsn
        self.shard = shard
        self._pool_size = pool_size
        self._pool: asyncpg.Pool | None = None
        self._pool_lock = asyncio.Lock()
        self._pending: list[_Append] = []
        self._flushers = 0
        self._closed = False
        self._signal = HeadSignal()
        self._listener: asyncpg.Connection | None = None
        self.commits = 0

    async def _connection_pool(self) -> asyncpg.Pool:
        if self._pool is None:
            async with self._pool_lock:
                if self._pool is None:
                    self._pool = await connect_pool(self.dsn, self._pool_size + FLUSHERS)
        return self._pool

    @contextlib.asynccontextmanager
    async def _connection(self) -> AsyncIterator[PoolConnectionProxy]:
        pool = await self._connection_pool()
        async with translated(self.dsn):
            conn = await pool.acquire()
            try:
                yield conn
            except BaseException:
                # Its state is unknown (cut off mid-call, say): never hand it out again.
                conn.terminate()
                raise
            finally:
                await pool.release(conn)

    # -- write side -------------------------------------------------------------------------

    async def append(
        self, stream_id: str, expected_version: ExpectedVersion, events: Sequence[NewEvent]
    ) -> AppendResult:
        if self._closed:
            raise StoreClosedError("the event store is closed")
        validate_append(stream_id, expected_version, events)
        future: asyncio.Future[AppendResult] = asyncio.get_running_loop().create_future()
        self._pending.append(_Append(stream_id, expected_version, events, future))
        if self._flushers < FLUSHERS:
            self._flushers += 1
            asyncio.get_running_loop().create_task(self._flush())
        return await future

    async def _flush(self) -> None:
        try:
            while self._pending:
                batch = self._take_batch()
                try:
                    rows = await self._call_append(batch)
                except BaseException as error:
                    failure = error if isinstance(error, StoreError) else StoreError(repr(error))
                    for request in batch:
                        if not request.future.done():
                            request.future.set_exception(failure)
                    if not isinstance(error, Exception):
                        raise
                    continue
                self.commits += 1
                for request, row in zip(batch, rows, strict=True):
                    if not request.future.done():
                        _settle(request, row, self.shard)
        finally:
            self._flushers -= 1

    def _take_batch(self) -> list[_Append]:
        """The oldest queued requests, up to the per-call limits (at least one)."""
        pending, taken, events = self._pending, 0, 0
        for request in pending:
            if taken and (
                taken >= MAX_REQUESTS_PER_CALL or events + len(request.events) > MAX_EVENTS_PER_CALL
            ):
                break
            taken += 1
            events += len(request.events)
        batch = pending[:taken]
        del pending[:taken]
        return batch

    async def _call_append(self, batch: list[_Append]) -> list[asyncpg.Record]:
        now = time.time()
        streams: list[str] = []
        expected: list[int] = []
        counts: list[int] = []
        ids: list[str] = []
        types: list[str] = []
        schemas: list[int] = []
        payloads: list[bytes] = []
        metadata: list[bytes] = []
        for request in batch:
            streams.append(request.stream_id)
            expected.append(request.expected)
            counts.append(len(request.events))
            for event in request.events:
                ids.append(event.event_id)
                types.append(event.event_type)
                schemas.append(event.schema_version)
                payloads.append(event.payload)
                metadata.append(encode_metadata(event.metadata, now))
        async with self._connection() as conn:
            rows: list[asyncpg.Record] = await conn.fetch(
                "SELECT outcome, new_version, last_position"
                " FROM aq_append($1, $2, $3, $4, $5, $6, $7, $8)",
                streams, expected, counts, ids, types, schemas, payloads, metadata,
            )  # fmt: skip
        return rows

    # -- read side --------------------------------------------------------------------------

    async def read_stream(
        self, stream_id: str, from_version: int = 1, to_version: int | None = None
    ) -> list[RecordedEvent]:
        last = _INT_MAX if to_version is None else min(to_version, _INT_MAX)
        first = max(min(from_version, _INT_MAX), -_INT_MAX)
        async with self._connection() as conn:
            rows = await conn.fetch(
                f"SELECT event_id::text, {STREAM_COLUMNS} FROM aq_events"
                " WHERE stream_id = $1 AND version BETWEEN $2 AND $3 ORDER BY version",
                stream_id, first, last,
            )  # fmt: skip
        return stream_events(stream_id, rows, self.shard)

    async def read_by_ids(self, stream_id: str, event_ids: Sequence[str]) -> list[RecordedEvent]:
        ids = [i for i in dict.fromkeys(event_ids) if _is_uuid(i)]  # the column is a uuid
        if not ids:
            return []
        async with self._connection() as conn:
            rows = await conn.fetch(
                f"SELECT event_id::text, {STREAM_COLUMNS} FROM aq_events"
                " WHERE event_id = ANY($1::uuid[]) AND stream_id = $2 ORDER BY version",
                ids, stream_id,
            )  # fmt: skip
        return stream_events(stream_id, rows, self.shard)

    async def stream_version(self, stream_id: str) -> int:
        async with self._connection() as conn:
            version = await conn.fetchval(
                "SELECT coalesce(max(version), 0) FROM aq_events WHERE stream_id = $1", stream_id
            )
        return int(version)

    async def read_all(self, after_position: int = 0, limit: int = 1000) -> list[RecordedEvent]:
        async with self._connection() as conn:
            rows = await conn.fetch(
                f"SELECT event_id::text, {LOG_COLUMNS} FROM aq_events"
                " WHERE position > $1 ORDER BY position LIMIT $2",
                after_position, max(limit, 0),
            )  # fmt: skip
        return log_events(rows, self.shard)

    async def head(self) -> int:
        async with self._connection() as conn:
            return int(await conn.fetchval("SELECT coalesce(max(position), 0) FROM aq_events"))

    async def wait_for(self, after_position: int, timeout: float) -> int:
        """Wait until the head passes ``after_position`` (LISTEN/NOTIFY, polling as fallback)."""
        await self._listen()
        return await self._signal.wait_for(self.head, after_position, timeout)

    async def _listen(self) -> None:
        if self._listener is not None and not self._listener.is_closed():
            return
        listener: asyncpg.Connection | None = None
        try:
            async with translated(self.dsn):
                listener = await asyncpg.connect(self.dsn)
                await listener.add_listener(NOTIFY_CHANNEL, self._notified)
        except StoreError:
            # Polling carries on; the next wait tries again. A connection made before the
            # failure is never kept half set up (nor left for the collector to find open).
            if listener is not None:
                listener.terminate()
            return
        if self._closed:  # close() ran while this connected: it could not see this connection
            listener.terminate()
            return
        self._listener = listener

    def _notified(self, _conn: object, _pid: int, _channel: str, _payload: object) -> None:
        self._signal.notify()

    async def close(self) -> None:
        self._closed = True
        while self._flushers:
            await asyncio.sleep(0.001)
        if self._listener is not None:
            await _close_or_terminate(self._listener)
        if self._pool is not None:
            try:
                async with asyncio.timeout(CLOSE_TIMEOUT_S):
                    await self._pool.close()
            except BaseException as error:
                self._pool.terminate()  # every connection goes, whatever state it was in
                if not isinstance(error, Exception):
                    raise

    def logs(self) -> Sequence[PostgresEventStore]:
        return (self,)


async def _close_or_terminate(conn: asyncpg.Connection) -> None:
    """Close ``conn`` politely, or cut it off: it is never left open for the collector to find."""
    try:
        async with asyncio.timeout(CLOSE_TIMEOUT_S):
            await conn.close()
    except Exception:
        conn.terminate()


def _settle(request: _Append, row: Any, shard: int) -> None:
    outcome, version, position = row
    future = request.future
    if outcome == "ok":
        future.set_result(AppendResult(request.stream_id, version, position, shard=shard))
    elif outcome == "duplicate":
        future.set_result(
            AppendResult(request.stream_id, version, position, repeat=True, shard=shard)
        )
    elif outcome == "conflict":
        future.set_exception(ConcurrencyError(request.stream_id, request.expected, version))
    else:
        future.set_exception(
            InvalidAppendError(
                f"event ids of this append to {request.stream_id!r} are already used"
            )
        )


def _is_uuid(text: str) -> bool:
    """Whether ``text`` can be an event id of this store (its column is a uuid)."""
    try:
        uuid.UUID(text)
    except ValueError:
        return False
    return True
