"""PostgreSQL snapshot store (table ``aq_snapshots`` beside the events of the same shard)."""

from __future__ import annotations

import asyncio

import asyncpg

from adventure_quest.store.ports import Snapshot
from adventure_quest.store.postgres.connect import connect_pool, translated

# A newer snapshot replaces the kept one, and so does any snapshot under another schema version.
_UPSERT = """
INSERT INTO aq_snapshots (stream_id, version, schema_version, state) VALUES ($1, $2, $3, $4)
ON CONFLICT (stream_id) DO UPDATE SET
    version = excluded.version, schema_version = excluded.schema_version, state = excluded.state
WHERE excluded.version > aq_snapshots.version
   OR excluded.schema_version != aq_snapshots.schema_version
"""


class PostgresSnapshotStore:
    """Snapshots are a cache of replay: a lost one costs a longer load, never a wrong state."""

    def __init__(self, dsn: str, *, pool_size: int = 4) -> None:
        self.dsn = dsn
        self._pool_size = pool_size
        self._pool: asyncpg.Pool | None = None
        self._pool_lock = asyncio.Lock()

    async def _connection_pool(self) -> asyncpg.Pool:
        # Under a lock: two first uses at once (the world clock and a command, at start) made
        # two pools, and the one overwritten was never closed.
        async with self._pool_lock:
            if self._pool is None:
                self._pool = await connect_pool(self.dsn, self._pool_size)
        return self._pool

    async def save(self, snapshot: Snapshot) -> None:
        pool = await self._connection_pool()
        async with translated(self.dsn):
            await pool.execute(
                _UPSERT,
                snapshot.stream_id, snapshot.version, snapshot.schema_version, snapshot.state,
            )  # fmt: skip

    async def load(self, stream_id: str) -> Snapshot | None:
        pool = await self._connection_pool()
        async with translated(self.dsn):
            row = await pool.fetchrow(
                "SELECT stream_id, version, schema_version, state FROM aq_snapshots"
                " WHERE stream_id = $1",
                stream_id,
            )
        return None if row is None else Snapshot(row[0], row[1], row[2], row[3])

    async def close(self) -> None:
        if self._pool is not None:
            await self._pool.close()
