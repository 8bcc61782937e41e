"""PostgreSQL specifics against the real server: gap-safe log, processes, lost connections."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import subprocess
import sys
import textwrap

import asyncpg
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from adventure_quest.store.envelope import ANY, NO_STREAM, NewEvent, RecordedEvent
from adventure_quest.store.errors import (
    StoreError,
    StoreSchemaError,
    StoreUnavailableError,
    StoreUrlError,
)
from adventure_quest.store.postgres.connect import upgrade
from adventure_quest.store.postgres.events import PostgresEventStore
from adventure_quest.store.postgres.schema import APPEND_LOCK, SCHEMA_VERSION
from adventure_quest.store.tailing import POLL_S
from tests import postgres


def event(n: int = 0) -> NewEvent:
    return NewEvent("Happened", b'{"n":%d}' % n)


async def read_log(store: PostgresEventStore) -> list[RecordedEvent]:
    seen: list[RecordedEvent] = []
    while page := await store.read_all(seen[-1].position if seen else 0, 1000):
        seen += page
    return seen


#: The sessions of this database holding (granted) or waiting for the append lock.
APPEND_LOCK_SESSIONS = """
SELECT pid, granted FROM pg_locks
 WHERE locktype = 'advisory' AND classid = 0 AND objid::bigint = $1 AND objsubid = 1
   AND database = (SELECT oid FROM pg_database WHERE datname = current_database())
"""


async def sessions_waiting_for_the_append_lock(
    observer: asyncpg.Connection, holder: int, within_s: float = 10.0
) -> list[int]:
    """Once ``holder`` holds the append lock and another session waits for it: the waiters.

    Fails when that is not seen within ``within_s``.
    """
    deadline = asyncio.get_running_loop().time() + within_s
    while True:
        rows = await observer.fetch(APPEND_LOCK_SESSIONS, APPEND_LOCK)
        holders = [r["pid"] for r in rows if r["granted"]]
        waiters = [r["pid"] for r in rows if not r["granted"]]
        if holders == [holder] and waiters:
            return waiters
        assert asyncio.get_running_loop().time() < deadline, (
            f"no session waited for the append lock held by {holder}: {rows}"
        )
        await asyncio.sleep(0.01)


async def test_a_reader_never_sees_past_a_transaction_still_holding_an_earlier_position() -> None:
    """The sequence-gap problem: position k taken, k+1.. committing first. Not here."""
    (url,) = postgres.fresh(1)

    store = PostgresEventStore(url)
    await store.append("s-0", NO_STREAM, [event()])
    slow = await asyncpg.connect(url)
    observer = await asyncpg.connect(url)
    try:
        transaction = slow.transaction()
        await transaction.start()
        taken = await slow.fetchrow(
            "SELECT * FROM aq_append($1, $2, $3, $4, $5, $6, $7, $8)",
            ["slow-1"], [ANY], [1], [event().event_id], ["Happened"], [1], [b"{}"],
            [b"\x94\xa0\xa0\xa0\x00"],
        )  # fmt: skip
        assert taken is not None
        assert taken["last_position"] == 2  # position 2 is taken, not committed
        later = asyncio.gather(*(store.append(f"fast-{n}", NO_STREAM, [event(n)])
                                 for n in range(5)))  # fmt: skip
        # The later appends have reached the database and wait there for the lock the
        # uncommitted position 2 holds: later positions cannot commit before it.
        waiters = await sessions_waiting_for_the_append_lock(observer, slow.get_server_pid())
        assert slow.get_server_pid() not in waiters
        assert not later.done()
        assert await store.read_all(1) == []
        assert await store.head() == 1
        await transaction.commit()
        results = await later
    finally:
        await observer.close()
        await slow.close()
    log = await read_log(store)
    assert [e.position for e in log] == [1, 2, 3, 4, 5, 6, 7]
    assert log[1].stream_id == "slow-1"
    assert sorted(r.position for r in results) == [3, 4, 5, 6, 7]
    await store.close()


WRITER = textwrap.dedent(
    """
    import asyncio, random, sys
    from adventure_quest.store.envelope import ANY, NewEvent
    from adventure_quest.store.postgres.events import PostgresEventStore

    async def main(url: str, name: str, clients: int, each: int, batch: int) -> None:
        store = PostgresEventStore(url)

        async def client(n: int) -> None:
            for i in range(each):
                events = [NewEvent("Happened", b"{}") for _ in range(random.randint(1, batch))]
                await store.append(f"{name}-{random.randrange(5)}", ANY, events)

        await asyncio.gather(*(client(n) for n in range(clients)))
        await store.close()

    asyncio.run(main(sys.argv[1], sys.argv[2], *map(int, sys.argv[3:])))
    """
)


@settings(max_examples=15, deadline=None, suppress_health_check=list(HealthCheck))
@given(
    processes=st.integers(2, 4),
    clients=st.integers(1, 8),
    each=st.integers(20, 60),
    batch=st.integers(1, 4),
)
async def test_a_tailing_reader_sees_every_event_of_concurrent_processes_in_log_order(
    processes: int, clients: int, each: int, batch: int
) -> None:
    (url,) = postgres.fresh(1)
    writers = [
        subprocess.Popen(
            [sys.executable, "-c", WRITER, url, f"p{n}", str(clients), str(each), str(batch)]
        )
        for n in range(processes)
    ]

    store = PostgresEventStore(url)
    seen: list[RecordedEvent] = []
    try:
        while any(w.poll() is None for w in writers) or seen[-1:] != (await read_log(store))[-1:]:
            await store.wait_for(seen[-1].position if seen else 0, timeout=0.2)
            seen += await store.read_all(seen[-1].position if seen else 0, 97)
        final = await read_log(store)
    finally:
        await store.close()
    assert all(w.wait(timeout=60) == 0 for w in writers)
    assert [e.event_id for e in seen] == [e.event_id for e in final]
    assert [e.position for e in final] == list(range(1, len(final) + 1))
    for stream in {e.stream_id for e in final}:
        versions = [e.version for e in final if e.stream_id == stream]
        assert versions == list(range(1, len(versions) + 1))


async def test_appends_cut_off_by_terminated_connections_are_retried_without_loss_or_duplicates() -> (  # noqa: E501
    None
):
    (url,) = postgres.fresh(1)
    clients, each = 12, 150

    store = PostgresEventStore(url)
    failures = 0

    async def client(n: int) -> None:
        nonlocal failures
        for i in range(each):
            events = [event(n * 1000 + i)]
            while True:  # the caller's retry: the very same events (same ids)
                try:
                    await store.append(f"c-{n}", ANY, events)
                    break
                except StoreUnavailableError as error:
                    failures += 1 if error.retryable else 1000
                    await asyncio.sleep(0.01)

    async def terminator() -> None:
        admin = await asyncpg.connect(postgres.url("postgres"))
        try:
            for _ in range(8):
                await asyncio.sleep(0.03)
                await admin.execute(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                    " WHERE datname = $1 AND pid <> pg_backend_pid()",
                    url.rsplit("/", 1)[1],
                )
        finally:
            await admin.close()

    await asyncio.gather(terminator(), *(client(n) for n in range(clients)))
    log = await read_log(store)
    await store.close()
    assert 0 < failures < 1000, f"{failures}: none cut off, or one said not retryable"
    payloads = sorted(e.payload for e in log)
    assert payloads == sorted(b'{"n":%d}' % (n * 1000 + i) for n in range(clients)
                              for i in range(each))  # fmt: skip
    assert [e.position for e in log] == list(range(1, clients * each + 1))


async def test_a_database_without_the_schema_names_the_fix() -> None:
    store = PostgresEventStore(await postgres.scratch_database("bare"))
    with pytest.raises(StoreSchemaError, match="aq db upgrade"):
        await store.append("s-1", NO_STREAM, [event()])
    await store.close()


async def test_a_schema_newer_than_the_code_is_refused() -> None:
    (url,) = postgres.fresh(1)

    conn = await asyncpg.connect(url)
    await conn.execute("INSERT INTO aq_schema_migrations (version) VALUES (99)")
    try:
        store = PostgresEventStore(url)
        with pytest.raises(StoreSchemaError, match="upgrade Adventure Quest"):
            await store.head()
        await store.close()
        with pytest.raises(StoreSchemaError, match="newer"):
            await upgrade(url)
    finally:
        await conn.execute("DELETE FROM aq_schema_migrations WHERE version = 99")
        await conn.close()


@pytest.mark.parametrize(
    ("url", "error", "message"),
    [
        ("postgresql://postgres@127.0.0.1:1/aq", StoreUnavailableError, "is the server running"),
        ("postgresql://postgres@127.0.0.1:5432/aq_no_such_db", StoreUnavailableError, "createdb"),
        ("postgresql://[oops/aq", StoreUrlError, "cannot parse"),
        ("postgresql://127.0.0.1:5432", StoreUrlError, "expected postgresql://"),
    ],
)
async def test_an_unusable_url_gives_a_clear_error(
    url: str, error: type[Exception], message: str
) -> None:
    store = PostgresEventStore(url)
    try:
        with pytest.raises(error, match=message):
            await store.head()
    finally:
        await store.close()


async def test_upgrade_is_idempotent_and_safe_to_run_concurrently() -> None:
    url = await postgres.scratch_database("upgrade")
    applied = await asyncio.gather(*(upgrade(url) for _ in range(4)))
    assert sorted(applied) == [[], [], [], list(range(1, SCHEMA_VERSION + 1))]
    assert await upgrade(url) == []
    conn = await asyncpg.connect(url)
    try:
        versions = await conn.fetch("SELECT version FROM aq_schema_migrations")
    finally:
        await conn.close()
    assert [r[0] for r in versions] == list(range(1, SCHEMA_VERSION + 1))


async def test_a_lost_notification_delays_a_waiting_reader_by_at_most_the_poll_interval() -> None:
    (url,) = postgres.fresh(1)

    reader, writer = PostgresEventStore(url), PostgresEventStore(url)
    await writer.append("s-1", NO_STREAM, [event()])
    assert await reader.wait_for(0, timeout=1.0) == 1  # the reader is now LISTENing
    listener = reader._listener
    assert listener is not None
    admin = await asyncpg.connect(postgres.url("postgres"))
    await admin.execute("SELECT pg_terminate_backend($1)", listener.get_server_pid())
    await admin.close()

    async def later() -> None:
        await asyncio.sleep(0.1)
        await writer.append("s-1", 1, [event()])  # its NOTIFY reaches no listener

    task = asyncio.create_task(later())
    started = asyncio.get_running_loop().time()
    assert await reader.wait_for(1, timeout=5.0) == 2
    waited = asyncio.get_running_loop().time() - started
    await task
    await reader.close()
    await writer.close()
    assert waited < 0.1 + POLL_S + 0.3


async def test_a_waiting_reader_is_woken_by_notify_long_before_the_poll_interval() -> None:
    (url,) = postgres.fresh(1)

    reader, writer = PostgresEventStore(url), PostgresEventStore(url)
    await reader.wait_for(0, timeout=0.01)  # start listening

    async def later() -> None:
        await asyncio.sleep(0.05)
        await writer.append("s-1", NO_STREAM, [event()])

    task = asyncio.create_task(later())
    started = asyncio.get_running_loop().time()
    assert await reader.wait_for(0, timeout=5.0) == 1
    waited = asyncio.get_running_loop().time() - started
    await task
    await reader.close()
    await writer.close()
    assert waited < 0.05 + POLL_S / 2


async def connections_to(url: str, expected: int, seconds: float = 5.0) -> int:
    """How many sessions are connected to ``url``'s database, once that is ``expected`` (or
    when ``seconds`` ran out: a cut-off session's backend takes a moment to exit)."""
    database = url.rsplit("/", 1)[1]
    admin = await asyncpg.connect(postgres.url("postgres"), timeout=10)
    try:
        deadline = asyncio.get_running_loop().time() + seconds
        while True:
            count = int(
                await admin.fetchval(
                    "SELECT count(*) FROM pg_stat_activity WHERE datname = $1", database
                )
            )
            if count == expected or asyncio.get_running_loop().time() > deadline:
                return count
            await asyncio.sleep(0.02)
    finally:
        await admin.close()


async def test_a_store_closed_while_its_listener_connects_leaves_no_connection_open() -> None:
    """A wait starts LISTENing on its own connection; close() runs while that connects. The
    connection made after close() looked must not stay open (nor be found by the collector on
    a closed loop later: that was a 'loop is closed' error in whichever test ran then)."""
    (url,) = postgres.fresh(1)

    store = PostgresEventStore(url)
    await store.head()  # the pool is open: its connections are counted below
    waiting = asyncio.create_task(store.wait_for(0, timeout=0.2))
    await asyncio.sleep(0)  # the wait has started connecting its listener
    assert store._listener is None
    await store.close()
    with contextlib.suppress(StoreError):
        await waiting
    assert (await connections_to(url, 0), len(gc.garbage)) == (0, 0)


async def test_a_listener_that_cannot_be_set_up_is_closed_not_kept_half_made(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """add_listener fails after the connection was made: polling carries on, the connection
    is closed, and the next wait tries again."""
    (url,) = postgres.fresh(1)

    async def refuse(self: asyncpg.Connection, channel: str, callback: object) -> None:
        raise asyncpg.exceptions.ConnectionDoesNotExistError("cut off while listening")

    store = PostgresEventStore(url)
    try:
        with monkeypatch.context() as patch:
            patch.setattr(asyncpg.Connection, "add_listener", refuse)
            head = await store.wait_for(0, timeout=0.05)  # polls: nothing to wait for
            kept = store._listener
            # Only the pool's connections remain: the listener's was closed.
            in_pool = await connections_to(url, 1)
        await store.wait_for(0, timeout=0.05)  # tries again, and listens now
        listening = await connections_to(url, 2)
    finally:
        await store.close()
    assert kept is None
    assert (head, in_pool, listening) == (0, 1, 2)
