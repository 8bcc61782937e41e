"""Filling and settling one group-commit transaction of the SQLite event store's writer thread.

Everything queued goes into one ``BEGIN IMMEDIATE`` transaction: each append's expected version is
checked against a bounded cache of stream versions (backed by ``SELECT max(version)``), every
accepted event is inserted with one ``executemany``, the transaction commits once, and then all
futures are settled in one hop to each caller's event loop. An append whose expected version
conflicts fails alone; the others commit. When a unique index refuses the batch, only the appends
reusing recorded ids are settled from what is recorded; the rest commit together again.
"""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
import time
from collections.abc import Callable, Sequence

from adventure_quest.store.appending import check_expected, settle_reused_ids
from adventure_quest.store.envelope import (
    AppendResult,
    ExpectedVersion,
    NewEvent,
    stream_type_of,
)
from adventure_quest.store.errors import ConcurrencyError, InvalidAppendError
from adventure_quest.store.rows import encode_metadata

_INSERT = (
    "INSERT INTO events (position, event_id, stream_id, stream_type, version, event_type,"
    " schema_version, payload, metadata) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)"
)

Result = AppendResult | BaseException


class Append:
    __slots__ = ("events", "expected", "future", "loop", "stream_id")

    def __init__(
        self,
        stream_id: str,
        expected: ExpectedVersion,
        events: Sequence[NewEvent],
        loop: asyncio.AbstractEventLoop,
    ) -> None:
        self.stream_id = stream_id
        self.expected = expected
        self.events = events
        self.loop = loop
        self.future: asyncio.Future[AppendResult] = loop.create_future()


class VersionCache:
    """Bounded map of stream id to its committed version, owned by the writer thread."""

    def __init__(self, capacity: int) -> None:
        self.capacity = max(capacity, 1)
        self._versions: dict[str, int] = {}

    def get(self, stream_id: str) -> int | None:
        return self._versions.get(stream_id)

    def put(self, stream_id: str, version: int) -> None:
        versions = self._versions
        versions.pop(stream_id, None)
        versions[stream_id] = version
        if len(versions) > self.capacity:
            del versions[next(iter(versions))]

    def clear(self) -> None:
        self._versions.clear()


class Transaction:
    """A group-commit transaction being filled: each request's outcome and the rows inserted.

    ``explain_conflict`` answers a request whose expected version conflicts (a repeat of one
    already recorded, or a real conflict).
    """

    def __init__(
        self,
        conn: sqlite3.Connection,
        *,
        cached: VersionCache,
        shard: int,
        explain_conflict: Callable[[Append], Result],
    ) -> None:
        self.conn = conn
        self.cached = cached
        self.shard = shard
        self.explain_conflict = explain_conflict
        self.position: int = conn.execute(
            "SELECT coalesce(max(position), 0) FROM events"
        ).fetchone()[0]
        self.now = time.time()
        self.results: list[Result] = []
        self.versions: dict[str, int] = {}

    def add(self, requests: list[Append]) -> None:
        """Check each request's expected version and insert the rows of those that pass."""
        rows: list[tuple[object, ...]] = []
        versions, cached, now = self.versions, self.cached, self.now
        position = self.position
        for request in requests:
            stream_id = request.stream_id
            current = versions.get(stream_id)
            if current is None:
                current = cached.get(stream_id)
                if current is None:
                    current = committed_version(self.conn, stream_id)
            try:
                check_expected(stream_id, request.expected, current)
            except ConcurrencyError:
                self.results.append(self.explain_conflict(request))
                continue
            stream_type = stream_type_of(stream_id)
            for event in request.events:
                current += 1
                position += 1
                rows.append(
                    (
                        position,
                        event.event_id,
                        stream_id,
                        stream_type,
                        current,
                        event.event_type,
                        event.schema_version,
                        event.payload,
                        encode_metadata(event.metadata, now),
                    )
                )
            versions[stream_id] = current
            self.results.append(AppendResult(stream_id, current, position, shard=self.shard))
        if rows:
            self.conn.executemany(_INSERT, rows)
        self.position = position


def reused(request: Append, found: dict[str, tuple[str, int, int]], shard: int) -> Result:
    try:
        return settle_reused_ids(request.stream_id, request.events, found, shard)
    except InvalidAppendError as error:
        return error


def committed_version(conn: sqlite3.Connection, stream_id: str) -> int:
    row = conn.execute(
        "SELECT coalesce(max(version), 0) FROM events WHERE stream_id = ?", (stream_id,)
    ).fetchone()
    return int(row[0])


def deliver(batch: list[Append], results: list[Result], committed: Callable[[], None]) -> None:
    by_loop: dict[asyncio.AbstractEventLoop, list[tuple[Append, Result]]] = {}
    for request, result in zip(batch, results, strict=True):
        by_loop.setdefault(request.loop, []).append((request, result))
    for loop, settled in by_loop.items():
        # A closed loop has nobody waiting for these answers any more.
        with contextlib.suppress(RuntimeError):
            loop.call_soon_threadsafe(_settle, settled, committed)


def _settle(settled: list[tuple[Append, Result]], committed: Callable[[], None]) -> None:
    committed()
    for request, result in settled:
        future = request.future
        if future.done():
            continue
        if isinstance(result, BaseException):
            future.set_exception(result)
        else:
            future.set_result(result)
