"""What a read model is made of: tables, a row cache for one batch, the projection protocol."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any, Literal, Protocol

import msgspec

from adventure_quest.domain.events import Event
from adventure_quest.store.envelope import RecordedEvent

ColumnType = Literal["text", "integer", "json"]
Row = dict[str, Any]
RowKey = tuple[str, str]  # (table name, primary key value)


class Table(msgspec.Struct, frozen=True):
    """One denormalised table: a text primary key, typed columns, indexes for its questions."""

    name: str
    key: str
    columns: dict[str, ColumnType]
    indexes: tuple[tuple[str, ...], ...] = ()


class Unit(Protocol):
    """One read-database transaction: rows and applied stream versions change together."""

    async def versions(self, projection: str, stream_ids: Sequence[str]) -> dict[str, int]:
        """The last applied version of each stream for ``projection`` (absent: none)."""
        ...

    async def set_versions(self, projection: str, versions: dict[str, int]) -> None:
        """Record the last applied version of streams for ``projection``."""
        ...

    async def load(self, table: Table, keys: Sequence[str]) -> dict[str, Row]:
        """The rows of ``table`` with these keys that exist."""
        ...

    async def write(self, table: Table, puts: dict[str, Row], deletes: Sequence[str]) -> None:
        """Upsert ``puts`` and delete ``deletes``."""
        ...


class Rows:
    """The rows a batch reads and writes, loaded once and written once per batch."""

    def __init__(self, unit: Unit, tables: dict[str, Table]) -> None:
        self._unit = unit
        self._tables = tables
        self._rows: dict[RowKey, Row | None] = {}
        self.changed: set[RowKey] = set()
        self._journal: list[tuple[RowKey, Row | None, bool]] | None = None

    async def prefetch(self, keys: Iterable[RowKey]) -> None:
        """Load, table by table in one query each, the rows not loaded yet."""
        wanted: dict[str, list[str]] = {}
        for table, key in keys:
            if (table, key) not in self._rows:
                self._rows[(table, key)] = None
                wanted.setdefault(table, []).append(key)
        for table, table_keys in wanted.items():
            for key, row in (await self._unit.load(self._tables[table], table_keys)).items():
                self._rows[(table, key)] = row

    def absent(self, keys: Iterable[RowKey]) -> None:
        """Take these rows as known not to exist (the caller checked more cheaply)."""
        for row_key in keys:
            self._rows.setdefault(row_key, None)

    async def get(self, table: str, key: str) -> Row | None:
        """The row (a copy you may change and ``put``), or None."""
        if (table, key) not in self._rows:
            await self.prefetch([(table, key)])
        row = self._rows[(table, key)]
        return None if row is None else dict(row)

    def put(self, table: str, key: str, row: Row) -> None:
        self._remember((table, key))
        self._rows[(table, key)] = row
        self.changed.add((table, key))

    def delete(self, table: str, key: str) -> None:
        self._remember((table, key))
        self._rows[(table, key)] = None
        self.changed.add((table, key))

    def _remember(self, row_key: RowKey) -> None:
        if self._journal is not None:
            self._journal.append((row_key, self._rows.get(row_key), row_key in self.changed))

    def begin(self) -> None:
        """Start recording changes, so one event's changes can be undone."""
        self._journal = []

    def undo_point_passed(self) -> None:
        """Keep the changes since ``begin``."""
        self._journal = None

    def undo(self) -> None:
        """Forget every change since ``begin`` (an event that failed half-way)."""
        for row_key, before, was_changed in reversed(self._journal or []):
            self._rows[row_key] = before
            if not was_changed:
                self.changed.discard(row_key)
        self._journal = None

    async def flush(self) -> None:
        """Write every changed row through the unit."""
        by_table: dict[str, tuple[dict[str, Row], list[str]]] = {}
        for table, key in self.changed:
            puts, deletes = by_table.setdefault(table, ({}, []))
            row = self._rows[(table, key)]
            if row is None:
                deletes.append(key)
            else:
                puts[key] = row
        for table, (puts, deletes) in by_table.items():
            await self._unit.write(self._tables[table], puts, deletes)
        self.changed.clear()


class Projection(Protocol):
    """A read model: the tables it owns and how each event changes them."""

    @property
    def name(self) -> str:
        """The projection's name (its rebuilds and applied versions are keyed by it)."""
        ...

    @property
    def tables(self) -> Sequence[Table]:
        """The tables it owns."""
        ...

    def prefetch(self, event: Event, recorded: RecordedEvent) -> Iterable[RowKey]:
        """Rows ``apply`` will read for this event (loaded in bulk before the batch)."""
        ...

    async def apply(self, event: Event, recorded: RecordedEvent, rows: Rows) -> None:
        """Change the rows for one event; must be deterministic (rebuild equals live)."""
        ...


def table_names(projection: Projection) -> dict[str, Table]:
    """Name used in the projection's code -> table written (a rebuild writes shadow tables)."""
    renamed: dict[str, Table] | None = getattr(projection, "renamed", None)
    return dict(renamed) if renamed is not None else {t.name: t for t in projection.tables}
