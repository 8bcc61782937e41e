"""SQLite snapshot store, in the same file as the events (table ``snapshots``)."""

from __future__ import annotations

import sqlite3

from adventure_quest.store.ports import Snapshot
from adventure_quest.store.sqlite.schema import connect, open_database, translated_errors

# A newer snapshot replaces the kept one, and so does any snapshot under another schema version.
_UPSERT = """
INSERT INTO snapshots (stream_id, version, schema_version, state) VALUES (?, ?, ?, ?)
ON CONFLICT (stream_id) DO UPDATE SET
    version = excluded.version, schema_version = excluded.schema_version, state = excluded.state
WHERE excluded.version > snapshots.version OR excluded.schema_version != snapshots.schema_version
"""


class SQLiteSnapshotStore:
    """Snapshots are a cache of replay: a lost one costs a longer load, never a wrong state."""

    def __init__(self, path: str) -> None:
        self.path = path
        open_database(path).close()
        self._conn: sqlite3.Connection = connect(path, durable=False)

    async def save(self, snapshot: Snapshot) -> None:
        with translated_errors(self.path):
            self._conn.execute(
                _UPSERT,
                (snapshot.stream_id, snapshot.version, snapshot.schema_version, snapshot.state),
            )

    async def load(self, stream_id: str) -> Snapshot | None:
        with translated_errors(self.path):
            row = self._conn.execute(
                "SELECT stream_id, version, schema_version, state FROM snapshots"
                " WHERE stream_id = ?",
                (stream_id,),
            ).fetchone()
        return None if row is None else Snapshot(row[0], row[1], row[2], row[3])

    async def close(self) -> None:
        self._conn.close()
