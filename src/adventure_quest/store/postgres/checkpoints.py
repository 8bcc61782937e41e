"""PostgreSQL checkpoint store (table ``aq_checkpoints`` beside the shard's events)."""

from __future__ import annotations

import asyncio

import asyncpg

from adventure_quest.store.postgres.connect import connect_pool, translated


class PostgresCheckpointStore:
    """A lost checkpoint only means events published again, which consumers ignore."""

    def __init__(self, dsn: str) -> None:
        self.dsn = dsn
        self._pool: asyncpg.Pool | None = None
        self._pool_lock = asyncio.Lock()

    async def _connection_pool(self) -> asyncpg.Pool:
        # Under a lock: two first uses at once (the world clock and a command, at start) made
        # two pools, and the one overwritten was never closed.
        async with self._pool_lock:
            if self._pool is None:
                self._pool = await connect_pool(self.dsn, 2)
        return self._pool

    async def load(self, name: str) -> int:
        pool = await self._connection_pool()
        async with translated(self.dsn):
            position = await pool.fetchval(
                "SELECT position FROM aq_checkpoints WHERE name = $1", name
            )
        return 0 if position is None else int(position)

    async def save(self, name: str, position: int) -> None:
        pool = await self._connection_pool()
        async with translated(self.dsn):
            await pool.execute(
                "INSERT INTO aq_checkpoints (name, position) VALUES ($1, $2) ON CONFLICT (name)"
                " DO UPDATE SET position = greatest(aq_checkpoints.position, excluded.position)",
                name,
                position,
            )

    async def close(self) -> None:
        if self._pool is not None:
            await self._pool.close()
