"""SQL the read-database adapters share: one dialect difference, the placeholder."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import Any, NamedTuple

import msgspec

from adventure_quest.projections.model import Generation, GenerationCache, Row, Table

Placeholder = Callable[[int], str]  # 1-based index -> "?" or "$1"

#: Each stream's applied versions, every projection's in one row: a batch reads and writes one
#: row per stream, not one per stream and projection.
VERSIONS_TABLE = "projection_stream_versions"
#: The layout before: one row per projection and stream (``migrate_versions`` moves it over).
OLD_VERSIONS_TABLE = "projection_versions"
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
    f"CREATE TABLE IF NOT EXISTS {VERSIONS_TABLE}"
    " (stream_id TEXT PRIMARY KEY, versions TEXT NOT NULL)"
)


#: How many units have committed (on PostgreSQL: units without a scope, one row per server
#: process slot): a writer that finds it moved since its own last commit knows another writer
#: changed rows it may hold (``GenerationCache``).
GENERATION_TABLE = "read_generation"
GENERATION_DDL = (
    f"CREATE TABLE IF NOT EXISTS {GENERATION_TABLE} (id INTEGER PRIMARY KEY, n BIGINT NOT NULL)"
)
#: A unit counts itself as it begins (committed with it, or rolled back with it): the count
#: it returns, less one, is how many units committed before it.
NEXT_GENERATION = (
    f"INSERT INTO {GENERATION_TABLE} (id, n) VALUES (0, 1)"
    f" ON CONFLICT (id) DO UPDATE SET n = {GENERATION_TABLE}.n + 1 RETURNING n"
)


#: The highest fencing token each (consumer group, partition) was applied under
#: (projections/fencing.py).
FENCES_TABLE = "read_fences"
#: How many units with a scope committed in each queue partition (PostgreSQL; projections/
#: postgres.py): the row of a partition is locked by its unit until it commits.
SCOPES_TABLE = "read_scope_generation"
SCOPES_DDL = (
    f"CREATE TABLE IF NOT EXISTS {SCOPES_TABLE} (scope INTEGER PRIMARY KEY, n BIGINT NOT NULL)"
)

FENCES_DDL = (
    f"CREATE TABLE IF NOT EXISTS {FENCES_TABLE} (consumer_group TEXT NOT NULL,"
    " partition BIGINT NOT NULL, token BIGINT NOT NULL, PRIMARY KEY (consumer_group, partition))"
)


def raise_fences(count: int, mark: Placeholder) -> str:
    """Record ``count`` (group, partition, token) fences whose token is at least the recorded one.

    Returns the (group, partition) of each fence recorded; a fence not returned met a newer
    token. The upsert locks each row, so the check and the write are one step for concurrent
    units: a unit under an older token waits for a newer one to commit, then is refused.
    """
    values = ", ".join(
        f"({mark(3 * n + 1)}, {mark(3 * n + 2)}, {mark(3 * n + 3)})" for n in range(count)
    )
    return (
        f"INSERT INTO {FENCES_TABLE} (consumer_group, partition, token) VALUES {values}"
        " ON CONFLICT (consumer_group, partition) DO UPDATE SET token = excluded.token"
        f" WHERE {FENCES_TABLE}.token <= excluded.token RETURNING consumer_group, partition"
    )


def recorded_fences(count: int, mark: Placeholder) -> str:
    """The recorded tokens of ``count`` (group, partition) pairs (to say why a unit was fenced)."""
    pairs = " OR ".join(
        f"(consumer_group = {mark(2 * n + 1)} AND partition = {mark(2 * n + 2)})"
        for n in range(count)
    )
    return f"SELECT consumer_group, partition, token FROM {FENCES_TABLE} WHERE {pairs}"


def migrate_versions(group_into_json: str) -> list[str]:
    """Statements that move the old layout's rows into the new one and drop the old table.

    ``group_into_json``: the dialect's aggregate of (projection, version) into a JSON object.
    """
    return [
        f"INSERT INTO {VERSIONS_TABLE} (stream_id, versions)"
        f" SELECT stream_id, {group_into_json} FROM {OLD_VERSIONS_TABLE} GROUP BY stream_id",
        f"DROP TABLE {OLD_VERSIONS_TABLE}",
    ]


class Versions(GenerationCache):
    """A read database's applied versions as its units read and wrote them.

    Within a unit each stream's row is read once and written once, so the five projections of
    a batch share them. Between units the rows stay, as long as no other writer committed
    (``GenerationCache``): the adapter calls ``begin`` with the unit's generation
    (``NEXT_GENERATION``), ``committed`` after the commit, and ``clear`` on any failure.
    """

    def __init__(self, capacity: int = 100_000) -> None:
        super().__init__(capacity)
        self._rows: dict[str, dict[str, int]] = {}
        self._changed: set[str] = set()

    def size(self) -> int:
        return len(self._rows)

    def forget(self) -> None:
        self._rows.clear()
        self._changed.clear()

    def begin(self, generation: Generation) -> None:
        """A unit begins, at ``generation``."""
        self.check(generation)
        self._changed.clear()

    def missing(self, stream_ids: Sequence[str]) -> list[str]:
        """The streams whose rows this unit has not read yet."""
        rows = self._rows
        return [stream for stream in dict.fromkeys(stream_ids) if stream not in rows]

    def loaded(self, asked: Sequence[str], found: Sequence[tuple[str, str]]) -> None:
        """The rows read for ``asked`` (a stream without one has no versions yet)."""
        rows = self._rows
        for stream in asked:
            rows[stream] = {}
        for stream, text in found:
            rows[stream] = _decode_versions(text)

    def of(self, projection: str, stream_ids: Sequence[str]) -> dict[str, int]:
        rows, found = self._rows, {}
        for stream in stream_ids:
            version = rows[stream].get(projection)
            if version is not None:
                found[stream] = version
        return found

    def set(self, projection: str, versions: dict[str, int]) -> None:
        rows = self._rows
        for stream, version in versions.items():
            rows[stream][projection] = version
        self._changed.update(versions)

    def drop(self, projection: str) -> None:
        """Forget a projection's versions among the rows read (the adapter drops the rest)."""
        for stream, row in self._rows.items():
            if row.pop(projection, None) is not None:
                self._changed.add(stream)

    def changes(self) -> list[tuple[str, str]]:
        """(stream id, versions as JSON) of each row to write, once, at commit."""
        rows = self._rows
        changed = [(stream, _encode(rows[stream]).decode()) for stream in self._changed]
        self._changed.clear()
        return changed


_decode_versions = msgspec.json.Decoder(dict[str, int]).decode


def upsert(table: Table, mark: Placeholder) -> str:
    names = [table.key, *table.columns]
    values = ", ".join(mark(n + 1) for n in range(len(names)))
    updates = ", ".join(f"{name} = excluded.{name}" for name in table.columns)
    return (
        f"INSERT INTO {table.name} ({', '.join(names)}) VALUES ({values})"
        f" ON CONFLICT ({table.key}) DO UPDATE SET {updates}"
    )


def select(
    table: Table,
    where: dict[str, Any],
    order_by: Sequence[tuple[str, bool]],
    limit: int | None,
    mark: Placeholder,
    *,
    after: str | None = None,
) -> tuple[str, list[Any]]:
    names = [table.key, *table.columns]
    clause = _where(table, where, mark)
    _check_columns(table, [c for c, _ in order_by])
    params = list(where.values())
    if after is not None:  # keyset paging: rows whose key sorts after ``after``
        params.append(after)
        clause += f"{' AND' if clause else ' WHERE'} {table.key} > {mark(len(params))}"
    sql = f"SELECT {', '.join(names)} FROM {table.name}{clause}"
    if order_by:
        sql += " ORDER BY " + ", ".join(f"{c} {'DESC' if d else 'ASC'}" for c, d in order_by)
    if limit is not None:
        sql += f" LIMIT {int(limit)}"
    return sql, params


def count(table: Table, where: dict[str, Any], mark: Placeholder) -> tuple[str, list[Any]]:
    """How many rows match ``where``, counted by the database: no row is fetched."""
    return f"SELECT COUNT(*) FROM {table.name}" + _where(table, where, mark), list(where.values())


def totals(table: Table, by: str, summed: str | None, limit: int | None) -> str:
    """Per value of ``by`` (highest first), its rows' sum of ``summed`` (None: their count)."""
    _check_columns(table, [by] if summed is None else [by, summed])
    total = "COUNT(*)" if summed is None else f"SUM({summed})"
    sql = f"SELECT {by}, {total} FROM {table.name} GROUP BY {by} ORDER BY {by} DESC"
    return sql if limit is None else f"{sql} LIMIT {int(limit)}"


def _where(table: Table, where: dict[str, Any], mark: Placeholder) -> str:
    _check_columns(table, list(where))
    if not where:
        return ""
    return " WHERE " + " AND ".join(f"{c} = {mark(n + 1)}" for n, c in enumerate(where))


def _check_columns(table: Table, columns: Sequence[str]) -> None:
    """Column names go into the SQL text: only the table's own are let through."""
    for column in columns:
        if column != table.key and column not in table.columns:
            raise ValueError(f"{table.name} has no column {column!r}")


Encoded = dict[int, tuple[Any, str]]


def to_params(table: Table, puts: dict[str, Row], encoded: Encoded) -> list[list[Any]]:
    """Each row's values in column order, after its key, JSON columns encoded.

    ``encoded`` (one per unit) keeps what was encoded by identity, with the value itself so
    the identity stays its own: a value put in two rows, such as a character's state in two
    tables, is encoded once.
    """
    layout = _layout(table, False)
    names, json_at = layout.names, layout.json_at
    params = []
    for key, row in puts.items():
        values = [key, *map(row.get, names)]
        for index in json_at:
            value = values[index]
            known = encoded.get(id(value))
            if known is not None and known[0] is value:
                values[index] = known[1]
            else:
                text = _encode(value).decode()
                encoded[id(value)] = (value, text)
                values[index] = text
        params.append(values)
    return params


Decode = Callable[[Any], Any]


class _Layout(NamedTuple):
    """The columns selected after the key, and how the JSON ones among them decode."""

    names: tuple[str, ...]
    json: tuple[tuple[str, Decode], ...]
    #: Where the JSON columns are among a row's parameters (the key first).
    json_at: tuple[int, ...]


#: Per table (by identity, the table kept so its id stays its own) and use.
_layouts: dict[tuple[int, bool], tuple[Table, _Layout]] = {}


def _typed(kind: type[Any]) -> Decode:
    decode = msgspec.json.Decoder(kind).decode

    def typed(value: Any) -> Any:
        try:
            return decode(value)
        except msgspec.ValidationError:
            return _decode(value)  # stored by older code: the projection converts (or fails)

    return typed


def _layout(table: Table, loading: bool) -> _Layout:
    """All columns, plain (queries, writes); or what projections read back (``loading``)."""
    found = _layouts.get((id(table), loading))
    if found is not None and found[0] is table:
        return found[1]
    names = table.read_back if loading and table.read_back else tuple(table.columns)
    json = tuple(
        (name, _typed(table.structs[name]) if loading and name in table.structs else _decode)
        for name in names
        if table.columns[name] == "json"
    )
    json_at = tuple(n for n, name in enumerate(names, start=1) if table.columns[name] == "json")
    layout = _Layout(names, json, json_at)
    _layouts[(id(table), loading)] = (table, layout)
    return layout


def loaded_columns(table: Table) -> tuple[str, ...]:
    """The columns ``Unit.load`` selects after the key: what projections read back."""
    return _layout(table, True).names


def select_by_keys(table: Table, count: int, mark: Placeholder, *, loading: bool = False) -> str:
    """The rows with ``count`` keys: every column, or what projections read back."""
    names = ", ".join([table.key, *_layout(table, loading).names])
    keys = ", ".join(mark(n + 1) for n in range(count))
    return f"SELECT {names} FROM {table.name} WHERE {table.key} IN ({keys})"


def to_rows(
    table: Table, records: Iterable[Sequence[Any]], *, loading: bool = False
) -> dict[str, Row]:
    """Key -> row from records selected in column order, JSON columns decoded.

    ``loading`` (records of ``select_by_keys(..., loading=True)``): the columns the table
    names in ``structs`` are decoded into those structs.
    """
    layout = _layout(table, loading)
    names, json = layout.names, layout.json
    rows: dict[str, Row] = {}
    for record in records:
        row: Row = dict(zip(names, record[1:], strict=True))
        for name, decode in json:
            value = row[name]
            if value is not None:
                row[name] = decode(value)
        rows[record[0]] = row
    return rows
