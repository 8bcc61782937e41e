"""Opening a SQLite store file safely: header checks, schema creation and versioning."""

from __future__ import annotations

import contextlib
import os
import sqlite3
import threading
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

from adventure_quest.store.errors import StoreCorruptError, StoreError, StoreSchemaError

SCHEMA_VERSION = 2
#: Small pages: an append dirties one index leaf per stream it touches, and every dirty page is
#: written to the WAL and fsync'd; 1 KiB pages cut the bytes per commit about fourfold.
PAGE_SIZE = 1024
#: Checkpoint less often than SQLite's default (1000 pages): a checkpoint writes each page once
#: however often it changed, and runs inside a commit.
WAL_AUTOCHECKPOINT_PAGES = 10_000
#: Page cache per connection, KiB: the hot index leaves of busy streams stay in memory.
CACHE_KIB = 32_768
_MAGIC = b"SQLite format 3\x00"

SCHEMA = """
CREATE TABLE IF NOT EXISTS events (
    position       INTEGER PRIMARY KEY,
    event_id       TEXT    NOT NULL,
    stream_id      TEXT    NOT NULL,
    stream_type    TEXT    NOT NULL,
    version        INTEGER NOT NULL,
    event_type     TEXT    NOT NULL,
    schema_version INTEGER NOT NULL,
    payload        BLOB    NOT NULL,
    metadata       BLOB    NOT NULL
);
CREATE UNIQUE INDEX IF NOT EXISTS events_stream_version ON events (stream_id, version);
CREATE UNIQUE INDEX IF NOT EXISTS events_event_id ON events (event_id);
CREATE TABLE IF NOT EXISTS snapshots (
    stream_id      TEXT    PRIMARY KEY,
    version        INTEGER NOT NULL,
    schema_version INTEGER NOT NULL,
    state          BLOB    NOT NULL
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS checkpoints (
    name     TEXT    PRIMARY KEY,
    position INTEGER NOT NULL
) WITHOUT ROWID;
"""


@contextlib.contextmanager
def translated_errors(path: str) -> Iterator[None]:
    """Turn SQLite's errors about a damaged or foreign file into StoreCorruptError."""
    try:
        yield
    except sqlite3.DatabaseError as error:
        if isinstance(error, sqlite3.IntegrityError | sqlite3.OperationalError):
            raise
        raise StoreCorruptError(
            f"{path} is not a readable Adventure Quest store ({error}); "
            "restore it from a backup or point the store URL at another file"
        ) from error


#: Open connections of this process per file (device, inode): see ``check_header``.
_open: Counter[tuple[int, int]] = Counter()
_open_lock = threading.Lock()  # readers connect from their own threads


class _Connection(sqlite3.Connection):
    """A connection that keeps ``_open`` counting while it is open."""

    _file: tuple[int, int] | None = None

    def close(self) -> None:
        if self._file is not None:
            with _open_lock:
                _open[self._file] -= 1
            self._file = None
        super().close()


def check_header(path: str) -> None:
    """Refuse a file that is not SQLite, or is shorter than its header says (truncated).

    The header is read with a plain ``open()`` only while this process has no SQLite connection
    to the file: POSIX advisory locks belong to the process, and closing *any* descriptor of a
    file drops every lock the process holds on it. Reading it with a connection open left that
    connection without its WAL read lock, and another process closing its last connection then
    deleted the WAL this one was still writing to: acknowledged appends were lost (SQLite's "How
    To Corrupt An SQLite Database File", 2.2). With a connection open, the file was checked when
    that connection was made, and SQLite's own reads report damage since.
    """
    info = os.stat(path)
    if info.st_size == 0 or _open[(info.st_dev, info.st_ino)] > 0:
        return
    size = info.st_size
    with open(path, "rb") as file:
        header = file.read(100)
    if len(header) < 100 or not header.startswith(_MAGIC):
        raise StoreCorruptError(
            f"{path} is not a SQLite database (bad header); "
            "point the store URL at an Adventure Quest store file"
        )
    page_size = int.from_bytes(header[16:18], "big")
    page_size = 65536 if page_size == 1 else page_size
    change_counter = header[24:28]
    pages = int.from_bytes(header[28:32], "big")
    valid_for = header[92:96]
    # While another process checkpoints, page 1 (with the new size) is written before the file
    # grows: a live WAL makes the comparison meaningless, and SQLite's own reads catch damage.
    in_use = os.path.exists(f"{path}-wal") and os.path.getsize(f"{path}-wal") > 0
    if change_counter == valid_for and pages * page_size > size and not in_use:
        raise StoreCorruptError(
            f"{path} is truncated: its header says {pages * page_size} bytes, the file has "
            f"{size}; restore it from a backup"
        )


def connect(path: str, *, durable: bool) -> sqlite3.Connection:
    """Open a connection in autocommit mode with WAL; ``durable`` fsyncs every commit."""
    conn = sqlite3.connect(
        path, isolation_level=None, check_same_thread=False, timeout=30.0, factory=_Connection
    )
    if path != ":memory:":
        info = os.stat(path)
        conn._file = (info.st_dev, info.st_ino)
        with _open_lock:
            _open[conn._file] += 1
    try:
        with translated_errors(path):
            conn.execute("PRAGMA busy_timeout=30000")
            conn.execute(f"PRAGMA cache_size=-{CACHE_KIB}")
            conn.execute(f"PRAGMA synchronous={'FULL' if durable else 'NORMAL'}")
    except BaseException:
        conn.close()  # a damaged file must not keep -wal/-shm files behind
        raise
    return conn


def upgrade(path: str) -> list[int]:
    """Create or migrate the store at ``path``; returns the schema versions applied."""
    exists = os.path.exists(path) and os.path.getsize(path) > 0
    before = 0
    if exists:
        check_header(path)
        probe = connect(path, durable=False)
        with translated_errors(path):
            before = probe.execute("PRAGMA user_version").fetchone()[0]
        probe.close()
    open_database(path).close()
    return list(range(before + 1, SCHEMA_VERSION + 1))


def open_database(path: str) -> sqlite3.Connection:
    """Open (creating if new) the store at ``path`` and make sure its schema is ours and current."""
    if path != ":memory:":
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        if os.path.exists(path):
            check_header(path)
    try:
        conn = connect(path, durable=True)
    except sqlite3.Error as error:
        raise StoreError(f"cannot open SQLite store {path}: {error}") from error
    try:
        _prepare(conn, path)
    except BaseException:
        conn.close()  # a damaged file must not keep -wal/-shm files behind
        raise
    return conn


def _prepare(conn: sqlite3.Connection, path: str) -> None:
    with translated_errors(path):
        version = conn.execute("PRAGMA user_version").fetchone()[0]
        tables = {row[0] for row in conn.execute("SELECT name FROM sqlite_master")}
        if version > SCHEMA_VERSION:
            raise StoreSchemaError(
                f"{path} has schema version {version}, newer than this code's {SCHEMA_VERSION}; "
                "upgrade Adventure Quest"
            )
        if version == 0 and tables:
            raise StoreSchemaError(
                f"{path} is a SQLite database but not an Adventure Quest store "
                f"(it has tables {sorted(tables)}); point the store URL at another file"
            )
        if version == 0:
            conn.execute(f"PRAGMA page_size={PAGE_SIZE}")
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute(f"PRAGMA wal_autocheckpoint={WAL_AUTOCHECKPOINT_PAGES}")
        if version < SCHEMA_VERSION:
            conn.executescript(f"BEGIN; {SCHEMA} PRAGMA user_version={SCHEMA_VERSION}; COMMIT;")
