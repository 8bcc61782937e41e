"""The read-database port: projections write the primary, queries read (replicas later)."""

from __future__ import annotations

from collections.abc import Collection, Sequence
from contextlib import AbstractAsyncContextManager
from typing import Any, Protocol

from adventure_quest.projections.model import Row, Table, Unit


class ReadDatabase(Protocol):
    """Where read models live."""

    async def create(self, tables: Sequence[Table]) -> None:
        """Create the tables (and the bookkeeping of applied versions) if missing."""
        ...

    def unit(self, scope: Collection[int] | None = None) -> AbstractAsyncContextManager[Unit]:
        """A transaction: everything done through the unit commits together, or not at all.

        ``scope``: the queue partitions of the events it applies, when every row it changes
        belongs to them (projections/model.py ``Generation``): units of disjoint scopes then
        never wait for each other, and one keeps its caches while others commit elsewhere.
        None: it may change any row."""
        ...

    async def get(self, table: Table, key: str) -> Row | None:
        """One row by primary key."""
        ...

    async def select(
        self,
        table: Table,
        *,
        where: dict[str, Any] | None = None,
        order_by: Sequence[tuple[str, bool]] = (),
        limit: int | None = None,
        after: str | None = None,
    ) -> list[Row]:
        """Rows matching ``where`` (equality), ordered by (column, descending) pairs; with
        ``after``, only those whose primary key sorts after it (keyset paging)."""
        ...

    async def totals(
        self, table: Table, by: str, *, summed: str | None = None, limit: int | None = None
    ) -> dict[Any, int]:
        """Per value of ``by``, highest first (the first ``limit``), the sum of column
        ``summed`` over its rows, or (None) how many rows it has: computed by the database."""
        ...

    async def count(self, table: Table, *, where: dict[str, Any] | None = None) -> int:
        """How many rows match ``where`` (equality), counted by the database, none fetched."""
        ...

    async def close(self) -> None:
        """Release connections."""
        ...
