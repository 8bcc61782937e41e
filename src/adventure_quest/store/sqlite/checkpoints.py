"""SQLite checkpoint store, in the events file (table ``checkpoints``)."""

from __future__ import annotations

import sqlite3

from adventure_quest.store.sqlite.schema import connect, open_database, translated_errors


class SQLiteCheckpointStore:
    """A lost checkpoint only means events published again, which consumers ignore."""

    def __init__(self, path: str) -> None:
        self.path = path
        open_database(path).close()
        self._conn: sqlite3.Connection = connect(path, durable=False)

    async def load(self, name: str) -> int:
        with translated_errors(self.path):
            row = self._conn.execute(
                "SELECT position FROM checkpoints WHERE name = ?", (name,)
            ).fetchone()
        return 0 if row is None else int(row[0])

    async def save(self, name: str, position: int) -> None:
        with translated_errors(self.path):
            self._conn.execute(
                "INSERT INTO checkpoints (name, position) VALUES (?, ?) ON CONFLICT (name)"
                " DO UPDATE SET position = max(position, excluded.position)",
                (name, position),
            )

    async def close(self) -> None:
        self._conn.close()
