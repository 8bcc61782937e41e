"""The read-database contract, run against every adapter: SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import itertools
import re
import sqlite3
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncpg
import msgspec
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from adventure_quest.projections.conflicts import retried
from adventure_quest.projections.fencing import Fence, Fenced
from adventure_quest.projections.model import ALL, Row, Table
from adventure_quest.projections.ports import ReadDatabase
from adventure_quest.projections.postgres import PostgresReadDatabase
from adventure_quest.projections.sqlite import SQLiteReadDatabase
from adventure_quest.projections.urls import open_read_database
from adventure_quest.store.errors import StoreSchemaError, StoreUnavailableError, StoreUrlError
from tests import postgres
from tests.conftest import _opened, run

ADAPTERS = ["sqlite", "postgres"]
THINGS = Table(
    "things",
    key="thing_id",
    columns={"name": "text", "score": "integer", "data": "json"},
    indexes=(("name",), ("score", "name")),
)
OTHERS = Table("others", key="other_id", columns={"label": "text"})
_numbers = itertools.count()


@dataclass(frozen=True)
class Databases:
    """One fresh, empty read database of one adapter; each ``open()`` is a new handle on it."""

    adapter: str
    url: str

    def open(self) -> ReadDatabase:
        db = open_read_database(self.url)
        _opened.append(db)  # closed on the test's loop when it ends (tests/conftest.py)
        return db

    def xfail_on(self, adapter: str, reason: str) -> pytest.MarkDecorator | None:
        return pytest.mark.xfail(strict=True, reason=reason) if adapter == self.adapter else None


@pytest.fixture(params=ADAPTERS)
def databases(request: pytest.FixtureRequest, tmp_path: Path) -> Databases:
    if request.param == "sqlite":
        return Databases("sqlite", f"sqlite:///{tmp_path / 'read.sqlite'}")
    return Databases("postgres", run(postgres.scratch_database(f"read_{next(_numbers)}")))


def thing(name: str | None = None, score: int | None = None, data: Any = None) -> Row:
    return {"name": name, "score": score, "data": data}


async def opened(databases: Databases, *tables: Table) -> ReadDatabase:
    db = databases.open()
    await db.create(tables or (THINGS, OTHERS))
    return db


async def put(db: ReadDatabase, table: Table, rows: dict[str, Row]) -> None:
    async with db.unit() as unit:
        await unit.write(table, rows, [])


async def everything(db: ReadDatabase, table: Table = THINGS) -> dict[str, Row]:
    return {
        row.pop(table.key): row for row in await db.select(table, order_by=[(table.key, False)])
    }


def exactly(row: Row | None) -> bytes:
    """A row's columns in order, with values that tell True from 1 from 1.0 and keep key order."""
    return msgspec.json.encode(None if row is None else dict(sorted(row.items())))


async def test_create_is_idempotent_and_keeps_rows(databases: Databases) -> None:
    db = await opened(databases)
    await db.create([THINGS, OTHERS])
    await put(db, THINGS, {"a": thing("A", 1)})
    await db.create([THINGS, OTHERS])
    assert await db.get(THINGS, "a") == thing("A", 1)


async def test_reading_a_table_never_created_is_a_schema_error(
    databases: Databases, request: pytest.FixtureRequest
) -> None:

    db = databases.open()
    with pytest.raises(StoreSchemaError, match="create the tables"):
        await db.get(THINGS, "a")


async def test_a_units_writes_are_invisible_to_its_database_until_it_commits(
    databases: Databases, request: pytest.FixtureRequest
) -> None:

    db = await opened(databases)
    async with db.unit() as unit:
        await unit.write(THINGS, {"a": thing("A")}, [])
        assert await db.get(THINGS, "a") is None
        assert await db.select(THINGS) == []
    assert await db.get(THINGS, "a") == thing("A")


async def test_a_units_writes_and_versions_are_invisible_to_other_handles_until_it_commits(
    databases: Databases,
) -> None:
    writer = await opened(databases)
    reader = databases.open()
    async with writer.unit() as unit:
        await unit.write(THINGS, {"a": thing("A")}, [])
        await unit.set_versions("p", {"s": 3})
        assert await reader.get(THINGS, "a") is None
        assert await reader.select(THINGS) == []
    assert await reader.get(THINGS, "a") == thing("A")
    async with reader.unit() as unit:
        assert await unit.versions("p", ["s"]) == {"s": 3}


async def test_an_exception_inside_a_unit_discards_its_writes_and_versions(
    databases: Databases,
) -> None:
    db = await opened(databases)
    async with db.unit() as unit:
        await unit.write(THINGS, {"kept": thing("K", 1)}, [])
        await unit.set_versions("p", {"s": 1})

    async def failing_batch() -> None:
        async with db.unit() as unit:
            await unit.write(THINGS, {"new": thing("N"), "kept": thing("changed")}, [])
            await unit.write(OTHERS, {"o": {"label": "x"}}, [])
            await unit.set_versions("p", {"s": 2, "t": 1})
            raise RuntimeError("projection bug")

    with pytest.raises(RuntimeError, match="projection bug"):
        await failing_batch()
    assert await everything(db) == {"kept": thing("K", 1)}
    assert await everything(db, OTHERS) == {}
    async with db.unit() as unit:
        assert await unit.versions("p", ["s", "t"]) == {"s": 1}


async def test_load_returns_only_the_rows_that_exist(databases: Databases) -> None:
    db = await opened(databases)
    await put(db, THINGS, {"a": thing("A", 1), "b": thing("B", 2)})
    async with db.unit() as unit:
        loaded = await unit.load(THINGS, ["a", "missing", "b", "a"])
        assert loaded == {"a": thing("A", 1), "b": thing("B", 2)}
        assert await unit.load(THINGS, []) == {}
        assert await unit.load(OTHERS, ["a"]) == {}


class Gauge(msgspec.Struct, frozen=True):
    needle: int
    unit: str = "bar"


GAUGES = Table(
    "gauges",
    key="gauge_id",
    columns={"label": "text", "reading": "json", "notes": "json"},
    structs={"reading": Gauge},
    read_back=("reading",),
)


async def test_load_gives_what_projections_read_back_decoded_into_its_structs(
    databases: Databases,
) -> None:
    db = await opened(databases, GAUGES)
    rows: dict[str, Row] = {
        "g1": {"label": "boiler", "reading": {"needle": 7}, "notes": ["hot"]},
        "g2": {"label": "old", "reading": {"needle": "stuck"}, "notes": None},  # older shape
    }
    await put(db, GAUGES, rows)
    async with db.unit() as unit:
        loaded = await unit.load(GAUGES, ["g1", "g2"])
    assert loaded == {"g1": {"reading": Gauge(7)}, "g2": {"reading": {"needle": "stuck"}}}
    assert await db.get(GAUGES, "g1") == rows["g1"]  # queries get every column, plain
    assert [r["reading"] for r in await db.select(GAUGES, order_by=[("gauge_id", False)])] == [
        {"needle": 7},
        {"needle": "stuck"},
    ]


JSON_VALUES: list[Any] = [
    None,
    {"nested": {"list": [1, [2, [3, {"deep": None}]]], "empty": {}, "none": None}},
    [1, 1.5, -0.0, True, False, None, "x", [], {}],
    {"z": 1, "a": 2, "m": {"y": 1, "b": 2}},
    'héllo wörld 🐉 中文 \u0000 nul, tab\t, newline\n, quote " and backslash \\',
    {"ключ": ["значение", "🧭"], "": "empty key"},
    2**63 - 1,
    -(2**63),
    0.1,
    1e300,
    "",
    True,
    [[[[[]]]]],
]


async def test_json_columns_round_trip_exactly(databases: Databases) -> None:
    db = await opened(databases)
    rows = {f"k{n}": thing("ünï ✓", n, value) for n, value in enumerate(JSON_VALUES)}
    await put(db, THINGS, rows)
    async with db.unit() as unit:
        loaded = await unit.load(THINGS, list(rows))
    selected = await everything(db)
    for key, row in rows.items():
        assert exactly(loaded[key]) == exactly(row)
        assert exactly(selected[key]) == exactly(row)
        assert exactly(await db.get(THINGS, key)) == exactly(row)


async def test_text_and_integer_columns_round_trip_with_their_extremes(
    databases: Databases,
) -> None:
    db = await opened(databases)
    rows = {
        "max": thing("", 2**63 - 1),
        "min": thing("🐉 ünïcödé 中文 'quoted' \"double\"", -(2**63)),
        "nulls": thing(None, None, None),
    }
    await put(db, THINGS, rows)
    assert {k: exactly(v) for k, v in (await everything(db)).items()} == {
        k: exactly(v) for k, v in rows.items()
    }


async def test_writing_a_row_again_replaces_all_of_it(databases: Databases) -> None:
    db = await opened(databases)
    await put(db, THINGS, {"a": thing("A", 1, {"x": [1]}), "b": thing("B", 2)})
    await put(db, THINGS, {"a": {"name": "A2"}})
    assert await everything(db) == {"a": thing("A2"), "b": thing("B", 2)}


async def test_delete_removes_rows_and_ignores_missing_keys(databases: Databases) -> None:
    db = await opened(databases)
    await put(db, THINGS, {"a": thing("A"), "b": thing("B"), "c": thing("C")})
    async with db.unit() as unit:
        await unit.write(THINGS, {"d": thing("D")}, ["a", "c", "never-there"])
    assert await everything(db) == {"b": thing("B"), "d": thing("D")}


async def test_versions_are_kept_per_projection(databases: Databases) -> None:
    db = await opened(databases)
    async with db.unit() as unit:
        assert await unit.versions("players", ["s1"]) == {}
        await unit.set_versions("players", {"s1": 3, "s2": 5})
        await unit.set_versions("rooms", {"s1": 7})
        await unit.set_versions("rooms", {})
    async with db.unit() as unit:
        await unit.set_versions("players", {"s1": 4})
    async with db.unit() as unit:
        assert await unit.versions("players", ["s1", "s2", "s3"]) == {"s1": 4, "s2": 5}
        assert await unit.versions("rooms", ["s1", "s2"]) == {"s1": 7}
        assert await unit.versions("rooms", []) == {}


async def test_versions_another_writer_committed_are_seen_by_a_handle_that_read_them_before(
    databases: Databases,
) -> None:
    db = await opened(databases)
    async with db.unit() as unit:
        await unit.set_versions("p", {"s": 1, "t": 1})
    async with db.unit() as unit:
        assert await unit.versions("p", ["s", "t"]) == {"s": 1, "t": 1}
    other = databases.open()
    async with other.unit() as unit:
        await unit.set_versions("p", {"s": 5})
    async with db.unit() as unit:
        assert await unit.versions("p", ["s", "t"]) == {"s": 5, "t": 1}
        await unit.set_versions("p", {"t": 2})
    async with other.unit() as unit:
        assert await unit.versions("p", ["s", "t"]) == {"s": 5, "t": 2}


async def test_dropping_a_projections_versions_keeps_every_other_projections(
    databases: Databases,
) -> None:
    db = await opened(databases)
    shadow = "rooms__rebuild_0193ab12"
    async with db.unit() as unit:
        await unit.set_versions("players", {"s1": 3, "s2": 5})
        await unit.set_versions(shadow, {"s1": 7, "s3": 2})
    async with db.unit() as unit:
        assert await unit.versions(shadow, ["s1"]) == {"s1": 7}  # one row read, one not
        await unit.set_versions("players", {"s1": 4})
        await unit.drop_versions(shadow)
        assert await unit.versions(shadow, ["s1", "s3"]) == {}
    async with db.unit() as unit:
        assert await unit.versions(shadow, ["s1", "s2", "s3"]) == {}
        assert await unit.versions("players", ["s1", "s2", "s3"]) == {"s1": 4, "s2": 5}


async def test_each_committed_unit_counts_one_generation_and_a_failed_one_none(
    databases: Databases,
) -> None:
    db = await opened(databases)

    async def count(of: ReadDatabase) -> int:
        async with of.unit() as unit:
            generation = await unit.generation()
        assert generation.counted == {ALL}
        return generation.seen[ALL]

    first = await count(db)
    assert await count(db) == first + 1

    async def failing() -> None:
        async with db.unit() as unit:
            await unit.write(THINGS, {"a": thing("A")}, [])
            raise RuntimeError("rolled back")

    with pytest.raises(RuntimeError):
        await failing()
    other = databases.open()  # another writer's units count too
    assert await count(other) == first + 2
    async with db.unit([3, 1]) as unit:  # and units with a scope
        await unit.write(THINGS, {"b": thing("B")}, [])
    assert await count(db) >= first + 4  # PostgreSQL counts it in each of its partitions
    assert await db.get(THINGS, "b") == thing("B")
    assert await db.get(THINGS, "a") is None


async def test_a_unit_under_an_older_token_is_refused_whole_and_an_equal_or_newer_one_commits(
    databases: Databases,
) -> None:
    db = await opened(databases)
    async with db.unit() as unit:
        await unit.fence([Fence("g", 0, 5), Fence("g", 1, 3), Fence("other", 0, 1)])
    async with db.unit() as unit:
        await unit.fence([Fence("g", 0, 5)])  # the same owner again
        await unit.write(THINGS, {"a": thing("A")}, [])

    async def stale() -> None:
        async with db.unit() as unit:
            await unit.write(THINGS, {"b": thing("B")}, [])
            await unit.fence([Fence("g", 1, 9), Fence("g", 0, 4), Fence("other", 0, 2)])

    with pytest.raises(Fenced) as refused:
        await stale()
    assert refused.value.fences == [Fence("g", 0, 4)]
    assert refused.value.recorded == {("g", 0): 5}
    assert set(await everything(db)) == {"a"}  # nothing of the refused unit, fences included
    other = databases.open()  # another writer is held to the same fences

    async def elsewhere(fences: list[Fence]) -> None:
        async with other.unit() as unit:
            await unit.fence(fences)

    with pytest.raises(Fenced):
        await elsewhere([Fence("g", 0, 4)])
    await elsewhere([Fence("g", 1, 8), Fence("other", 0, 1)])  # the refused 9 never counted
    with pytest.raises(Fenced):
        await elsewhere([Fence("g", 1, 7)])


async def old_layout(databases: Databases, rows: list[tuple[str, str, int]]) -> None:
    """The applied versions as the previous layout kept them: a row per projection and stream."""
    create = (
        "CREATE TABLE projection_versions (projection TEXT NOT NULL, stream_id TEXT NOT NULL,"
        " version BIGINT NOT NULL, PRIMARY KEY (projection, stream_id))"
    )
    if databases.adapter == "sqlite":
        conn = sqlite3.connect(databases.url.removeprefix("sqlite:///"))
        with conn:
            conn.execute(create)
            conn.executemany("INSERT INTO projection_versions VALUES (?, ?, ?)", rows)
        conn.close()
        return
    pg = await asyncpg.connect(databases.url)
    try:
        await pg.execute(create)
        await pg.executemany("INSERT INTO projection_versions VALUES ($1, $2, $3)", rows)
    finally:
        await pg.close()


async def test_create_moves_the_previous_layouts_versions_over(databases: Databases) -> None:
    await old_layout(databases, [("players", "s1", 3), ("rooms", "s1", 2), ("rooms", "s2", 9)])
    db = await opened(databases)
    await db.create([THINGS])  # again: nothing left to move, nothing lost
    async with db.unit() as unit:
        assert await unit.versions("players", ["s1", "s2"]) == {"s1": 3}
        assert await unit.versions("rooms", ["s1", "s2"]) == {"s1": 2, "s2": 9}


async def test_select_filters_orders_and_limits(databases: Databases) -> None:
    db = await opened(databases)
    await put(
        db,
        THINGS,
        {
            "a": thing("red", 3),
            "b": thing("blue", 1),
            "c": thing("red", 1),
            "d": thing("red", 3),
            "e": thing("green", 2),
        },
    )

    async def keys(**query: Any) -> list[str]:
        return [row["thing_id"] for row in await db.select(THINGS, **query)]

    assert sorted(await keys(where={"name": "red"})) == ["a", "c", "d"]
    assert await keys(where={"name": "red", "score": 3}, order_by=[("thing_id", True)]) == [
        "d",
        "a",
    ]
    assert await keys(order_by=[("score", True), ("thing_id", False)]) == [
        "a",
        "d",
        "e",
        "b",
        "c",
    ]
    assert await keys(order_by=[("name", False), ("score", False), ("thing_id", True)]) == [
        "b",
        "e",
        "c",
        "d",
        "a",
    ]
    assert await keys(order_by=[("score", False), ("thing_id", False)], limit=2) == ["b", "c"]
    assert await keys(where={"name": "red"}, limit=0) == []
    assert await keys(where={"name": "purple"}) == []
    rows = await db.select(THINGS, where={"thing_id": "e"})
    assert rows == [{"thing_id": "e", **thing("green", 2)}]
    with pytest.raises(ValueError, match="no column 'colour'"):
        await db.select(THINGS, where={"colour": "red"})


async def test_count_is_how_many_committed_rows_match(databases: Databases) -> None:
    db = await opened(databases)
    assert await db.count(THINGS) == 0
    await put(db, THINGS, {f"k{n}": thing("blue" if n % 3 == 0 else "red", n) for n in range(7)})
    await put(db, OTHERS, {"o": {"label": "not a thing"}})
    assert await db.count(THINGS) == 7
    assert await db.count(THINGS, where={}) == 7
    assert await db.count(THINGS, where={"name": "blue"}) == 3  # k0, k3, k6
    assert await db.count(THINGS, where={"name": "red", "score": 4}) == 1
    assert await db.count(THINGS, where={"name": "red", "score": 3}) == 0
    assert await db.count(THINGS, where={"thing_id": "k2"}) == 1
    assert await db.count(OTHERS) == 1
    async with db.unit() as unit:
        await unit.write(THINGS, {"k9": thing("blue")}, ["k0", "k1"])
        assert await db.count(THINGS) == 7  # not committed yet
    assert await db.count(THINGS) == 6
    assert await db.count(THINGS, where={"name": "blue"}) == 3  # k0 went, k9 came
    with pytest.raises(ValueError, match="no column 'colour'"):
        await db.count(THINGS, where={"colour": "red"})


async def test_select_after_a_key_pages_through_the_rows_in_key_order(
    databases: Databases,
) -> None:
    db = await opened(databases)
    await put(db, THINGS, {f"k{n:02d}": thing("red" if n % 2 else "blue", n) for n in range(11)})
    red = [f"k{n:02d}" for n in range(1, 11, 2)]
    seen: list[str] = []
    after: str | None = None
    while True:
        page = await db.select(
            THINGS, where={"name": "red"}, order_by=[("thing_id", False)], limit=2, after=after
        )
        seen += [row["thing_id"] for row in page]
        if len(page) < 2:
            break
        after = page[-1]["thing_id"]
    assert seen == red
    everyone = await db.select(THINGS, order_by=[("thing_id", False)], after="k05")
    assert [row["thing_id"] for row in everyone] == [f"k{n:02d}" for n in range(6, 11)]
    assert await db.select(THINGS, where={"name": "red"}, after="k99") == []
    assert len(await db.select(THINGS, after="")) == 11  # every key sorts after ""


async def test_totals_sum_or_count_per_value_highest_first(databases: Databases) -> None:
    db = await opened(databases)
    assert await db.totals(THINGS, "name") == {}
    await put(
        db,
        THINGS,
        {
            "a": thing("red", 3),
            "b": thing("blue", 1),
            "c": thing("red", 4),
            "d": thing("green", 2),
            "e": thing("red", -1),
        },
    )
    counted = await db.totals(THINGS, "name")
    assert counted == {"red": 3, "green": 1, "blue": 1}
    assert list(counted) == ["red", "green", "blue"]  # highest value of ``by`` first
    assert await db.totals(THINGS, "name", summed="score") == {"red": 6, "green": 2, "blue": 1}
    assert await db.totals(THINGS, "name", summed="score", limit=2) == {"red": 6, "green": 2}
    assert await db.totals(THINGS, "score") == {4: 1, 3: 1, 2: 1, 1: 1, -1: 1}
    async with db.unit() as unit:
        await unit.write(THINGS, {"f": thing("blue", 10)}, ["a"])
        assert await db.totals(THINGS, "name", summed="score") == {
            "red": 6,
            "green": 2,
            "blue": 1,
        }  # not committed yet
    assert await db.totals(THINGS, "name", summed="score") == {"red": 3, "green": 2, "blue": 11}
    with pytest.raises(ValueError, match="no column 'colour'"):
        await db.totals(THINGS, "colour")
    with pytest.raises(ValueError, match="no column 'weight'"):
        await db.totals(THINGS, "name", summed="weight")


async def test_counting_a_table_never_created_is_a_schema_error(databases: Databases) -> None:
    db = databases.open()
    with pytest.raises(StoreSchemaError, match="create the tables"):
        await db.count(THINGS)


async def test_text_orders_by_code_point(databases: Databases) -> None:
    db = await opened(databases)
    names = ["b", "B", "a", "A", "_", "é", "e", "Z", "10", "9", " "]
    await put(db, THINGS, {f"k{n}": thing(name) for n, name in enumerate(names)})
    rows = await db.select(THINGS, order_by=[("name", False)])
    assert [row["name"] for row in rows] == sorted(names)


async def test_key_lists_longer_than_a_thousand_work(databases: Databases) -> None:
    db = await opened(databases)
    keys = [f"key-{n:05}" for n in range(2_500)]
    async with db.unit() as unit:
        await unit.write(THINGS, {key: thing(key, n) for n, key in enumerate(keys)}, [])
        await unit.set_versions("p", {key: n for n, key in enumerate(keys)})
    async with db.unit() as unit:
        loaded = await unit.load(THINGS, [*keys, "missing"])
        assert loaded == {key: thing(key, n) for n, key in enumerate(keys)}
        assert await unit.versions("p", [*keys, "missing"]) == {
            key: n for n, key in enumerate(keys)
        }
        await unit.write(THINGS, {}, keys[:2_000])
    assert list(await everything(db)) == keys[2_000:]


async def test_concurrent_units_on_different_keys_both_commit(databases: Databases) -> None:
    db = await opened(databases)

    async def apply(key: str) -> None:
        async with db.unit() as unit:
            assert await unit.load(THINGS, [key]) == {}
            await asyncio.sleep(0.01)
            await unit.write(THINGS, {key: thing(key)}, [])
            await unit.set_versions("p", {key: 1})

    await asyncio.gather(apply("a"), apply("b"))
    assert await everything(db) == {"a": thing("a"), "b": thing("b")}
    async with db.unit() as unit:
        assert await unit.versions("p", ["a", "b"]) == {"a": 1, "b": 1}


async def increment(db: ReadDatabase) -> None:
    """Read, change and write back one shared row; a unit that conflicts is done again (on
    PostgreSQL units of several handles run at once)."""

    async def attempt() -> None:
        async with db.unit() as unit:
            row = (await unit.load(THINGS, ["counter"]))["counter"]
            await asyncio.sleep(0.005)
            await unit.write(THINGS, {"counter": {**row, "score": row["score"] + 1}}, [])

    await retried(attempt)


async def test_concurrent_units_changing_the_same_row_lose_no_update(databases: Databases) -> None:
    # Projections read, change and write back rows that events of many streams share.
    db = await opened(databases)
    await put(db, THINGS, {"counter": thing(score=0)})
    await asyncio.gather(*(increment(db) for _ in range(10)))
    assert await db.get(THINGS, "counter") == thing(score=10)


async def test_units_of_two_handles_changing_the_same_row_lose_no_update(
    databases: Databases,
) -> None:

    db = await opened(databases)
    other = databases.open()  # as another process would
    await put(db, THINGS, {"counter": thing(score=0)})
    await asyncio.gather(*(increment(db if n % 2 else other) for n in range(10)))
    assert await db.get(THINGS, "counter") == thing(score=10)


async def test_a_units_operations_may_be_awaited_together(databases: Databases) -> None:
    db = await opened(databases)
    await put(db, THINGS, {"a": thing("A")})
    async with db.unit() as unit:
        loaded, others, versions, _ = await asyncio.gather(
            unit.load(THINGS, ["a"]),
            unit.load(OTHERS, ["a"]),
            unit.versions("p", ["s"]),
            unit.write(THINGS, {"b": thing("B")}, []),
        )
    assert (loaded, others, versions) == ({"a": thing("A")}, {}, {})
    assert await everything(db) == {"a": thing("A"), "b": thing("B")}


KEYS = ["a", "b", "c", "d"]
VALUES = st.fixed_dictionaries(
    {
        # Text as the domain lets through: no NUL, no lone surrogates (not encodable as UTF-8).
        "name": st.none()
        | st.text(st.characters(exclude_characters="\x00", exclude_categories=["Cs"]), max_size=8),
        "score": st.none() | st.integers(-(2**63), 2**63 - 1),
        "data": st.recursive(
            st.none()
            | st.booleans()
            | st.integers(-(2**63), 2**63 - 1)
            | st.floats(allow_nan=False, allow_infinity=False)
            | st.text(max_size=8),
            lambda inner: (
                st.lists(inner, max_size=3)
                | st.dictionaries(st.text(max_size=4), inner, max_size=3)
            ),
            max_leaves=6,
        ),
    }
)
OPERATION = st.tuples(st.sampled_from(KEYS), st.none() | VALUES)  # None: delete
BATCH = st.tuples(st.lists(OPERATION, max_size=6), st.booleans())  # (operations, fails)


@settings(
    max_examples=50, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(batches=st.lists(BATCH, max_size=6))
async def test_units_of_puts_and_deletes_equal_a_dict(
    databases: Databases, batches: list[tuple[list[tuple[str, Row | None]], bool]]
) -> None:
    table = Table(f"prop_{next(_numbers)}", key="id", columns=THINGS.columns)
    model: dict[str, Row] = {}

    db = await opened(databases, table)
    for operations, fails in batches:
        final = dict(operations)  # the last operation on a key wins, as in Rows
        puts = {key: row for key, row in final.items() if row is not None}
        deletes = [key for key, row in final.items() if row is None]
        if fails:
            with pytest.raises(RuntimeError, match="batch failed"):
                await write(db, table, puts, deletes, fails=True)
        else:
            await write(db, table, puts, deletes, fails=False)
            model.update(puts)
            for key in deletes:
                model.pop(key, None)
        stored = await everything(db, table)
        assert {k: exactly(v) for k, v in stored.items()} == {
            k: exactly(v) for k, v in sorted(model.items())
        }
    async with db.unit() as unit:
        assert await unit.load(table, KEYS) == model


async def write(
    db: ReadDatabase, table: Table, puts: dict[str, Row], deletes: list[str], *, fails: bool
) -> None:
    async with db.unit() as unit:
        await unit.write(table, puts, deletes)
        if fails:
            raise RuntimeError("batch failed")


async def test_open_read_database_picks_the_adapter_by_scheme(tmp_path: Path) -> None:
    sqlite = open_read_database(f"sqlite:///{tmp_path}/r.sqlite")
    _opened.append(sqlite)
    assert isinstance(sqlite, SQLiteReadDatabase)
    for url in ("postgresql://u@127.0.0.1:5432/db", "postgres://127.0.0.1/db"):
        assert isinstance(open_read_database(url), PostgresReadDatabase)  # connects lazily


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("mysql://h/db", "supported: sqlite:///PATH or postgresql://"),
        ("memory://", "supported: sqlite:///PATH or postgresql://"),
        ("no scheme at all", "supported: sqlite:///PATH or postgresql://"),
        ("postgresql://h:port/db", "cannot parse"),
        ("postgresql://[::1/db", "cannot parse"),
        ("postgresql://h", "expected postgresql://USER@HOST:PORT/DATABASE"),
        ("sqlite://", "expected sqlite:///PATH"),
        ("postgresql://h/a,postgresql://h/b", "several databases"),
    ],
)
def test_open_read_database_refuses_bad_urls(url: str, message: str) -> None:
    with pytest.raises(StoreUrlError, match=message):
        open_read_database(url)


async def test_an_unreachable_postgres_is_unavailable_not_skipped() -> None:
    db = PostgresReadDatabase("postgresql://postgres@127.0.0.1:1/nowhere")
    try:
        with pytest.raises(StoreUnavailableError, match=re.escape("127.0.0.1:1/nowhere")):
            await db.get(THINGS, "a")
    finally:
        await db.close()
