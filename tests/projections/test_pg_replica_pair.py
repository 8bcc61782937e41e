"""The replica-pair test helper: a real primary and hot standby whose replay tests can hold back."""

from __future__ import annotations

import contextlib
import socket
from collections.abc import AsyncIterator, Iterator
from urllib.parse import urlsplit

import asyncpg
import pytest

from tests.pg_replica import ReplicaPair, replica_pair


@pytest.fixture(scope="module")
def pair() -> Iterator[ReplicaPair]:
    with replica_pair() as started:
        yield started


@contextlib.asynccontextmanager
async def connected(url: str) -> AsyncIterator[asyncpg.Connection]:
    connection = await asyncpg.connect(url, timeout=10)
    try:
        yield connection
    finally:
        await connection.close()


async def test_a_table_written_on_the_primary_appears_on_the_replica(pair: ReplicaPair) -> None:
    async with connected(pair.primary_url) as primary:
        await primary.execute("CREATE TABLE copied (name text)")
        await primary.execute("INSERT INTO copied VALUES ('torch'), ('rope')")
    await pair.wait_caught_up()
    async with connected(pair.replica_url) as replica:
        names = [row["name"] for row in await replica.fetch("SELECT name FROM copied")]
    assert sorted(names) == ["rope", "torch"]


async def test_a_row_written_while_replay_is_paused_appears_only_once_resumed(
    pair: ReplicaPair,
) -> None:
    count = "SELECT count(*) FROM held_back"

    async with connected(pair.primary_url) as primary, connected(pair.replica_url) as replica:
        await primary.execute("CREATE TABLE held_back (n integer)")
        await pair.wait_caught_up()
        await pair.pause_replay()
        try:
            await primary.execute("INSERT INTO held_back VALUES (1)")
            await pair.wait_received()  # the row's WAL is on the replica, just not applied
            assert await primary.fetchval(count) == 1
            assert await replica.fetchval(count) == 0
            with pytest.raises(TimeoutError, match="paused"):
                await pair.wait_caught_up(timeout=0.2)
        finally:
            await pair.resume_replay()
        await pair.wait_caught_up()
        assert await replica.fetchval(count) == 1


async def test_the_replica_refuses_writes(pair: ReplicaPair) -> None:
    async with connected(pair.replica_url) as replica:
        with pytest.raises(asyncpg.exceptions.ReadOnlySQLTransactionError):
            await replica.execute("CREATE TABLE refused (n integer)")


def test_both_servers_stop_and_their_files_go_even_when_the_block_raises() -> None:
    seen: list[ReplicaPair] = []

    def body() -> None:
        with replica_pair() as started:
            seen.append(started)
            raise RuntimeError("the block failed")

    with pytest.raises(RuntimeError, match="the block failed"):
        body()
    [stopped] = seen
    assert not stopped.directory.exists()
    for url in (stopped.primary_url, stopped.replica_url):
        port = urlsplit(url).port
        assert port is not None
        with pytest.raises(ConnectionRefusedError):
            socket.create_connection(("127.0.0.1", port), timeout=2).close()
