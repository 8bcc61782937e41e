"""Open the read database a URL names: ``sqlite:///PATH`` or ``postgresql://…``."""

from __future__ import annotations

from adventure_quest.projections.ports import ReadDatabase
from adventure_quest.projections.sqlite import SQLiteReadDatabase
from adventure_quest.store.errors import StoreUrlError, parse_url
from adventure_quest.store.urls import sqlite_path

SUPPORTED = "sqlite:///PATH or postgresql://USER@HOST:PORT/DB"


def check_read_database_url(url: str) -> str:
    """The scheme of a read database URL, checked without opening anything."""
    scheme = parse_url(url).scheme
    if "," in url:
        raise StoreUrlError(
            f"read database URL {url!r} names several databases;"
            f" a read database is one: {SUPPORTED}"
        )
    if scheme == "sqlite":
        sqlite_path(url)
    elif scheme not in ("postgresql", "postgres"):
        raise StoreUrlError(f"unsupported read database URL {url!r}; supported: {SUPPORTED}")
    return scheme


def open_read_database(url: str, *, pool_size: int = 4) -> ReadDatabase:
    """The read database a URL names; raises StoreUrlError naming the supported forms.

    ``pool_size``: connections of a PostgreSQL database's pool (SQLite has no pool).
    """
    scheme = check_read_database_url(url)
    if scheme == "sqlite":
        return SQLiteReadDatabase(sqlite_path(url))
    # Imported here: asyncpg is needed only by those who use PostgreSQL.
    from adventure_quest.projections.postgres import PostgresReadDatabase

    return PostgresReadDatabase(url, pool_size=pool_size)
