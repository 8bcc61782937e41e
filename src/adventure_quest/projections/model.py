"""What a read model is made of: tables, a row cache for one batch, the projection protocol."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from operator import itemgetter
from typing import Any, Final, Literal, Protocol, TypeVar, cast

import msgspec

from adventure_quest.domain.events import Event
from adventure_quest.projections.fencing import Fence
from adventure_quest.store.envelope import RecordedEvent

ColumnType = Literal["text", "integer", "json"]
Row = dict[str, Any]
RowKey = tuple[str, str]  # (table name, primary key value)
Undo = Callable[[], object]  # reverts a change made to a row in place
Decoded = tuple[Event, RecordedEvent]
#: What the projections of one batch share (see ``Batch.memo``): results of pure functions of
#: the batch's events, so a projection may reuse what another one computed.
Memo = dict[object, object]


class Table(msgspec.Struct, frozen=True):
    """One denormalised table: a text primary key, typed columns, indexes for its questions."""

    name: str
    key: str
    columns: dict[str, ColumnType]
    indexes: tuple[tuple[str, ...], ...] = ()
    #: JSON columns that projections read back as a struct (``Unit.load`` decodes them straight
    #: into it; queries still get plain data). A value that no longer fits stays plain data.
    structs: dict[str, type[Any]] = {}
    #: The columns projections read back from their rows (``Unit.load`` selects only these;
    #: empty: all). A projection that names them writes whole rows, never ``{**row, ...}``.
    read_back: tuple[str, ...] = ()


class Unit(Protocol):
    """One read-database transaction: rows and applied stream versions change together."""

    async def versions(self, projection: str, stream_ids: Sequence[str]) -> dict[str, int]:
        """The last applied version of each stream for ``projection`` (absent: none)."""
        ...

    async def set_versions(self, projection: str, versions: dict[str, int]) -> None:
        """Record the last applied version of streams for ``projection``."""
        ...

    async def drop_versions(self, projection: str) -> None:
        """Forget every applied version of ``projection`` (a rebuild's shadow, once swapped)."""
        ...

    async def fence(self, fences: Sequence[Fence]) -> None:
        """Record each fence's token unless a newer one is recorded for its partition; then
        raise ``Fenced`` (the unit must not commit). Takes the partitions' row locks."""
        ...

    async def generation(self) -> Generation:
        """How many units committed before this one, per scope (each counts itself as it
        begins, in its own transaction, so a unit rolled back counts for nothing)."""
        ...

    async def load(self, table: Table, keys: Sequence[str]) -> dict[str, Row]:
        """The rows of ``table`` with these keys that exist."""
        ...

    async def write(self, table: Table, puts: dict[str, Row], deletes: Sequence[str]) -> None:
        """Upsert ``puts`` and delete ``deletes``."""
        ...


#: Scope keys of a ``Generation`` that are not partitions: what units without a scope counted
#: (seen by scoped units), and what every unit counted (seen by units without a scope).
UNSCOPED: Final = -1
ALL: Final = -2


class Generation(msgspec.Struct, frozen=True):
    """Where a unit began: per scope, how many units had committed in it; and the scopes it
    counts itself in.

    A unit with a scope (the queue partitions of its events) counts itself in each of them and
    sees their counts and ``UNSCOPED``; every row it changes belongs to its partitions (a read
    model's rows follow the partitions: tests/projections/test_partition_rows.py). A unit
    without one (rebuilds, dead-letter admin, runners without partitions) may change any row:
    it sees ``ALL``.
    """

    seen: dict[int, int]
    counted: frozenset[int]

    def after(self) -> dict[int, int]:
        """The counts once this unit committed."""
        return {scope: n + (scope in self.counted) for scope, n in self.seen.items()}


def counted_once(n: int) -> Generation:
    """The generation of a unit of a database that counts every unit as one (SQLite)."""
    return Generation({ALL: n}, frozenset({ALL}))


class GenerationCache:
    """What a writer keeps of the read database between its units, while nobody else writes
    what it keeps.

    Every unit counts itself in the read database (``Unit.generation``), per scope. A writer
    that finds the counts of a unit's scopes where its own last commits left them knows what it
    holds of those scopes is the database's; otherwise (another writer of one of them, a
    rebuild's swap, a dead letter retried) it forgets it all. It holds nothing of a partition
    it never committed in, so a count of one it does not know is no reason to forget. What is
    kept may be changed in place by the next unit, so any failure forgets it too (``clear``).
    Bounded: past ``capacity`` entries it starts again empty. Subclasses say what they keep
    (``size``, ``forget``): the runner's rows (``RowCache``), the SQL adapters' applied
    versions (projections/sql.py ``Versions``).
    """

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        #: Per scope, the count this writer's last commit in it left (none known: trust nothing).
        self._known: dict[int, int] = {}

    def size(self) -> int:
        raise NotImplementedError

    def forget(self) -> None:
        raise NotImplementedError

    def trusts(self, generation: Generation) -> bool:
        """Whether nobody else committed in the unit's scopes since this writer did."""
        known = self._known
        return all(known.get(scope) == n for scope, n in generation.seen.items())

    def check(self, generation: Generation) -> None:
        """At the start of a unit: forget everything if another writer committed meanwhile."""
        known = self._known
        moved = any(
            known.get(scope) != n if scope < 0 else scope in known and known[scope] != n
            for scope, n in generation.seen.items()
        )
        if moved or self.size() > self.capacity:
            self.forget()
            self._known = {}

    def committed(self, generation: Generation) -> None:
        """The unit that began at ``generation`` committed: what is kept is the database's."""
        if ALL in generation.seen:  # counted over everything: no partition's count is known
            self._known = generation.after()
        else:  # (a unit with a scope that found only ``ALL`` known forgot it: ``check``)
            self._known.update(generation.after())

    def clear(self) -> None:
        """A unit failed: what it changed in place never reached the database."""
        self.forget()
        self._known = {}


class RowCache(GenerationCache):
    """Rows as committed, kept by the runner for its next batches (by reference)."""

    def __init__(self, capacity: int = 20_000) -> None:
        super().__init__(capacity)
        self.rows: dict[RowKey, Row | None] = {}
        #: Whether any stream is parked (None: not known), so a batch need not ask.
        self.anything_parked: bool | None = None

    def size(self) -> int:
        return len(self.rows)

    def forget(self) -> None:
        self.rows.clear()
        self.anything_parked = None


class Rows:
    """The rows a batch reads and writes, loaded once and written once per batch."""

    def __init__(self, unit: Unit, tables: dict[str, Table], cache: RowCache | None = None) -> None:
        self._unit = unit
        self._tables = tables
        #: Rows committed by earlier batches (``RowCache``): read from here, written through.
        self._kept = cache.rows if cache is not None else None
        self._rows: dict[RowKey, Row | None] = {}
        self.changed: set[RowKey] = set()
        #: Rows not written whose answers changed (a room whose presence changed): read with
        #: ``changed`` to tell which cached answers are out of date.
        self.touched: set[RowKey] = set()
        #: Whether changes are journaled for ``undo``. Off on the fast path, where a failure
        #: discards the whole ``Rows`` instead (the runner then redoes the batch one by one).
        self.journaled = True
        #: Each change since ``begin``: the row, what it was, whether it was changed, and how to
        #: undo what was changed in place.
        self._journal: list[tuple[RowKey, Row | None, bool, Undo | None]] = []

    async def prefetch(self, keys: Iterable[RowKey]) -> None:
        """Load, table by table in one query each, the rows not loaded yet."""
        wanted: dict[str, list[str]] = {}
        rows, kept = self._rows, self._kept
        for row_key in keys:
            if row_key not in rows:
                if kept is not None and row_key in kept:
                    rows[row_key] = kept[row_key]
                    continue
                rows[row_key] = None
                wanted.setdefault(row_key[0], []).append(row_key[1])
        for table, table_keys in wanted.items():
            loaded = await self._unit.load(self._tables[table], table_keys)
            for key in table_keys:
                row = rows[(table, key)] = loaded.get(key)
                if kept is not None:
                    kept[(table, key)] = row

    async def get(self, table: str, key: str) -> Row | None:
        """The row, or None.

        Change it through ``put`` only: a new row, or this one changed in place together with
        how to ``undo`` that (the undo journal keeps rows, not copies of them).
        """
        row_key = (table, key)
        if row_key not in self._rows:
            await self.prefetch([row_key])
        return self._rows[row_key]

    def prefetched(self, table: str, key: str) -> Row | None:
        """``get`` without waiting, for a row the projection's ``prefetch`` named."""
        try:
            return self._rows[(table, key)]
        except KeyError:
            raise LookupError(f"{table} {key!r} was not prefetched") from None

    def put(self, table: str, key: str, row: Row, undo: Undo | None = None) -> None:
        """Write ``row``; ``undo`` reverts what was changed in it in place, if anything."""
        row_key = (table, key)
        if self.journaled:
            self._journal.append((row_key, self._rows.get(row_key), row_key in self.changed, undo))
        self._rows[row_key] = row
        self.changed.add(row_key)

    def touch(self, table: str, key: str) -> None:
        """The answers built from this row changed, though the row was not written (another
        table holds what changed). Never undone: a needless invalidation costs a cache miss."""
        self.touched.add((table, key))

    def delete(self, table: str, key: str) -> None:
        row_key = (table, key)
        if self.journaled:
            self._journal.append((row_key, self._rows.get(row_key), row_key in self.changed, None))
        self._rows[row_key] = None
        self.changed.add(row_key)

    def begin(self) -> None:
        """Mark where ``undo`` goes back to (before one event's changes)."""
        self._journal.clear()

    def undo(self) -> None:
        """Forget every change since ``begin`` (an event that failed half-way)."""
        for row_key, before, was_changed, undo in reversed(self._journal):
            self._rows[row_key] = before
            if not was_changed:
                self.changed.discard(row_key)
            if undo is not None:
                undo()
        self._journal.clear()

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
        if self._kept is not None:
            for row_key in self.changed:
                self._kept[row_key] = self._rows[row_key]
        self.changed.clear()


class Projection(Protocol):
    """A read model: the tables it owns and how each event changes them.

    ``ReadModel`` below gives the optional parts their defaults: ``handles`` (the event types
    it acts on), ``renamed`` (tables written under other names, as a rebuild's shadow does) and
    ``apply_all`` (a whole batch at once, see ``apply_in_bulk``).
    """

    @property
    def name(self) -> str:
        """The projection's name (its rebuilds and applied versions are keyed by it)."""
        ...

    @property
    def tables(self) -> Sequence[Table]:
        """The tables it owns."""
        ...

    @property
    def handles(self) -> tuple[type[Event], ...] | None:
        """The event types ``apply`` acts on; None: any event may change something.

        For any other event ``apply`` would change nothing, so the runner does not call it (the
        event still counts as applied and moves the stream's version).
        """
        ...

    @property
    def renamed(self) -> Mapping[str, Table] | None:
        """Name used in the projection's code -> table written; None: its own ``tables``."""
        ...

    def prefetch(self, event: Event, recorded: RecordedEvent) -> Iterable[RowKey]:
        """Rows ``apply`` will read for this event (loaded in bulk before the batch)."""
        ...

    async def apply(self, event: Event, recorded: RecordedEvent, rows: Rows) -> None:
        """Change the rows for one event; must be deterministic (rebuild equals live)."""
        ...

    async def apply_all(self, todo: Sequence[Decoded], rows: Rows, memo: Memo) -> None:
        """Apply a batch's events (those it ``handles``) in order, as ``apply`` would."""
        ...


class ReadModel:
    """The base of the read models: the optional parts of ``Projection`` with their defaults.

    A subclass names itself and its tables, and says how each event changes them (``prefetch``,
    ``apply``); it may narrow ``handles`` and override ``apply_all`` with a faster equivalent.
    """

    name: str
    tables: Sequence[Table]
    handles: tuple[type[Event], ...] | None = None
    renamed: Mapping[str, Table] | None = None

    def prefetch(self, event: Event, recorded: RecordedEvent) -> Iterable[RowKey]:
        return ()

    async def apply(self, event: Event, recorded: RecordedEvent, rows: Rows) -> None:
        raise NotImplementedError(f"{type(self).__name__} applies no event")

    async def apply_all(self, todo: Sequence[Decoded], rows: Rows, memo: Memo) -> None:
        """Each event in turn, after one prefetch of every row the events name."""
        await rows.prefetch([key for event, rec in todo for key in self.prefetch(event, rec)])
        for event, recorded in todo:
            await self.apply(event, recorded, rows)


T = TypeVar("T")


def _once_per_list(memo: Memo, name: str, todo: Sequence[Decoded], make: Callable[[], T]) -> T:
    """``make()`` computed once per ``todo`` list of a batch: ``memo[name]`` keeps the list it
    was made from and the result, reused while the same list is asked about again."""
    found = memo.get(name)
    if isinstance(found, tuple) and found[0] is todo:
        return cast(T, found[1])
    made = make()
    memo[name] = (todo, made)
    return made


def by_stream(todo: Sequence[Decoded], memo: Memo, stream_type: str) -> dict[str, list[Decoded]]:
    """The events of ``todo`` on streams of one type, grouped by stream (each in order).

    Grouped once per batch and type: the projections that take the same ``todo`` share it.
    """

    def group() -> dict[str, list[Decoded]]:
        grouped: dict[str, list[Decoded]] = {}
        for decoded in todo:
            if decoded[1].stream_type == stream_type:
                grouped.setdefault(decoded[1].stream_id, []).append(decoded)
        return grouped

    return _once_per_list(memo, f"by_stream {stream_type}", todo, group)


def _handled_in(
    todo: Sequence[Decoded], handles: tuple[type[Event], ...], memo: Memo
) -> Sequence[Decoded]:
    """The events of ``todo`` of the types ``handles`` names (often none: nothing to filter)."""
    present: set[type[Event]] = _once_per_list(
        memo, "types", todo, lambda: set(map(type, map(itemgetter(0), todo)))
    )
    wanted = {kind for kind in present if issubclass(kind, handles)}
    if wanted == present:
        return todo
    return [decoded for decoded in todo if type(decoded[0]) in wanted] if wanted else ()


async def apply_in_bulk(
    projection: Projection, todo: Sequence[Decoded], rows: Rows, memo: Memo
) -> None:
    """Apply the events of ``todo`` the projection handles, in order, with its ``apply_all``.

    ``apply_all(todo, rows, memo)`` must leave the rows exactly as applying each event in turn
    would (property-tested): it may fold a stream's events before writing its row once, share
    pure results through ``memo``, and prefetches what it reads itself. ``ReadModel``'s applies
    each event in turn after one prefetch of every row the events name.
    """
    handles = projection.handles
    mine = todo if handles is None else _handled_in(todo, handles, memo)
    if mine:
        await projection.apply_all(mine, rows, memo)


def named(projections: Sequence[Projection], name: str) -> Projection:
    """The projection called ``name``; ValueError naming the known ones otherwise."""
    for projection in projections:
        if projection.name == name:
            return projection
    known = ", ".join(p.name for p in projections)
    raise ValueError(f"no projection {name!r}; known: {known}")


def table_names(projection: Projection) -> dict[str, Table]:
    """Name used in the projection's code -> table written (a rebuild writes shadow tables)."""
    renamed = projection.renamed
    return dict(renamed) if renamed is not None else {t.name: t for t in projection.tables}
