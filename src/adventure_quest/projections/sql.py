"""SQL the read-database adapters share: one dialect difference, the placeholder."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

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
    reader = _reader(table, False)
    values = [key, *map(row.get, reader.names)]
    for index in reader.json_at:
        values[index] = _encode(values[index]).decode()
    return values


Decode = Callable[[Any], Any]


class _Reader(NamedTuple):
    names: tuple[str, ...]
    json: tuple[tuple[str, Decode], ...]
    #: Where the JSON columns are among a row's parameters (the key first).
    json_at: tuple[int, ...]


#: Per table (by identity, the table kept so its id stays its own) and typed-ness.
_readers: dict[tuple[int, bool], tuple[Table, _Reader]] = {}


def _typed(kind: type[Any]) -> Decode:
    decode = msgspec.json.Decoder(kind).decode

    def typed(value: Any) -> Any:
        try:
            return decode(value)
        except msgspec.ValidationError:
            return _decode(value)  # stored by older code: the projection converts (or fails)

    return typed


def _reader(table: Table, typed: bool) -> _Reader:
    found = _readers.get((id(table), typed))
    if found is not None and found[0] is table:
        return found[1]
    json = tuple(
        (name, _typed(table.structs[name]) if typed and name in table.structs else _decode)
        for name, kind in table.columns.items()
        if kind == "json"
    )
    json_at = tuple(n for n, kind in enumerate(table.columns.values(), start=1) if kind == "json")
    reader = _Reader(tuple(table.columns), json, json_at)
    _readers[(id(table), typed)] = (table, reader)
    return reader


def to_row(table: Table, record: Sequence[Any], *, typed: bool = False) -> tuple[str, Row]:
    """(key, row) from a selected record in column order, JSON columns decoded.

    ``typed``: the columns the table names in ``structs`` are decoded into those structs.
    """
    reader = _reader(table, typed)
    row: Row = dict(zip(reader.names, record[1:], strict=True))
    for name, decode in reader.json:
        value = row[name]
        if value is not None:
            row[name] = decode(value)
    return record[0], row
