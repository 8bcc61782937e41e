"""A real PostgreSQL primary and streaming hot standby on loopback ports, for replica tests.

``replica_pair()`` builds a throwaway primary with ``initdb``, clones it with
``pg_basebackup -R -X stream`` and starts the clone as a hot standby; both stop and their
directories go when the block ends, even if it raised. Nothing is mocked and nothing is
skipped: a missing binary or a server that does not start is an error naming the cause.

The servers refuse to run as root, so when the tests are root the binaries run as the
``postgres`` OS user, which owns the cluster directory.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Coroutine, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import asyncpg

T = TypeVar("T")

#: The database created on the primary before the clone, so it exists on both servers.
DATABASE = "aq_read"
OS_USER = "postgres"
FALLBACK_BINDIR = Path("/usr/lib/postgresql/15/bin")
BINARIES = ("initdb", "pg_ctl", "pg_basebackup", "postgres")
COMMAND_TIMEOUT_S = 60.0
START_ATTEMPTS = 3
# Speed over durability: these clusters live for one test run.
SETTINGS = """
listen_addresses = '127.0.0.1'
unix_socket_directories = '{sockets}'
wal_level = replica
max_wal_senders = 4
hot_standby = on
fsync = off
full_page_writes = off
wal_init_zero = off
shared_buffers = 16MB
max_connections = 30
wal_receiver_status_interval = 1s
wal_retrieve_retry_interval = 100ms
"""
HBA = """\
local all all trust
local replication all trust
host all all 127.0.0.1/32 trust
host replication all 127.0.0.1/32 trust
"""


class ReplicaSetupError(RuntimeError):
    """The pair could not be built: a binary is missing, or a server did not start."""


@dataclass(frozen=True)
class ReplicaPair:
    """A running primary and its streaming replica (``*_url`` name the ``aq_read`` database)."""

    primary_url: str
    replica_url: str
    #: Both data directories and their server logs (``primary.log``, ``replica.log``).
    directory: Path

    async def pause_replay(self, timeout: float = 10.0) -> None:
        """Stop applying WAL on the replica: it keeps receiving, but nothing new is visible.

        Returns once the replica reports ``paused``, not merely ``pause requested``.
        """
        replica = await asyncpg.connect(self.replica_url, timeout=10)
        try:
            await replica.execute("SELECT pg_wal_replay_pause()")
            deadline = time.monotonic() + timeout
            while True:
                state = await replica.fetchval("SELECT pg_get_wal_replay_pause_state()")
                if state == "paused":
                    return
                if time.monotonic() >= deadline:
                    raise TimeoutError(f"replica replay still {state!r} after {timeout} s")
                await asyncio.sleep(0.01)
        finally:
            await replica.close()

    async def resume_replay(self) -> None:
        replica = await asyncpg.connect(self.replica_url, timeout=10)
        try:
            await replica.execute("SELECT pg_wal_replay_resume()")
        finally:
            await replica.close()

    async def wait_caught_up(self, timeout: float = 10.0) -> None:
        """Return once the replica has replayed everything the primary had written at the call.

        Raises ``TimeoutError`` otherwise (for instance while replay is paused).
        """
        await self._wait_replica("pg_last_wal_replay_lsn", "replayed", timeout)

    async def wait_received(self, timeout: float = 10.0) -> None:
        """Return once the replica has received (not necessarily applied) the primary's WAL."""
        await self._wait_replica("pg_last_wal_receive_lsn", "received", timeout)

    async def _wait_replica(self, position: str, verb: str, timeout: float) -> None:
        primary = await asyncpg.connect(self.primary_url, timeout=10)
        try:
            # Flushed, not written: only flushed WAL is streamed. Commits flush before answering.
            target: str = await primary.fetchval("SELECT pg_current_wal_flush_lsn()::text")
        finally:
            await primary.close()
        replica = await asyncpg.connect(self.replica_url, timeout=10)
        try:
            deadline = time.monotonic() + timeout
            while True:
                # asyncpg sends pg_lsn parameters as integers: pass the text form instead.
                done: bool = await replica.fetchval(
                    f"SELECT coalesce({position}() >= $1::text::pg_lsn, false)", target
                )
                if done:
                    return
                if time.monotonic() >= deadline:
                    reached = await replica.fetchval(f"SELECT {position}()::text")
                    state = await replica.fetchval("SELECT pg_get_wal_replay_pause_state()")
                    raise TimeoutError(
                        f"after {timeout} s the replica has {verb} up to {reached}, "
                        f"the primary is at {target} (replay: {state})"
                    )
                await asyncio.sleep(0.01)
        finally:
            await replica.close()


@contextlib.contextmanager
def replica_pair(base_dir: Path | None = None) -> Iterator[ReplicaPair]:
    """A fresh primary and hot standby for the block; both are stopped and removed after it.

    The clusters go in a new directory under ``base_dir`` (default: the system temporary
    directory), which the ``postgres`` OS user must be able to reach when running as root:
    pytest's ``tmp_path`` is not (its parent is private to root).
    """
    bindir = _bindir()
    root = Path(tempfile.mkdtemp(prefix="aq-replica-", dir=base_dir))
    primary = _Server(bindir, root, "primary")
    replica = _Server(bindir, root, "replica")
    try:
        _hand_over(root)
        primary.initdb()
        primary.start()
        _run_aside(_create_database(primary.url("postgres")))
        replica.clone_of(primary)
        replica.start()
        pair = ReplicaPair(primary.url(DATABASE), replica.url(DATABASE), root)
        try:
            _run_aside(pair.wait_caught_up(timeout=30))
        except TimeoutError as error:
            raise ReplicaSetupError(
                f"the replica does not follow the primary: {error}\n{replica.log_tail()}"
            ) from error
        yield pair
    finally:
        replica.stop()
        primary.stop()
        shutil.rmtree(root, ignore_errors=True)


class _Server:
    """One cluster directory and the ``pg_ctl`` calls on it."""

    def __init__(self, bindir: Path, root: Path, name: str) -> None:
        self.bindir = bindir
        self.root = root
        self.name = name
        self.data = root / name
        self.log = root / f"{name}.log"
        self.port = 0

    def url(self, database: str) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{database}"

    def initdb(self) -> None:
        self._run(
            "initdb",
            "--pgdata",
            str(self.data),
            "--username",
            "postgres",
            "--auth",
            "trust",
            "--encoding",
            "UTF8",
            "--locale",
            "C",
            "--no-sync",
            "--no-instructions",
            "--wal-segsize",
            "1",
        )
        with (self.data / "postgresql.conf").open("a") as conf:
            conf.write(SETTINGS.format(sockets=self.root))
        (self.data / "pg_hba.conf").write_text(HBA)

    def clone_of(self, primary: _Server) -> None:
        # -R writes standby.signal and primary_conninfo; the settings come along in the copy.
        self._run(
            "pg_basebackup",
            "--pgdata",
            str(self.data),
            "--host",
            "127.0.0.1",
            "--port",
            str(primary.port),
            "--username",
            "postgres",
            "--wal-method",
            "stream",
            "--write-recovery-conf",
            "--checkpoint",
            "fast",
            "--no-sync",
            "--no-manifest",
        )

    def start(self) -> None:
        """Start on a free port, trying another one if something took it in the meantime."""
        for _attempt in range(START_ATTEMPTS):
            self.port = _free_port()
            with (self.data / "postgresql.conf").open("a") as conf:
                conf.write(f"port = {self.port}\n")
            seen = len(self._read_log())
            try:
                self._run("pg_ctl", "start", "--pgdata", str(self.data), "--log", str(self.log))
            except ReplicaSetupError:
                if "could not bind" not in self._read_log()[seen:]:
                    raise
            else:
                return
        raise ReplicaSetupError(
            f"the {self.name} found no free port in {START_ATTEMPTS} tries\n{self.log_tail()}"
        )

    def start_again(self) -> None:
        """Start a stopped server on the port it had (clients that knew it find it there)."""
        self._run("pg_ctl", "start", "--pgdata", str(self.data), "--log", str(self.log))

    def stop(self) -> None:
        if not (self.data / "postmaster.pid").exists():
            return
        with contextlib.suppress(ReplicaSetupError):
            self._run("pg_ctl", "stop", "--pgdata", str(self.data), "--mode", "immediate")

    def log_tail(self, lines: int = 30) -> str:
        tail = "\n".join(self._read_log().splitlines()[-lines:])
        return f"--- last lines of the {self.name} server log ({self.log}) ---\n{tail}"

    def _read_log(self) -> str:
        try:
            return self.log.read_text(errors="replace")
        except OSError:
            return "(no log)"

    def _run(self, binary: str, *args: str) -> None:
        command = [str(self.bindir / binary), *args]
        if binary == "pg_ctl":
            command += ["--wait", "--timeout", "30", "--silent"]
        try:
            done = _run_as_server_user(command, self.root)
        except subprocess.TimeoutExpired as error:
            raise ReplicaSetupError(
                f"{binary} ({self.name}) took over {COMMAND_TIMEOUT_S} s\n{self.log_tail()}"
            ) from error
        if done.returncode != 0:
            raise ReplicaSetupError(
                f"{' '.join(command)} failed with exit code {done.returncode}:\n"
                f"{done.stdout}{done.stderr}\n{self.log_tail()}"
            )


def _bindir() -> Path:
    """The PostgreSQL server binaries: ``pg_config --bindir``, else the Debian path of 15."""
    candidates = []
    pg_config = shutil.which("pg_config")
    if pg_config is not None:
        with contextlib.suppress(OSError, subprocess.SubprocessError):
            found = subprocess.run(
                [pg_config, "--bindir"], capture_output=True, text=True, timeout=10, check=True
            )
            candidates.append(Path(found.stdout.strip()))
    candidates.append(FALLBACK_BINDIR)
    for bindir in candidates:
        if all((bindir / binary).is_file() for binary in BINARIES):
            return bindir
    looked = ", ".join(str(bindir) for bindir in candidates)
    raise ReplicaSetupError(
        f"PostgreSQL server binaries ({', '.join(BINARIES)}) not found in {looked}; "
        "install the PostgreSQL 15 server package (postgresql-15)"
    )


def _run_as_server_user(command: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    """Run ``command`` as the ``postgres`` OS user when we are root (the servers refuse root)."""
    if os.geteuid() == 0:
        command = ["runuser", "-u", OS_USER, "--", *command]
    try:
        return subprocess.run(
            command,
            cwd=cwd,  # the postgres user may not be allowed into the caller's cwd
            capture_output=True,
            text=True,
            timeout=COMMAND_TIMEOUT_S,
            check=False,
        )
    except FileNotFoundError as error:
        raise ReplicaSetupError(f"cannot run {command[0]}: {error}") from error


def _hand_over(root: Path) -> None:
    """Give the new directory to the user the servers run as, and check it can write there."""
    if os.geteuid() != 0:
        return
    try:
        shutil.chown(root, OS_USER, OS_USER)
    except LookupError as error:
        raise ReplicaSetupError(
            f"running as root needs the {OS_USER!r} OS user to run the servers: {error}"
        ) from error
    if _run_as_server_user(["test", "-w", str(root), "-a", "-x", str(root)], root).returncode:
        raise ReplicaSetupError(
            f"the {OS_USER!r} OS user cannot write to {root}: pass a base_dir it can reach "
            "(pytest's tmp_path is private to root)"
        )


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


async def _create_database(server_url: str) -> None:
    admin = await asyncpg.connect(server_url, timeout=10)
    try:
        await admin.execute(f"CREATE DATABASE {DATABASE}")
    finally:
        await admin.close()


def _run_aside(coroutine: Coroutine[Any, Any, T]) -> T:
    """Run set-up on its own loop in a thread: callers may be inside a running loop."""
    with ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, coroutine).result()


@contextlib.contextmanager
def lone_server(base_dir: Path | None = None, *, conf: str = "") -> Iterator[_Server]:
    """A fresh PostgreSQL server alone (its ``postgres`` database) for a test that stops it;
    stopped and removed after the block, even if it raised. ``conf``: more postgresql.conf
    lines (``max_connections = 12``, say)."""
    root = Path(tempfile.mkdtemp(prefix="aq-lone-", dir=base_dir))
    server = _Server(_bindir(), root, "lone")
    try:
        _hand_over(root)
        server.initdb()
        if conf:
            with (server.data / "postgresql.conf").open("a") as settings:
                settings.write(conf + "\n")
        server.start()
        yield server
    finally:
        server.stop()
        shutil.rmtree(root, ignore_errors=True)
