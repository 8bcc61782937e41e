"""SQLite event store with group commit: many concurrent appends share one transaction and fsync.

One writer thread owns the write connection. Appends from any number of asyncio tasks queue up;
the writer takes everything queued, checks each append's expected version, inserts the lot in one
transaction and commits once (WAL, ``synchronous=FULL``: the commit is fsync'd). An append whose
expected version conflicts fails alone; the others commit. Readers use their own connections and
see only committed events, so a reader never observes a position that could still be rolled back.
"""

from __future__ import annotations

import asyncio
import queue
import sqlite3
import threading
import time
from collections.abc import Sequence
from typing import Final

from adventure_quest.store.appending import validate_append
from adventure_quest.store.envelope import AppendResult, ExpectedVersion, NewEvent, RecordedEvent
from adventure_quest.store.errors import ConcurrencyError, StoreClosedError, StoreError
from adventure_quest.store.rows import LOG_COLUMNS, STREAM_COLUMNS, log_events, stream_events
from adventure_quest.store.sqlite.group_commit import (
    Append,
    Result,
    Transaction,
    VersionCache,
    committed_version,
    deliver,
    reused,
)
from adventure_quest.store.sqlite.schema import connect, open_database, translated_errors
from adventure_quest.store.tailing import HeadSignal

MAX_EVENTS_PER_COMMIT: Final = 20_000
#: Event ids looked up by one query of ``read_by_ids`` (SQLite bounds a statement's parameters).
IDS_PER_QUERY: Final = 1_000
#: How long the writer may wait for more callers of a busy store before it commits.
LINGER_S: Final = 0.0003
#: Below this many callers per commit the writer never lingers (latency over batching).
LINGER_MIN_BATCH: Final = 8


class SQLiteEventStore:
    """Event store in one SQLite file (``sqlite:///PATH``); durable on acknowledge."""

    def __init__(self, path: str, *, shard: int = 0, stream_cache_size: int = 100_000) -> None:
        self.path = path
        self.shard = shard
        self._signal = HeadSignal()
        self._writer_conn = open_database(path)
        self._local = threading.local()
        self.cached_versions = VersionCache(stream_cache_size)
        self._queue: queue.SimpleQueue[Append | None] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self._closed = False
        self._last_batch = 0
        self.commits = 0

    # -- write side -------------------------------------------------------------------------

    async def append(
        self, stream_id: str, expected_version: ExpectedVersion, events: Sequence[NewEvent]
    ) -> AppendResult:
        if self._closed:
            raise StoreClosedError("the event store is closed")
        validate_append(stream_id, expected_version, events)
        request = Append(stream_id, expected_version, events, asyncio.get_running_loop())
        if self._thread is None:
            self._start_writer()
        self._queue.put(request)
        return await request.future

    def _start_writer(self) -> None:
        with self._lock:
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._write_loop, name=f"aq-writer:{self.path}", daemon=True
                )
                self._thread.start()

    def _write_loop(self) -> None:
        stopping = False
        while not stopping:
            first = self._queue.get()
            if first is None:
                break
            batch = [first]
            try:
                results, stopping = self._commit(batch, gather=True)
            except Exception as error:  # a bug must fail these appends, not hang their callers
                results = [StoreError(f"append to {self.path} failed: {error!r}")] * len(batch)
            self.commits += 1
            deliver(batch, results, self._signal.notify)

    def _commit(self, batch: list[Append], *, gather: bool) -> tuple[list[Result], bool]:
        """Commit ``batch`` (growing it with queued requests when ``gather``) in one transaction.

        Returns each request's result, and whether the close sentinel was taken off the queue.
        """
        conn = self._writer_conn
        stopping = False
        try:
            with translated_errors(self.path):
                conn.execute("BEGIN IMMEDIATE")
                try:
                    transaction = Transaction(
                        conn,
                        cached=self.cached_versions,
                        shard=self.shard,
                        explain_conflict=self._explain_conflict,
                    )
                    transaction.add(batch)
                    if gather:
                        stopping = self._gather(transaction, batch)
                    conn.execute("COMMIT")
                except BaseException:
                    if conn.in_transaction:
                        conn.execute("ROLLBACK")
                    raise
        except sqlite3.IntegrityError:
            self.cached_versions.clear()
            return self._after_unique_violation(batch), stopping
        except StoreError as error:
            return [error] * len(batch), stopping
        except sqlite3.Error as error:
            return [StoreError(f"append to {self.path} failed: {error}")] * len(batch), stopping
        for stream_id, version in transaction.versions.items():
            self.cached_versions.put(stream_id, version)
        return transaction.results, stopping

    def _gather(self, transaction: Transaction, batch: list[Append]) -> bool:
        """Insert requests as they arrive until the queue is dry; True if told to stop.

        Rows are inserted while the event loop is still producing the rest of the batch, so
        SQLite's work overlaps the callers'. When the previous commit served many callers, they
        are about to send their next appends: waiting up to LINGER_S for them to reach the
        previous batch's size lets one fsync serve them all.
        """
        take = self._queue.get
        target = self._last_batch if self._last_batch >= LINGER_MIN_BATCH else 1
        count = sum(len(request.events) for request in batch)
        deadline = 0.0
        stopping = False
        while count < MAX_EVENTS_PER_COMMIT and not stopping:
            arrived: list[Append] = []
            while True:
                try:
                    request = take(block=False)
                except queue.Empty:
                    break
                if request is None:
                    stopping = True
                    break
                arrived.append(request)
            if not arrived and not stopping:
                if len(batch) >= target:
                    break
                now = time.monotonic()
                deadline = deadline or now + LINGER_S
                if now >= deadline:
                    break
                try:
                    request = take(timeout=deadline - now)
                except queue.Empty:
                    break
                if request is None:
                    stopping = True
                else:
                    arrived.append(request)
            batch += arrived
            count += sum(len(request.events) for request in arrived)
            transaction.add(arrived)
        self._last_batch = len(batch)
        return stopping

    def _after_unique_violation(self, batch: list[Append]) -> list[Result]:
        """Settle a batch a unique index refused: an event id was reused, or another process wrote.

        The appends reusing recorded ids are answered from what is recorded (a repeat, or a
        refusal); the others commit again together, and only if that fails too, one by one.
        """
        if len(batch) == 1:
            return [self._explain_conflict(batch[0])]
        found = self._recorded([event.event_id for request in batch for event in request.events])
        results: dict[int, Result] = {}
        rest: list[int] = []
        for n, request in enumerate(batch):
            if any(event.event_id in found for event in request.events):
                results[n] = reused(request, found, self.shard)
            else:
                rest.append(n)
        if rest and results:
            settled = self._commit([batch[n] for n in rest], gather=False)[0]
        else:
            settled = [self._commit([batch[n]], gather=False)[0][0] for n in rest]
        results.update(zip(rest, settled, strict=True))
        return [results[n] for n in range(len(batch))]

    def _recorded(self, ids: list[str]) -> dict[str, tuple[str, int, int]]:
        """Which of ``ids`` are recorded: id -> (stream id, version, position)."""
        marks = ",".join("?" * len(ids))
        with translated_errors(self.path):
            rows = self._writer_conn.execute(
                f"SELECT event_id, stream_id, version, position FROM events"
                f" WHERE event_id IN ({marks})",
                ids,
            ).fetchall()
        return {row[0]: (row[1], row[2], row[3]) for row in rows}

    def _explain_conflict(self, request: Append) -> Result:
        """A conflicting append is either a repeat of one already recorded, or a real conflict."""
        found = self._recorded([event.event_id for event in request.events])
        if found:
            return reused(request, found, self.shard)
        with translated_errors(self.path):
            actual = committed_version(self._writer_conn, request.stream_id)
        return ConcurrencyError(request.stream_id, request.expected, actual)

    # -- read side --------------------------------------------------------------------------

    def _reader(self) -> sqlite3.Connection:
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            conn = connect(self.path, durable=True)
            self._local.conn = conn
        return conn

    async def read_stream(
        self, stream_id: str, from_version: int = 1, to_version: int | None = None
    ) -> list[RecordedEvent]:
        last = (1 << 62) if to_version is None else to_version
        with translated_errors(self.path):
            rows = self._reader().execute(
                f"SELECT event_id, {STREAM_COLUMNS} FROM events"
                " WHERE stream_id = ? AND version BETWEEN ? AND ? ORDER BY version",
                (stream_id, from_version, last),
            )
            return stream_events(stream_id, rows, self.shard)

    async def stream_version(self, stream_id: str) -> int:
        with translated_errors(self.path):
            return committed_version(self._reader(), stream_id)

    async def read_by_ids(self, stream_id: str, event_ids: Sequence[str]) -> list[RecordedEvent]:
        ids = list(dict.fromkeys(event_ids))
        found: list[RecordedEvent] = []
        for start in range(0, len(ids), IDS_PER_QUERY):
            chunk = ids[start : start + IDS_PER_QUERY]
            marks = ", ".join("?" * len(chunk))
            with translated_errors(self.path):
                rows = self._reader().execute(
                    f"SELECT event_id, {STREAM_COLUMNS} FROM events"
                    f" WHERE event_id IN ({marks}) AND stream_id = ?",
                    (*chunk, stream_id),
                )
                found += stream_events(stream_id, rows, self.shard)
        return sorted(found, key=lambda event: event.version)

    async def read_all(self, after_position: int = 0, limit: int = 1000) -> list[RecordedEvent]:
        with translated_errors(self.path):
            rows = self._reader().execute(
                f"SELECT event_id, {LOG_COLUMNS} FROM events"
                " WHERE position > ? ORDER BY position LIMIT ?",
                (after_position, limit),
            )
            return log_events(rows, self.shard)

    async def wait_for(self, after_position: int, timeout: float) -> int:
        return await self._signal.wait_for(self.head, after_position, timeout)

    def logs(self) -> Sequence[SQLiteEventStore]:
        return (self,)

    async def head(self) -> int:
        with translated_errors(self.path):
            row = self._reader().execute("SELECT coalesce(max(position), 0) FROM events")
            return int(row.fetchone()[0])

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        thread = self._thread
        if thread is not None:
            self._queue.put(None)
            await asyncio.to_thread(thread.join)
        self._writer_conn.close()
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            conn.close()
