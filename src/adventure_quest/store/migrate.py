"""``aq db upgrade``: bring one shard's schema to the version this code needs."""

from __future__ import annotations

from adventure_quest.store.errors import StoreUrlError, parse_url
from adventure_quest.store.postgres import schema as postgres_schema
from adventure_quest.store.sqlite import schema as sqlite_schema

SCHEMA_VERSION_OF = {
    "sqlite": sqlite_schema.SCHEMA_VERSION,
    "postgresql": postgres_schema.SCHEMA_VERSION,
    "postgres": postgres_schema.SCHEMA_VERSION,
    "memory": 0,
}


async def upgrade_store(url: str) -> list[int]:
    """Apply the migrations the shard at ``url`` lacks; returns the versions applied."""
    scheme = parse_url(url).scheme
    if scheme in ("postgresql", "postgres"):
        from adventure_quest.store.postgres.connect import upgrade

        return await upgrade(url)
    if scheme == "sqlite":
        from adventure_quest.store.urls import sqlite_path

        return sqlite_schema.upgrade(sqlite_path(url))
    if scheme == "memory":
        return []
    raise StoreUrlError(f"unsupported store URL {url!r}")
