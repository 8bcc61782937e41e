"""The real servers a cluster runs on its hosts: PostgreSQL, nats-server, redis-server, ``aq``.

Every server listens on its host's address only. PostgreSQL runs as the ``postgres`` OS user
(it refuses root) with ``fsync = off``: the hosts share one disk, and a figure bound by that disk
would be the machine's, not the hosts'; a crash of a server *process* still loses nothing
committed (the data is in the page cache), only a crash of the machine would.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Final

import asyncpg

from adventure_quest.cluster.hosts import ClusterError, Host

PG_USER: Final = "postgres"
STORE_PORT: Final = 5432
READ_PORT: Final = 5433
NATS_PORT: Final = 4222
NATS_ROUTE_PORT: Final = 6222
REDIS_PORT: Final = 6379
API_PORT: Final = 8000
METRICS_PORT: Final = 9100
STORE_DB: Final = "aq"
READ_DB: Final = "aq_read"
START_TIMEOUT_S: Final = 60.0
_PG_SETTINGS: Final = """
listen_addresses = '{address}'
port = {port}
unix_socket_directories = '{sockets}'
max_connections = 100
shared_buffers = 64MB
fsync = off
full_page_writes = off
wal_level = replica
max_wal_senders = 8
hot_standby = on
wal_receiver_status_interval = 1s
wal_retrieve_retry_interval = 100ms
"""


def pg_bindir() -> Path:
    """Where initdb, postgres and pg_basebackup are (``pg_config --bindir``, else Debian's 15)."""
    candidates = []
    pg_config = shutil.which("pg_config")
    if pg_config is not None:
        with contextlib.suppress(OSError, subprocess.SubprocessError):
            found = subprocess.run(
                [pg_config, "--bindir"], capture_output=True, text=True, timeout=10, check=True
            )
            candidates.append(Path(found.stdout.strip()))
    candidates.append(Path("/usr/lib/postgresql/15/bin"))
    for bindir in candidates:
        if all((bindir / b).is_file() for b in ("initdb", "postgres", "pg_basebackup")):
            return bindir
    raise ClusterError(
        "cluster_tool_missing",
        f"PostgreSQL server binaries not found in {', '.join(map(str, candidates))}:"
        " install postgresql-15",
    )


def nats_binary() -> str:
    found = shutil.which("nats-server") or "/usr/sbin/nats-server"
    if not Path(found).is_file():
        raise ClusterError("cluster_tool_missing", "nats-server not found: install nats-server")
    return found


def redis_binary() -> str:
    found = shutil.which("redis-server")
    if found is None:
        raise ClusterError("cluster_tool_missing", "redis-server not found: install redis-server")
    return found


def aq_command() -> list[str]:
    """How to run ``aq`` of this very installation (the script beside this interpreter)."""
    script = Path(sys.executable).with_name("aq")
    if script.is_file():
        return [str(script)]
    return [sys.executable, "-c", "from adventure_quest.cli.main import main; main()"]


def _own_dir(path: Path) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    shutil.chown(path, PG_USER, PG_USER)
    return path


def start_postgres(host: Host, directory: Path, port: int) -> subprocess.Popen[bytes]:
    """initdb (as the postgres user) and start the server on the host's address and ``port``."""
    bindir = pg_bindir()
    data = _own_dir(directory) / "data"
    # Outside the host's quota: setting up is not what a figure measures.
    initdb = [str(bindir / "initdb"), "-D", str(data), "-U", PG_USER, "--auth=trust", "-E", "UTF8"]
    done = subprocess.run(
        ["setpriv", f"--reuid={PG_USER}", f"--regid={PG_USER}", "--init-groups", "--", *initdb],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        cwd=directory,
    )
    if done.returncode != 0:
        raise ClusterError("cluster_start_failed", f"{host.name}: initdb: {done.stderr[-2000:]}")
    _configure(data, host, directory, port)
    return _start_pg(host, data, port, directory)


def _configure(data: Path, host: Host, directory: Path, port: int) -> None:
    sockets = _own_dir(directory / "sockets")
    subnet = host.address.rsplit(".", 1)[0]
    with (data / "postgresql.conf").open("a") as conf:
        conf.write(_PG_SETTINGS.format(address=host.address, port=port, sockets=sockets))
    hba = "local all all trust\nlocal replication all trust\n"
    hba += f"host all all {subnet}.0/24 trust\nhost replication all {subnet}.0/24 trust\n"
    (data / "pg_hba.conf").write_text(hba)


def _start_pg(host: Host, data: Path, port: int, directory: Path) -> subprocess.Popen[bytes]:
    argv = [str(pg_bindir() / "postgres"), "-D", str(data)]
    process = host.spawn(argv, log=directory / "postgres.log", user=PG_USER, cwd=directory)
    wait_listening(host, host.address, port, process, directory / "postgres.log")
    return process


def restart_postgres(
    host: Host, directory: Path, port: int, running: subprocess.Popen[bytes]
) -> subprocess.Popen[bytes]:
    """Stop the server (a fast shutdown: clients are cut off) and start it again."""
    running.send_signal(signal.SIGINT)
    try:
        running.wait(timeout=60)
    except subprocess.TimeoutExpired:
        running.kill()
        running.wait(timeout=10)
    return _start_pg(host, directory / "data", port, directory)


def start_replica(host: Host, directory: Path, primary: str, port: int) -> subprocess.Popen[bytes]:
    """Clone the primary (``pg_basebackup -R``) and start the clone as a hot standby."""
    data = _own_dir(directory) / "data"
    argv = [str(pg_bindir() / "pg_basebackup"), "-h", primary, "-p", str(READ_PORT)]
    argv += ["-U", PG_USER, "-D", str(data), "-R", "-X", "stream", "-c", "fast"]
    host.run(argv, user=PG_USER, timeout=300)
    sockets = _own_dir(directory / "sockets")
    # The clone has the primary's settings; the last line of a setting wins.
    with (data / "postgresql.conf").open("a") as conf:
        conf.write(f"listen_addresses = '{host.address}'\nport = {port}\n")
        conf.write(f"unix_socket_directories = '{sockets}'\n")
    return _start_pg(host, data, port, directory)


def create_database(host: Host, port: int, name: str) -> None:
    async def create() -> None:
        deadline = time.monotonic() + START_TIMEOUT_S
        while True:
            try:
                conn = await asyncpg.connect(
                    host=host.address, port=port, user=PG_USER, database="postgres", timeout=10
                )
                break
            except asyncpg.CannotConnectNowError:  # listening, still starting up
                if time.monotonic() > deadline:
                    raise
                await asyncio.sleep(0.1)
        try:
            await conn.execute(f'CREATE DATABASE "{name}"')
        finally:
            await conn.close()

    host.inside(create)


def start_nats(
    host: Host, directory: Path, peers: Sequence[str], cluster_name: str
) -> subprocess.Popen[bytes]:
    """A JetStream node; with peers, one of a cluster routed to each of them."""
    directory.mkdir(parents=True, exist_ok=True)
    lines = [
        f'server_name: "{host.name}"',
        f'listen: "{host.address}:{NATS_PORT}"',
        f'jetstream {{ store_dir: "{directory / "js"}" }}',
    ]
    if peers:
        routes = ", ".join(f'"nats://{peer}:{NATS_ROUTE_PORT}"' for peer in peers)
        lines.append(
            f'cluster {{ name: "{cluster_name}", listen: "{host.address}:{NATS_ROUTE_PORT}",'
            f" routes: [{routes}] }}"
        )
    (directory / "nats.conf").write_text("\n".join(lines) + "\n")
    log = directory / "nats.log"
    process = host.spawn([nats_binary(), "-c", str(directory / "nats.conf")], log=log)
    wait_listening(host, host.address, NATS_PORT, process, log)
    return process


def start_redis(host: Host, directory: Path) -> subprocess.Popen[bytes]:
    directory.mkdir(parents=True, exist_ok=True)
    argv = [redis_binary(), "--bind", host.address, "--port", str(REDIS_PORT), "--save", ""]
    argv += ["--appendonly", "no", "--protected-mode", "no", "--dir", str(directory)]
    log = directory / "redis.log"
    process = host.spawn(argv, log=log)
    wait_listening(host, host.address, REDIS_PORT, process, log)
    return process


def start_aq(
    host: Host, directory: Path, role: str, env: dict[str, str], *, extra: Sequence[str] = ()
) -> subprocess.Popen[bytes]:
    """``aq serve --role ROLE`` on the host, with the cluster's ``AQ_*`` settings."""
    directory.mkdir(parents=True, exist_ok=True)
    argv = [*aq_command(), "serve", "--role", role, *extra]
    full = aq_env(env | {"AQ_DATA_DIR": str(directory / "data"), "AQ_HOST": host.address})
    process = host.spawn(argv, log=directory / f"{role}.log", env=full, cwd=directory)
    if role == "api":
        wait_ready(host, f"{host.address}:{env.get('AQ_PORT', API_PORT)}", process, directory)
    return process


def aq_env(settings: dict[str, str]) -> dict[str, str]:
    """This process's environment without its own ``AQ_*`` settings, plus ``settings``."""
    return {k: v for k, v in os.environ.items() if not k.startswith("AQ_")} | settings


def wait_listening(
    host: Host, address: str, port: int, process: subprocess.Popen[bytes], log: Path
) -> None:
    async def probe() -> bool:
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            if process.poll() is not None:
                return False
            try:
                _, writer = await asyncio.wait_for(asyncio.open_connection(address, port), 2)
            except (OSError, TimeoutError):
                await asyncio.sleep(0.05)
            else:
                writer.close()
                return True
        return False

    if not host.inside(probe):
        raise ClusterError(
            "cluster_start_failed",
            f"{host.name}: nothing listens on {address}:{port} ({_tail(log)})",
        )


def wait_ready(host: Host, where: str, process: subprocess.Popen[bytes], directory: Path) -> None:
    """Until ``GET /readyz`` answers 200 (every backing service reachable)."""
    address, _, port = where.partition(":")

    async def probe() -> str:
        last = "no answer"
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            if process.poll() is not None:
                return f"exited with {process.returncode}"
            with contextlib.suppress(OSError, TimeoutError, ValueError):
                last = await _readyz(address, int(port), where)
                if last.startswith("HTTP/1.1 200 "):
                    return ""
            await asyncio.sleep(0.2)
        return f"not ready within {START_TIMEOUT_S:.0f} s (last: {last})"

    failure = host.inside(probe)
    if failure:
        logs = " | ".join(_tail(log) for log in sorted(directory.glob("*.log")))
        raise ClusterError("cluster_start_failed", f"{host.name}: aq api {failure}: {logs}")


async def _readyz(address: str, port: int, where: str) -> str:
    """The status line of ``GET /readyz`` and, unless 200, the body (what is failing)."""
    reader, writer = await asyncio.wait_for(asyncio.open_connection(address, port), 2)
    try:
        writer.write(f"GET /readyz HTTP/1.1\r\nHost: {where}\r\n\r\n".encode())
        status = (await asyncio.wait_for(reader.readline(), 5)).decode().strip()
        if status.startswith("HTTP/1.1 200 "):
            return status
        with contextlib.suppress(TimeoutError):
            rest = await asyncio.wait_for(reader.read(2000), 2)
            status += " " + rest.decode(errors="replace").split("\r\n\r\n", 1)[-1]
        return status
    finally:
        writer.close()


def _tail(log: Path, lines: int = 8) -> str:
    try:
        return " / ".join(log.read_text(errors="replace").strip().splitlines()[-lines:])
    except OSError:
        return f"no log at {log}"
