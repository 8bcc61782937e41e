"""SQL the read-database adapters share: one dialect difference, the placeholder."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import msgspec

from adventure_quest.projections.model import Row, Table

Placeholder = Callable[[int], str]  # 1-based index -> "?" or "$1"

VERSIONS_TABLE = "projection_versions"
_encode = msgspec.json.Encoder().encode
_decode = msgspec.json.decode
_TYPES = {"text": "TEXT", "integer": "BIGINT", "json": "TEXT"}


def create_statements(table: Table) -> list[str]:
    """DDL for a read-model table and its indexes (idempotent)."""
    columns = [f"{table.key} TEXT PRIMARY KEY"] + [
        f"{name} {_TYPES[kind]}" for name, kind in table.columns.items()
    ]
    statements = [f"CREATE TABLE IF NOT EXISTS {table.name} ({', '.join(columns)})"]
    for columns_of_index in table.indexes:
        index = f"{table.name}_{'_'.join(columns_of_index)}"
        statements.append(
            f"CREATE INDEX IF NOT EXISTS {index} ON {table.name} ({', '.join(columns_of_index)})"
        )
    return statements


VERSIONS_DDL = (
    f"CREATE TABLE IF NOT EXISTS {VERSIONS_TABLE} (projection TEXT NOT NULL,"
    " stream_id TEXT NOT NULL, version BIGINT NOT NULL, PRIMARY KEY (projection, stream_id))"
)


def upsert(table: Table, mark: Placeholder) -> str:
    names = [table.key, *table.columns]
    values = ", ".join(mark(n + 1) for n in range(len(names)))
    updates = ", ".join(f"{name} = excluded.{name}" for name in table.columns)
    return (
        f"INSERT INTO {table.name} ({', '.join(names)}) VALUES ({values})"
        f" ON CONFLICT ({table.key}) DO UPDATE SET {updates}"
    )


def select_by_keys(table: Table, count: int, mark: Placeholder) -> str:
    names = ", ".join([table.key, *table.columns])
    keys = ", ".join(mark(n + 1) for n in range(count))
    return f"SELECT {names} FROM {table.name} WHERE {table.key} IN ({keys})"


def select(
    table: Table,
    where: dict[str, Any],
    order_by: Sequence[tuple[str, bool]],
    limit: int | None,
    mark: Placeholder,
) -> tuple[str, list[Any]]:
    names = [table.key, *table.columns]
    for column in [*where, *(c for c, _ in order_by)]:
        if column not in names:
            raise ValueError(f"{table.name} has no column {column!r}")
    sql = f"SELECT {', '.join(names)} FROM {table.name}"
    params = list(where.values())
    if where:
        sql += " WHERE " + " AND ".join(f"{c} = {mark(n + 1)}" for n, c in enumerate(where))
    if order_by:
        sql += " ORDER BY " + ", ".join(f"{c} {'DESC' if d else 'ASC'}" for c, d in order_by)
    if limit is not None:
        sql += f" LIMIT {int(limit)}"
    return sql, params


def to_params(table: Table, key: str, row: Row) -> list[Any]:
    """A row's values in column order, JSON columns encoded."""
    values: list[Any] = [key]
    for name, kind in table.columns.items():
        value = row.get(name)
        values.append(_encode(value).decode() if kind == "json" else value)
    return values


def to_row(table: Table, record: Sequence[Any]) -> tuple[str, Row]:
    """(key, row) from a selected record in column order, JSON columns decoded."""
    row: Row = {}
    for (name, kind), value in zip(table.columns.items(), record[1:], strict=True):
        row[name] = _decode(value) if kind == "json" and value is not None else value
    return record[0], row
